"""A widget's static HTML, as a saved notebook shows it, kept up to the widget's last run.

A widget's ``text/html`` fallback (what nbviewer, GitHub or a notebook opened without a
kernel shows) is worked out once, when its cell displays it: a form shown empty and
then filled in and run by clicking would be saved as "not a valid request yet", its
result nowhere. A widget displayed through ``LiveFallback`` keeps the display ids of
its outputs and, when a run ends, sends its output again (``update_display``).
JupyterLab replaces that output's data in place, so the notebook is saved with the
fallback of the form as it is then, result included. Only when a run ends, not on
every edit: an update draws the widget's view afresh.
"""

from __future__ import annotations

from typing import Any, Protocol


class _Shown(Protocol):
    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]: ...


class LiveFallback:
    """Mixin for a widget with a ``_repr_mimebundle_``: ``refresh_fallback()`` re-sends it."""

    def _ipython_display_(self: _Shown) -> None:
        from IPython.display import display

        handle = display(self._repr_mimebundle_(), raw=True, display_id=True)
        if handle is not None:
            self.__dict__.setdefault("_fallback_handles", []).append(handle)

    def refresh_fallback(self: _Shown) -> None:
        """Send every output of this widget again, with its static HTML as it is now."""
        handles = self.__dict__.get("_fallback_handles", [])
        if handles:
            bundle = self._repr_mimebundle_()
            for handle in handles:
                handle.update(bundle, raw=True)
