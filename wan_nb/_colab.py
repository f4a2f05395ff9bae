"""Google Colab: custom widgets need Colab's custom widget manager, turned on once.

Colab draws ipywidgets' own controls without help, but a widget with its own front end
(ipycanvas: the bbox drawer, the swipe compare) shows nothing until
``google.colab.output.enable_custom_widget_manager()`` has run in the kernel. ``connect()``
calls ``enable_in_colab()``: inside Colab (its runtime has ``google.colab`` imported before
any cell runs) it turns the manager on, once per kernel, and says so in one line; anywhere
else it does nothing and imports nothing.
"""

from __future__ import annotations

import sys

LINE = ("wan_nb: in Google Colab: turned on Colab's custom widget manager, which the drawer, "
        "the forms and the live grids need")

_enabled = False


def enable_in_colab(*, quiet: bool = False) -> bool:
    """Turn on Colab's custom widget manager when running inside Colab (once); True if it is on."""
    global _enabled
    if _enabled:
        return True
    colab = sys.modules.get("google.colab")
    if colab is None:  # not Colab: its runtime imports google.colab before the first cell
        return False
    output = getattr(colab, "output", None) or sys.modules.get("google.colab.output")
    enable = getattr(output, "enable_custom_widget_manager", None)
    if enable is None:  # an old Colab without it: its widgets are what it has
        return False
    enable()
    _enabled = True
    if not quiet:
        print(LINE)  # noqa: T201 - connect()'s one line about the front end; quiet=True silences it
    return True
