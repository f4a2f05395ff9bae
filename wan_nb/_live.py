"""A status line while a blocking call waits in a notebook.

A hosted task can take a minute; without this the cell shows nothing but a busy
kernel. The line appears only after a second (cache hits and quick runs show
nothing), says what is happening, and ends as a one-line summary. It is drawn from
the waiting (main) thread through the portal's tick, so output routing stays with
the cell that made the call.
"""

from __future__ import annotations

import html
import time
from typing import Any

from ._wire import Task

SHOW_AFTER = 1.0  # seconds before the line appears
REDRAW_EVERY = 1.0


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveStatus:
    """``with LiveStatus("generate · $0.02295") as live: session.run(req, on_update=live.update, tick=live.tick)``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.enabled = _in_kernel()
        self.started = time.monotonic()
        self.task: Task | None = None
        self._handle: Any = None
        self._drawn = 0.0

    def update(self, run_id: str, task: Task) -> None:  # called on the portal thread: store only
        self.task = task

    def _line(self, final: str | None = None) -> str:
        elapsed = time.monotonic() - self.started
        if final is not None:
            text, colour = f"{self.what} · {final} after {elapsed:.1f} s", "#777"
        else:
            task = self.task
            state = "sending" if task is None else task.note or task.status
            if task is not None and not task.note and task.status == "processing" and task.progress is not None:
                state += f" {task.progress}%"
            ident = f" · {task.task_id}" if task is not None else ""
            text, colour = f"⏳ {self.what}{ident} · {state} · {elapsed:.0f} s", "#555"
        return f'<div style="font:12px sans-serif;color:{colour}">{html.escape(text)}</div>'

    def tick(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < SHOW_AFTER or now - self._drawn < REDRAW_EVERY:
            return
        from IPython.display import HTML, display

        self._drawn = now
        if self._handle is None:
            self._handle = display(HTML(self._line()), display_id=True)
        else:
            self._handle.update(HTML(self._line()))

    def __enter__(self) -> LiveStatus:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._handle is None:
            return
        from IPython.display import HTML

        if exc_type is None:
            final = "done"
        elif issubclass(exc_type, KeyboardInterrupt):
            final = "interrupted"
        else:
            final = f"{exc_type.__name__}"
        self._handle.update(HTML(self._line(final)))
