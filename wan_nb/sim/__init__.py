"""The built-in simulator of the hosted Wan 2.7 image task API.

``Simulator`` serves the documented task protocol (task-api.md) on loopback, draws
images in which every request parameter is visible, and injects the faults a real
service produces. ``python -m wan_nb.sim`` serves one from the command line.

Modules: ``_simulator`` (the public class), ``_server`` (HTTP, sockets, faults that
need them), ``_api`` (endpoints as functions), ``_tasks`` (states, scheduler,
idempotency, billing), ``_inputs`` (request checks via the request model, input
images), ``_render`` (drawing), ``_faults``, ``_ledger``, ``_files``, ``_callbacks``,
``_net`` (loopback-only rules).
"""

from ._simulator import Simulator

__all__ = ["Simulator"]

Simulator.__module__ = __name__  # public as wan_nb.sim.Simulator
