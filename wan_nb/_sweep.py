"""Running a sweep: cost first, the server's full width, a grid that fills in live.

``sweep(...)`` plans every cell (``_sweep_plan``), shows what it will cost, refuses to
start above a budget without ``confirm=True`` (and never past the session's budget),
then runs the cells on the portal loop in the background, each through the same
``Session.arun`` path as a single call: logged before it is sent, resumed rather than
re-sent after a kernel restart, served from the cache when identical to a finished
fixed-seed run. How many cells are in flight at once follows the session's estimate
of the server's width (``_width``), never above ``concurrency=`` when given. The
notebook keeps working while the grid fills in; the grid is rendered on a thread of
its own, never on the event loop that polls the tasks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from . import _spec
from . import _states as S
from ._exceptions import (
    BudgetError,
    InsufficientBalanceError,
    Problem,
    RequestError,
    WanError,
)
from ._grid import Cell, Grid, cell_items, cell_key, distinct
from ._html_parts import short
from ._images import ImageInputError, to_image_ref
from ._money import budget, quota_usd, usd
from ._options import check_seconds, check_usd, is_whole
from ._portal import get_portal
from ._request import Request
from ._result import Result
from ._session import Session, check_labels, emit_warnings, session
from ._sweep_plan import Plan, plan_sweep
from ._wire import Task

if TYPE_CHECKING:
    from ._live_grid import LiveGrid

_STOPPING = (BudgetError, InsufficientBalanceError)  # no further cell can succeed


@dataclass
class SweepCell:
    """One cell: its axis values, its request, and how it is going."""

    index: int
    coords: dict[str, Any]
    request: Request
    status: str = "pending"  # "pending" (not started), then the states of wan_nb._states
    progress: int | None = None
    result: Result | None = None
    error: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    started: float | None = None
    ended: float | None = None
    billed_quota: int = 0  # what the server said it billed for this cell in this sweep run
    note: str | None = None  # e.g. "billed, not yet recorded: the disk is full" (shown instead of the status)

    @property
    def done(self) -> bool:
        return self.status in S.TERMINAL or self.status in S.ENDED_WITHOUT_IMAGES


@dataclass(frozen=True)
class Layout:
    """A sweep's grid: what rows and columns show, and the grid cell of each sweep cell."""

    rows: str
    col_name: str
    row_values: list[Any]
    col_values: list[Any]
    keys: dict[int, tuple[Any, ...]]  # sweep cell index → cell_key of its grid cell
    legend: dict[str, Any]


@dataclass(eq=False)  # a running object: identity, not value, equality
class Sweep:
    """A running (or finished) sweep. Shows itself as a live grid in a notebook."""

    plan: Plan
    session: Session
    concurrency: int | None = None  # a cap on cells in flight; None: as wide as the server takes
    fresh: bool = False
    timeout: float | None = None
    tags: list[str] = field(default_factory=list)
    cells: list[SweepCell] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cells = [SweepCell(c.index, c.coords, c.request) for c in self.plan.cells]
        self._task: asyncio.Task[None] | None = None  # the runner, on the portal loop
        self._finished = threading.Event()  # set after the runner AND its cleanup ended
        self._finished.set()
        self._cancelled = False
        self._stop_reason: str | None = None
        self._view: LiveGrid | None = None  # the live grid, once the sweep has been shown
        self.started_at: float | None = None

    # -- facts ---------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.plan.sweep_id

    @property
    def df(self) -> Any:
        """This sweep's runs in the log, as a DataFrame."""
        return self.session.log.runs(sweep_id=self.id)

    @property
    def spent_usd(self) -> float:
        """Billed by the server for this sweep's cells in this run (images downloaded or not)."""
        return _spec.quota_to_usd(sum(c.billed_quota for c in self.cells))

    @property
    def unconfirmed_usd(self) -> float:
        """Cells with no answer that may have been billed; running the sweep again settles them."""
        return _spec.quota_to_usd(sum(c.request.cost_quota for c in self.cells if c.status == S.UNCONFIRMED))

    @property
    def done(self) -> bool:
        return all(c.done for c in self.cells)

    def counts(self) -> dict[str, int]:
        out = {"completed": 0, "failed": 0, "running": 0, "queued": 0, "pending": 0}
        for c in self.cells:
            if c.status == S.COMPLETED:
                out["completed"] += 1
            elif c.status in S.ENDED_WITHOUT_IMAGES:
                out["failed"] += 1
            elif c.status in (S.SUBMITTED, S.PROCESSING, S.DOWNLOADING, "finishing"):
                out["running"] += 1  # "submitted": on the server, held by Prefer: wait
            elif c.status == S.QUEUED:
                out["queued"] += 1
            else:
                out["pending"] += 1
        return out

    def progress_line(self) -> str:
        n = self.counts()
        total = len(self.cells)
        parts = [f"{n['completed']}/{total} done"]
        if n["failed"]:
            parts.append(f"{n['failed']} failed")
        parts += [f"{n['running']} running", f"{n['queued'] + n['pending']} queued"]
        if not self.done:
            cap = f" (cap {self.concurrency})" if self.concurrency is not None else ""
            parts.append(f"width {self.width}{cap}")
        parts.append(f"spent {usd(self.spent_usd)} of {quota_usd(self.plan.cost_quota)}")
        if self.unconfirmed_usd:
            parts.append(f"up to {usd(self.unconfirmed_usd)} unconfirmed")
        waiting = [c.note for c in self.cells if c.note]
        if waiting:  # the server's word is kept in memory until the log takes it
            parts.append(f"{len(waiting)} {waiting[0]}")
        left = self._time_left()
        if left is not None and not self.done:
            parts.append(f"~{left:.0f} s left")
        if self._stop_reason:
            parts.append(f"stopped: {self._stop_reason}")
        return " · ".join(parts)

    def _time_left(self) -> float | None:
        took = [c.ended - c.started for c in self.cells if c.status == S.COMPLETED and c.started and c.ended
                and c.result and not c.result.cache_hit]
        if not took:
            return None
        remaining = sum(1 for c in self.cells if not c.done)
        return sum(took) / len(took) * remaining / max(1, min(self.width, remaining or 1))

    @property
    def width(self) -> int:
        """Cells this sweep may have in flight now: the session's estimate of the
        server's width, never above ``concurrency``."""
        return self.session.width.limit(self.concurrency)

    # -- running -------------------------------------------------------------------
    def start(self, cells: Iterable[SweepCell] | None = None) -> Sweep:
        todo = list(cells if cells is not None else self.cells)
        self._cancelled = False
        self._stop_reason = None
        self.started_at = self.started_at or time.time()
        self._finished.clear()
        self.session.sweeps.add(self)

        async def launch() -> None:
            self._task = asyncio.ensure_future(self._run(todo))
            self._task.add_done_callback(lambda _: self._finished.set())

        get_portal().run(launch())
        return self

    @property
    def running(self) -> bool:
        return not self._finished.is_set()

    async def _run(self, todo: list[SweepCell]) -> None:
        if self.concurrency is not None:
            self.session.width.trust(self.concurrency)
        if not self.fresh:  # cells an earlier run of this sweep completed: read at once, not cell by cell
            done = await asyncio.to_thread(self.session.resumed, [c.request for c in todo], self.id)
            for cell in todo:
                result = done.get(cell.request.request_hash)
                if result is not None:
                    cell.result, cell.run_id, cell.task_id = result, result.run_id, result.task_id
                    cell.status, cell.started, cell.ended = S.COMPLETED, time.time(), time.time()
                    self._changed(cell)
            todo = [c for c in todo if c.result is None]

        async def one(cell: SweepCell) -> None:
            async with _Slot(self.session, self.concurrency) as slot:
                if self._cancelled or self._stop_reason:
                    cell.status, cell.error = S.CANCELLED, self._stop_reason or "sweep cancelled"
                    self._changed(cell)
                    return
                await self._run_cell(cell, slot)

        tasks = [asyncio.ensure_future(one(c)) for c in todo]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # gather has already cancelled each cell once; cancelling again would cut
            # short their cleanup (cancelling queued tasks on the server). Let it finish.
            await asyncio.gather(*tasks, return_exceptions=True)
            for c in todo:
                if not c.done:
                    c.status, c.error = S.CANCELLED, "sweep cancelled"
            raise
        finally:
            self._changed(force=True)

    async def _run_cell(self, cell: SweepCell, slot: _Slot) -> None:
        cell.status, cell.error, cell.started, cell.billed_quota = S.SUBMITTED, None, time.time(), 0
        self._changed(cell)

        def on_update(run_id: str, task: Task) -> None:
            if task.status == S.COMPLETED:
                slot.served()  # the server's time for this task, for the width estimate
            # A cell is "completed" only once its images are on disk (set below); until
            # then a finished task is still being fetched, or about to be retried. It is
            # billed the moment the server says so, whatever the download does.
            if task.status == S.COMPLETED:
                status = S.DOWNLOADING
                cell.billed_quota = task.cost if task.cost is not None else cell.request.cost_quota
            else:
                status = "finishing" if task.terminal else task.status
            cell.run_id, cell.task_id, cell.status, cell.progress = run_id, task.task_id, status, task.progress
            cell.note = task.note
            self._changed(cell)

        try:
            result = await self.session.arun(
                cell.request, fresh=self.fresh, timeout=self.timeout, sweep_id=self.id, cell=_logged_cell(cell),
                cell_index=cell.index, tags=self.tags, on_update=on_update,
            )
        except asyncio.CancelledError:
            if cell.status == S.PROCESSING:  # the server's answer to our cancel: too late
                cell.error = ("sweep cancelled, but the task was already processing: it will be billed; "
                              "run the same sweep again to fetch its images at no extra cost")
            else:
                cell.error = "sweep cancelled"
            cell.status = S.CANCELLED
            raise
        except _STOPPING as exc:
            cell.status, cell.error = S.ended_as(exc.run_state), str(exc)
            self._stop_reason = f"{type(exc).__name__}: no new cells are sent"
        except WanError as exc:
            cell.status, cell.error = S.ended_as(exc.run_state), str(exc)
            cell.run_id = exc.run_id or cell.run_id
        except Exception as exc:  # the disk, a bug: this cell ends with the reason shown, the sweep goes on
            logging.getLogger("wan_nb").exception("cell %s of sweep %s failed", cell.index, self.id)
            cell.status, cell.error = S.ERROR, f"{type(exc).__name__}: {exc}"
        else:
            cell.result, cell.run_id, cell.task_id, cell.status = result, result.run_id, result.task_id, S.COMPLETED
            cell.billed_quota = result.cost_quota
        finally:
            cell.ended, cell.note = time.time(), None
            self._changed(cell)

    def wait(self, timeout: float | None = None) -> Sweep:
        """Block until every cell has ended; TimeoutError after ``timeout`` s (the sweep goes on).

        Ctrl-C cancels the sweep (queued tasks are cancelled on the server). No-op when done.
        """
        task = self._task
        if task is None or not self.running:
            return self

        async def _wait() -> None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except asyncio.CancelledError:  # Ctrl-C in the waiting thread
                self._cancelled = True
                task.cancel()
                await asyncio.wait([task], timeout=15)  # let cells cancel their tasks on the server
                raise

        get_portal().run(_wait())
        return self

    def cancel(self) -> Sweep:
        """Stop sending new cells and cancel queued tasks on the server."""
        self._cancelled = True
        if self._task is not None and self.running:
            get_portal().loop.call_soon_threadsafe(self._task.cancel)
            self._finished.wait(15)
        self._changed(force=True)
        return self

    def retry_failed(self) -> Sweep:
        """Run again only the cells that failed, errored or were cancelled."""
        if self.running:
            raise RuntimeError("the sweep is still running; wait() or cancel() it first")
        again = [c for c in self.cells if c.status in S.RETRYABLE]
        for c in again:
            c.status, c.error, c.result = "pending", None, None
        return self.start(again)

    # -- views ---------------------------------------------------------------------
    def layout(self, rows: str | None = None, cols: str | None = None) -> Layout:
        """Where each cell goes in the grid: rows and columns by the varying axes."""
        varying = [(n, v) for n, v in self.plan.axes if len(v) > 1]
        names = [n for n, _ in varying]
        if rows is None:  # one varying axis reads best as a single row of images
            rows = names[0] if len(names) > 1 else ""
        col_axes = [cols] if cols else [n for n in names if n != rows]
        by_name = dict(self.plan.axes)

        def row_of(cell: SweepCell) -> Any:
            return _value(cell, rows) if rows else ""

        def col_of(cell: SweepCell) -> Any:
            if not col_axes:
                return ""
            if len(col_axes) == 1:
                return _value(cell, col_axes[0])
            return " · ".join(f"{a}={_text(_value(cell, a))}" for a in col_axes)

        row_values = ([_label_value(rows, v) for v in by_name.get(rows, [])]
                      or distinct(row_of(c) for c in self.cells)) if rows else [""]
        col_values = distinct(col_of(c) for c in self.cells)
        legend = {k: _text(v) for k, v in self.plan.fixed.items()}
        legend.update({n: _text(v[0]) for n, v in self.plan.axes if len(v) == 1})
        return Layout(rows, " · ".join(col_axes) if col_axes else "", row_values, col_values,
                      {c.index: cell_key(row_of(c), col_of(c)) for c in self.cells}, legend)

    def grid(self, rows: str | None = None, cols: str | None = None) -> Grid:
        """The sweep as a labelled grid (live state; placeholders for cells still running)."""
        lay = self.layout(rows, cols)
        cells: dict[tuple[Any, ...], Cell] = {}
        for c in self.cells:
            cells.setdefault(lay.keys[c.index], Cell()).items.extend(cell_items(c))
        return Grid(lay.rows, lay.col_name, lay.row_values, lay.col_values, cells, lay.legend,
                    title=f"sweep {self.id}", progress_line=self.progress_line())

    def export_html(self, path: Any) -> Any:
        """This sweep as a self-contained HTML report (thumbnails embedded, files linked)."""
        return self.session.log.export_html(path, title=f"sweep {self.id}", sweep_id=self.id)

    def to_png(self, path: Any) -> Any:
        """The sweep's grid as a PNG image."""
        return self.grid().to_png(path)

    def _changed(self, cell: SweepCell | None = None, force: bool = False) -> None:
        """Note a change for the live view (if shown): that cell's widget is redrawn and
        sent by the view's own thread, never on the event loop; ``force``: the progress
        line too, at once."""
        if self._view is not None:
            self._view.changed(None if cell is None else cell.index, force=force)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """A finished sweep shows as its static grid (each thumbnail saved once, in the
        cell's HTML); one still running as a live grid that fills in cell by cell, with
        the grid as it is now as the text/html fallback (nbviewer, a saved notebook)."""
        html = self.grid()._repr_html_()
        bundle: dict[str, Any] = {"text/plain": repr(self), "text/html": html}
        if self.done:
            return bundle
        if self._view is None:
            from ._live_grid import LiveGrid  # ipywidgets loads when a running sweep is first shown

            self._view = LiveGrid(self, link_base=os.getcwd())
        bundle.update(self._view.mimebundle())
        bundle["text/html"] = html  # frontends without the widget manager still see the grid
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return f"<Sweep {self.id}: {self.progress_line()}>"


def _value(cell: SweepCell, name: str) -> Any:
    if name in cell.coords:
        return _label_value(name, cell.coords[name])
    if name == "prompt":
        return cell.request.prompt
    return getattr(cell.request, name, None)


def _label_value(name: str, value: Any) -> Any:
    """Axis values as a person reads them: input images by file name, not by repr."""
    if name != "image_urls":
        return value
    images = value if isinstance(value, (list, tuple)) else [value]
    return ", ".join(_image_label(x) for x in images)


def _logged_cell(cell: SweepCell) -> dict[str, Any]:
    """The cell's axis values as the log stores them (JSON): an input image given as a
    path or URL as given, any other (a Result, a PIL image, bytes) by its sha256, the way
    ``images_in`` names it."""
    value = cell.coords.get("image_urls")
    if value is None:
        return cell.coords
    given = value if isinstance(value, (list, tuple)) else [value]
    names = [os.fspath(x) if isinstance(x, (str, os.PathLike)) else ref.canonical
             for x, ref in zip(given, cell.request.images, strict=True)]
    return {**cell.coords, "image_urls": names if isinstance(value, (list, tuple)) else names[0]}


def _image_label(image: Any) -> str:
    if isinstance(image, (str, os.PathLike)):
        tail = str(image).rstrip("/").rsplit("/", 1)[-1]
        return tail if len(tail) <= 40 else tail[:18] + "…" + tail[-18:]
    try:
        ref = to_image_ref(image)
    except ImageInputError:
        return type(image).__name__
    return f"image {ref.sha256[:10]}" if ref.sha256 else str(ref.url)


class _Slot:
    """One cell's place among the tasks in flight (``async with``): waits until the
    session's width estimate (and the sweep's cap) leaves room, and tells the estimate
    how the task went: its server time if it completed, a 429 if one was seen."""

    def __init__(self, session: Session, cap: int | None) -> None:
        self.session, self.cap = session, cap
        self.width = session.width
        self._sent = 0.0
        self._served: float | None = None

    def served(self) -> None:
        if self._served is None:
            self._served = time.monotonic() - self._sent

    async def __aenter__(self) -> Self:
        cond = _room(self.session)
        async with cond:
            await cond.wait_for(lambda: self.width.in_flight < self.width.limit(self.cap))
            self._ticket = self.width.sent()
        self._hits = self.session.aio.rate_gate.hits
        self._sent = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session.aio.rate_gate.hits > self._hits:
            self.width.rate_limited()
        done = self._served is not None
        self.width.ended(self._ticket, self._served, time.monotonic() if done else None)
        cond = _room(self.session)
        async with cond:  # wake as many waiting cells as there are free slots (not every one of them)
            cond.notify(max(1, self.width.limit(self.cap) - self.width.in_flight))


_ROOM: weakref.WeakKeyDictionary[Session, asyncio.Condition] = weakref.WeakKeyDictionary()


def _room(session: Session) -> asyncio.Condition:
    """The condition a session's sweeps wait on for room (made on the portal loop, where they run)."""
    cond = _ROOM.get(session)
    if cond is None:
        cond = _ROOM[session] = asyncio.Condition()
    return cond


def sweep(
    prompts: str | Iterable[str],
    *,
    budget_usd: float | None = None,
    confirm: bool = False,
    concurrency: int | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    tags: list[str] | None = None,
    start: bool = True,
    quiet: bool = False,
    **axes: Any,
) -> Sweep:
    """Sweep prompt templates × any fields; returns at once, runs in the background.

    Every cell is planned and checked first (one ``RequestError`` names every problem
    with the cells it breaks) and the cost is printed before anything is sent. Each
    cell runs the way ``wan.generate`` does: logged before it is sent, taken up (not
    sent again) after a kernel restart, served from disk when identical to a finished
    fixed-seed run. The sweep's id is a hash of its definition, and its random seeds
    are drawn from that id: running the same cell again resumes the same sweep.

    Parameters
    ----------
    prompts : str or list of str
        A prompt, or a template with ``{placeholders}`` (``"a {animal} in snow"``); a
        list of them is an axis of its own.
    budget_usd : float, optional
        Above this cost the sweep does not start without ``confirm=True`` (default: the
        session's per-sweep budget, $2.00 until ``wan.set_budget(per_sweep=...)``). The
        session's cap, ``wan.set_budget(usd)``, is never exceeded, confirmed or not.
    confirm : bool, default False
        Start a sweep that costs more than ``budget_usd``.
    concurrency : int, optional
        At most this many cells in flight (1 or more); by default as many as the server
        takes, found while the sweep runs and kept for the session's next sweeps.
    fresh : bool, default False
        New random seeds and new runs for every cell, even those in the log (billed again).
    timeout : float, optional
        Seconds each cell may take (default: the connection's).
    tags : list of str, optional
        Labels kept with every cell's run in the log.
    start : bool, default True
        False: plan and check only; ``sw.start()`` runs it.
    quiet : bool, default False
        Do not print the plan line.
    **axes
        The fields and the placeholders' values, by name. One value is the same in every
        cell; a list or ``range`` is an axis, and the cells are every combination, axes in
        the order given (with two or more, the first is the grid's rows). Any field ``wan.run`` takes
        (``seed``, ``aspect_ratio``, ``resolution``, ``n``, ``thinking_mode``,
        ``watermark``, ``color_palette``, ``image_urls``, ``bbox_list``, ``action``; ``mode``
        is ``action``), checked by the same rules. ``seed`` also takes ``"1-8"``,
        ``"3, 5, 9"`` or ``wan.random_seeds(k)``. A list-valued field (palettes, image sets,
        bbox lists) is an axis when given a list of such values, or ``wan.vary([...])``.
        A name that is neither a field nor a placeholder is a RequestError with a
        "did you mean". (Kept as ``**axes``, not named parameters: their order is the grid's.)

    Returns
    -------
    Sweep
        Shows itself as a grid that fills in live; ``sw.wait()``, ``sw.cancel()``,
        ``sw.retry_failed()``, ``sw.df`` (its runs in the log).
    """
    if concurrency is not None and not is_whole(concurrency):
        raise RequestError([Problem("concurrency", "whole_number",
                                    "must be a whole number of cells at once, 1 or more, or None to follow the "
                                    f"server's width (got {concurrency!r})")])
    budget_usd = check_usd("budget_usd", budget_usd)
    check_seconds("timeout", timeout)
    check_labels(tags, None)  # before the plan: a bad tag refuses the sweep, not each of its cells
    sess = session()
    plan = plan_sweep(prompts, dict(axes), salt=_fresh_salt() if fresh else "")
    for cell in plan.cells[:1]:
        emit_warnings(cell.request, caller_depth=1)
    to_pay = _cost_to_pay(sess, plan, fresh)
    line = (f"sweep {plan.sweep_id}: {len(plan.cells)} task(s), {plan.images} image(s), "
            f"{quota_usd(plan.cost_quota)} in all; {quota_usd(to_pay)} to pay "
            f"({quota_usd(plan.cost_quota - to_pay)} already in the log) · "
            + (f"at most {concurrency} at once" if concurrency is not None
               else f"as many at once as the server takes (now {sess.width.limit()})"))
    if not quiet:
        print(line)  # noqa: T201 - the sweep's plan line before it starts; quiet=True silences it
    usd = _spec.quota_to_usd(to_pay)
    limit, source = ((budget_usd, "budget_usd") if budget_usd is not None
                     else (sess.sweep_budget_usd, "the session's per-sweep budget"))
    if limit is not None and usd > limit and not confirm:
        raise BudgetError(
            f"{line}: above {source} ({budget(limit)}); nothing was sent.",
            hint="Pass confirm=True to run it anyway, or make the sweep smaller.",
            cost_usd=usd,
            limit_usd=limit,
            confirmable=True,
        )
    sess.budget.check(to_pay, what=f"sweep {plan.sweep_id}")
    sw = Sweep(
        plan,
        sess,
        concurrency=None if concurrency is None else int(concurrency),
        fresh=fresh,
        timeout=timeout,
        tags=list(tags or []),
    )
    return sw.start() if start else sw


def _fresh_salt() -> str:
    import uuid

    return uuid.uuid4().hex


def _cost_to_pay(sess: Session, plan: Plan, fresh: bool) -> int:
    """Quota the sweep will really spend: cells already done (resume or cache) are free."""
    if fresh:
        return plan.cost_quota
    done = sess.completed_hashes(c.request.request_hash for c in plan.cells)

    def free(req: Request) -> bool:
        sweeps = done.get(req.request_hash, set())
        return plan.sweep_id in sweeps or (bool(sweeps) and not req.seed_random)

    return sum(c.request.cost_quota for c in plan.cells if not free(c.request))


def _text(value: Any) -> str:
    return short(value if isinstance(value, str) else str(value), 60)
