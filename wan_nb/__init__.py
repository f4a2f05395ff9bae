"""wan_nb: the Wan 2.7 image model in Jupyter.

    import wan_nb as wan
    wan.connect()                 # WAVE_API_KEY → hosted API; none → built-in simulator
    r = wan.generate("ink-wash mountains", aspect_ratio="16:9", resolution="2K", seed=7)
    r                             # shows inline; r.paths are the files on disk

The public names are listed in ``__all__``; modules starting with ``_`` are private.
"""

import os
import typing

from . import _config
from . import _session as _session_module
from ._client import AsyncClient, Client, RunOutcome
from ._exceptions import (
    ApiError,
    AuthenticationError,
    BudgetError,
    ConfigError,
    DownloadError,
    InsufficientBalanceError,
    InvalidRequestError,
    LinkExpiredError,
    NetworkError,
    Problem,
    RateLimitError,
    RequestError,
    ServerError,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TaskNotFoundError,
    TaskTimeout,
    WanError,
    WanWarning,
)
from ._log import Log
from ._modes import edit, generate, group, image2image, interactive_edit, make_request, reference, run
from ._request import Request, build_request
from ._result import Result
from ._retry import RetryPolicy
from ._session import Session, connect, session
from ._store import Store, StoredImage
from ._sweep import Sweep, SweepCell, sweep
from ._sweep_plan import random_seeds, vary
from ._wire import Task

if typing.TYPE_CHECKING:
    from ._bbox import BBoxDrawer
    from ._compare import ImageCompare
    from ._explore import LogExplorer
    from ._form import Form, form
    from ._palette import PaletteEditor, palette_from_image
    from ._studio import Studio, studio
    from ._sweep_form import SweepForm, sweep_form

from ._version import __version__ as __version__

# The widgets load on first use: scripts, the CLI and the simulator never need ipycanvas.
_LAZY = {"BBoxDrawer": "._bbox", "PaletteEditor": "._palette", "palette_from_image": "._palette",
         "Form": "._form", "form": "._form", "SweepForm": "._sweep_form", "sweep_form": "._sweep_form",
         "LogExplorer": "._explore", "ImageCompare": "._compare", "Studio": "._studio", "studio": "._studio"}


def _form_of(function: typing.Any, mode: str | None) -> None:
    """``wan.generate.form(...)``: the form of a mode function (``wan.sweep.form``: the sweep form).

    The form modules load on first use (importlib: they need ipywidgets)."""
    import importlib

    def open_sweep_form(template: str = "", **values: typing.Any) -> "SweepForm":
        """The sweep form of wan.sweep: wan.sweep_form(template, **values) (see its help)."""
        module = importlib.import_module("._sweep_form", __name__)
        return typing.cast("SweepForm", module.sweep_form(template, **values))

    def open_form(prompt: str = "", **fields: typing.Any) -> "Form":
        module = importlib.import_module("._form", __name__)
        return typing.cast("Form", module.form(mode, **({"prompt": prompt} if prompt else {}), **fields))

    open_form.__doc__ = (f"The form of wan.{function.__name__}: wan.form({mode!r}, prompt=prompt, **fields) "
                         "(see its help).")
    opener: typing.Any = open_sweep_form if mode is None else open_form
    opener.__name__, opener.__qualname__ = "form", f"{function.__name__}.form"
    function.form = opener


for _function in (generate, image2image, edit, reference, group, interactive_edit):
    _form_of(_function, _function.__name__)
_form_of(sweep, None)
del _function


def __getattr__(name: str) -> typing.Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        value.__module__ = __name__
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def log(home: str | os.PathLike[str] | None = None, *, log: str | os.PathLike[str] | None = None) -> Log:
    """The project's experiment log: every run in the run folder, or, with ``WAN_NB_LOG``
    (or ``log=``) a PostgreSQL URL, the team's log with every user's runs. A log's URL as
    the first argument, ``wan.log("postgresql://...")``, opens it as ``wan.Log(url)`` does.

    Reading it needs no connection: without one, no simulator is started.
    """
    sess = _session_module.current()
    if home is None and log is None and sess is not None:
        return sess.log
    if log is None and home is not None and _config.is_url(home):
        return Log(_config.parse_log(home, "home="))  # mysql://...: a ConfigError, never a folder
    target = _config.log_target(log)
    if target is None:
        return Log(_config.home(home) / "log.sqlite")
    return Log(target, home=_config.home(home))


_UNCHANGED = object()


def set_budget(usd: typing.Any = _UNCHANGED, *, per_sweep: typing.Any = _UNCHANGED) -> None:
    """Spending limits of this session.

    ``usd``: a hard cap on what the session spends; runs and sweeps never exceed it
    (None: no cap). ``per_sweep``: a sweep that would cost more does not start without
    ``confirm=True`` (default $2.00; None: never ask).
    """
    sess = session()
    if usd is not _UNCHANGED:
        sess.budget_usd = usd
    if per_sweep is not _UNCHANGED:
        sess.sweep_budget_usd = per_sweep


def fetch(task_id: str) -> Result:
    """Wait for a task by id, download its images and log them."""
    return session().fetch(task_id)


def cancel(task_id: str) -> Task:
    """Cancel a queued task (a processing one cannot be; its status is returned)."""
    task: Task = session().client.cancel(task_id)
    return task


__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BBoxDrawer",
    "BudgetError",
    "Client",
    "ConfigError",
    "DownloadError",
    "Form",
    "ImageCompare",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "LinkExpiredError",
    "Log",
    "LogExplorer",
    "NetworkError",
    "PaletteEditor",
    "Problem",
    "RateLimitError",
    "Request",
    "RequestError",
    "Result",
    "RetryPolicy",
    "RunOutcome",
    "ServerError",
    "Session",
    "Store",
    "StoredImage",
    "Studio",
    "Sweep",
    "SweepCell",
    "SweepForm",
    "Task",
    "TaskCancelled",
    "TaskError",
    "TaskFailed",
    "TaskNotFoundError",
    "TaskTimeout",
    "WanError",
    "WanWarning",
    "build_request",
    "cancel",
    "connect",
    "edit",
    "fetch",
    "form",
    "generate",
    "group",
    "image2image",
    "interactive_edit",
    "log",
    "make_request",
    "palette_from_image",
    "random_seeds",
    "reference",
    "run",
    "session",
    "set_budget",
    "studio",
    "sweep",
    "sweep_form",
    "vary",
]

# Public objects report the package as their home (the httpx convention), so tracebacks,
# reprs and help() say wan_nb.Result rather than wan_nb._result.Result. The widgets get
# the same when they load (``__getattr__``).
for _name in __all__:
    if _name not in _LAZY:
        globals()[_name].__module__ = __name__
del _name
