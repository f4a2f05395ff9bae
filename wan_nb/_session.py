"""The session: which API, which run folder, and how one run is carried out.

``connect()`` picks the backend (hosted API with a key; the built-in simulator
without one) and says so in one line. ``Session.arun`` is the one path every run
takes, whether it comes from ``wan.generate``, a sweep cell or a form:

1. the same run seen before (same request, same sweep) is taken up, not re-sent: a
   completed one is returned from the log, one in flight (or unconfirmed) is driven
   on with its task id or its Idempotency-Key, so the server returns the task it
   already made; one whose images were lost says so and sends nothing;
2. a fixed-seed request identical to a completed one is a cache hit: served from
   the files on disk at zero cost and logged as such (``fresh=True`` skips this);
3. otherwise the run claims its Idempotency-Key in the log BEFORE the submit (one
   row per key, so two processes running the same cell share one row and one
   bill), and moves through the states of ``_states``: the cost is written the
   moment the server says the task completed, and the final state, the cost and the
   images are committed in one transaction.

The log is written on its own thread and read through ``asyncio.to_thread``: a log
locked by another process never stalls the event loop (polls, Ctrl-C cancels).
The session holds the ``AsyncClient``; the sync faces (``run``, ``fetch``) are
only at the top edge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import logging
import os
import re
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from . import _config, _spec
from . import _states as S
from ._budget import Budget
from ._client import AsyncClient, Client, Uploader
from ._colab import enable_in_colab
from ._curation import tag_problem
from ._exceptions import (
    ConfigError,
    DownloadError,
    InvalidRequestError,
    LinkExpiredError,
    LogWriteError,
    Problem,
    RequestError,
    TaskError,
    TaskTimeout,
    WanError,
    WanWarning,
)
from ._log import Log, records, writer
from ._log_rows import stored_images
from ._money import quota_usd, usd
from ._options import check_seconds
from ._portal import get_portal
from ._request import Request
from ._result import Result
from ._store import Store
from ._text import text_problem
from ._width import WidthEstimate
from ._wire import Task

SIM_KEY = "sim-local"  # what the client sends to the simulator; not a secret
INTERRUPTED_WRITE_S = 1.0  # Ctrl-C waits at most this long for the log (the server was told first)
RECORD_RETRY_S = (0.5, 10.0)  # a refused write of what the server did is tried again: first wait, longest wait
CLAIM_RETRY_S = 10.0  # a claim the log refused for now (a dropped database connection) is tried again this long
# what a run's state says about its money, for "…, not yet recorded: <why>"
_MONEY_WORD = {**dict.fromkeys(S.BILLED, "billed"), **dict.fromkeys(S.REFUNDED, "refunded"),
               **dict.fromkeys(S.MAYBE_BILLED, "may be billed"), S.ERROR: "not sent"}

log = logging.getLogger("wan_nb")

RunUpdate = Callable[[str, Task], Any]
Note = Callable[[str | None], None]
T = TypeVar("T")


class Session:
    """A connection (client + run folder + log) and the run pipeline on top of it."""

    def __init__(self, client: AsyncClient | Client, *, backend: str, simulator: Any = None,
                 log: _config.LogTarget | None = None) -> None:
        self.aio: AsyncClient = client.aio if isinstance(client, Client) else client
        self.client = Client.of(self.aio)  # the sync face, for top-edge calls (wan.cancel)
        self.backend = backend
        self.simulator = simulator
        self.store: Store = self.aio.store
        self.home = Path(self.store.root)
        # the run folder's own log.sqlite, or a team's log (a PostgreSQL URL) with this folder as its home
        self.log = Log(log if log is not None else self.home / "log.sqlite", home=self.home)
        self.records = records(self.log)  # the run pipeline's look-ups
        self.writer = writer(self.log)  # claims and state moves, on the log's writer thread
        self.budget = Budget()
        self.sweeps: weakref.WeakSet[Any] = weakref.WeakSet()  # running sweeps, cancelled on close
        self.width = WidthEstimate()  # tasks in flight, learnt from the server: shared by every sweep

    def __repr__(self) -> str:
        return (f"<wan_nb Session {self.backend} {self.aio.base_url} home={str(self.home)!r}"
                + ("" if self.log.kind == "sqlite" else f" log={self.log.location!r}") + ">")

    # -- money (``Budget``; these are the figures users read) ----------------------------
    @property
    def budget_usd(self) -> float | None:
        """Session-wide cap, never exceeded (None: no cap)."""
        return self.budget.limit_usd

    @budget_usd.setter
    def budget_usd(self, value: Any) -> None:
        self.budget.limit_usd = value

    @property
    def sweep_budget_usd(self) -> float | None:
        """Above it a sweep needs ``confirm=True`` (None: never ask)."""
        return self.budget.sweep_limit_usd

    @sweep_budget_usd.setter
    def sweep_budget_usd(self, value: Any) -> None:
        self.budget.sweep_limit_usd = value

    @property
    def billed_usd(self) -> float:
        """What the server said it billed through this session."""
        return _spec.quota_to_usd(self.budget.billed_quota)

    @property
    def unconfirmed_usd(self) -> float:
        """Runs with no answer that may have been billed (settled by running them again)."""
        return _spec.quota_to_usd(self.budget.unconfirmed_quota)

    @property
    def spent_usd(self) -> float:
        """Billed plus unconfirmed: what the budget counts."""
        return _spec.quota_to_usd(self.budget.spent_quota)

    def completed_hashes(self, hashes: Iterable[str]) -> dict[str, set[str | None]]:
        """request_hash → sweep ids of completed runs whose files are on disk, for these
        ``hashes`` only (indexed look-ups: a sweep never reads the whole log)."""
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, set[str | None]] = {}
        for i in range(0, len(wanted), 500):
            # by hash alone (a handful of rows each): with the status too, SQLite may pick the
            # status index and read every completed run of the log
            for row in self.records.find_runs(request_hash=wanted[i:i + 500]):
                if row["status"] == S.COMPLETED and self._files_ok(row):
                    out.setdefault(row["request_hash"], set()).add(row.get("sweep_id"))
        return out

    def resumed(self, requests: Iterable[Request], sweep_id: str) -> dict[str, Result]:
        """request_hash -> the result an earlier run of this sweep already has, for each
        request it has one of: read in a few indexed queries, not one per cell (resuming a
        1,000-cell sweep). The rule is ``_take_up``'s own: the sweep's latest run of the
        request, completed (or a cache hit), its files on disk. Reads the log: call it off
        the event loop."""
        by_hash = {r.request_hash: r for r in requests}
        hashes = list(by_hash)
        latest: dict[str, dict[str, Any]] = {}
        for i in range(0, len(hashes), 500):
            for row in self.records.find_runs(request_hash=hashes[i:i + 500], sweep_id=sweep_id):
                latest[row["request_hash"]] = row  # oldest first: the last one wins
        out = {}
        for request_hash, row in latest.items():
            taken = row.get("cache_hit") or row.get("idempotency_key") is None or row["status"] == S.COMPLETED
            if taken and self._files_ok(row):
                out[request_hash] = self._result_from_row(row, by_hash[request_hash])
        return out

    def close(self) -> None:
        """Cancel running sweeps (queued tasks refunded), then close the client and simulator."""
        for sw in list(self.sweeps):
            if sw.running:
                sw.cancel()
        try:
            self.client.close()
        finally:
            if self.simulator is not None:
                self.simulator.stop()

    # -- the log, off the event loop -----------------------------------------------
    async def _write(self, fn: Callable[..., T], *args: Any, within: float | None = None, **kw: Any) -> T | None:
        """``fn(*args, **kw)`` on the log's writer thread, awaited without blocking the loop.

        Shielded: once submitted, a write is never cancelled half-way by the caller's
        cancellation. ``within``: wait at most that long (the write still happens).
        """
        fut = asyncio.shield(asyncio.wrap_future(self.writer.submit(fn, *args, **kw)))
        if within is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, within)
        except TimeoutError:
            return None

    async def _record(self, note: Note, fn: Callable[..., T], *args: Any, **kw: Any) -> T | None:
        """A write of what the server did (billed, refunded, images fetched): never dropped.

        A write the log refuses for now (another process holds its lock past the busy
        timeout, the disk is full) is tried again until it lands; the budget already
        counts the money. Meanwhile ``note`` says why (and is cleared when it lands). If
        the process ends first, the next run of the request settles it through the same
        Idempotency-Key.
        """
        delay, longest = RECORD_RETRY_S
        noted = False
        while True:
            try:
                done = await self._write(fn, *args, **kw)
            except LogWriteError as exc:
                log.warning("%s; trying again in %.1f s", exc, delay)
                note(exc.why)
                noted = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
                continue
            if noted:
                note(None)
            return done

    async def _claim_write(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T | None:
        """A write before anything is sent (the claim, its inputs): one the log refuses for
        now (a team's database connection dropped mid-transaction) is tried again for up to
        ``CLAIM_RETRY_S``; a claim is idempotent (same run id, same key). Past that, the run
        fails with nothing sent and nothing billed."""
        deadline = time.monotonic() + CLAIM_RETRY_S
        delay, longest = RECORD_RETRY_S
        while True:
            try:
                return await self._write(fn, *args, **kw)
            except LogWriteError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s; trying again in %.1f s (nothing sent yet)", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)

    def _write_later(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Queue a write in order, not waited for (progress: the next write lands after it)."""
        self.writer.submit(fn, *args, **kw)

    def _history(self, request_hash: str) -> list[dict[str, Any]]:
        """Runs of this request, oldest first, each with ``files_ok`` (runs in a worker thread)."""
        rows = self.records.find_runs(request_hash=request_hash)
        for row in rows:
            row["files_ok"] = self._files_ok(row)
        return rows

    def _run_row(self, run_id: str) -> dict[str, Any] | None:
        row = self.records.get_run(run_id)
        if row is not None:
            row["files_ok"] = self._files_ok(row)
        return row

    # -- the run pipeline ----------------------------------------------------------
    def run(self, request: Request, *, tick: Callable[[], None] | None = None, **kw: Any) -> Result:
        """Blocking ``arun`` (works in scripts and inside Jupyter); ``tick`` as in Portal.run."""
        return get_portal().run(self.arun(request, **kw), tick=tick)

    async def arun(
        self,
        request: Request,
        *,
        fresh: bool = False,
        timeout: float | None = None,
        sweep_id: str | None = None,
        cell: dict[str, Any] | None = None,
        cell_index: int | None = None,
        tags: list[str] | None = None,
        note: str | None = None,
        on_update: RunUpdate | None = None,
        prefer_wait: float | None = None,
    ) -> Result:
        """Run ``request`` the one way every run goes (see the module docstring).

        ``prefer_wait``: how long the server may hold the submit (None: the client's
        setting); a form passes a short one so its status line follows the task.
        """
        check_seconds("timeout", timeout)
        check_seconds("prefer_wait", prefer_wait)
        check_labels(tags, note)
        base = {"sweep_id": sweep_id, "cell": cell, "cell_index": cell_index, "tags": tags or [], "note": note,
                "user": _config.user()}
        for _ in range(3):  # a claim lost to another process is looked at again
            history = [] if fresh else await asyncio.to_thread(self._history, request.request_hash)
            mine = [r for r in history if r.get("sweep_id") == sweep_id]
            if mine:
                taken = await self._take_up(mine[-1], request, timeout, on_update, own_sweep=sweep_id is not None,
                                            prefer_wait=prefer_wait)
                if taken is not None:
                    return taken
            if not request.seed_random and not fresh:
                done = [r for r in history if r["status"] == S.COMPLETED and r["files_ok"]]
                if done:
                    return await self._record_cache_hit(request, done[-1], base)

            spent = sum(1 for r in history if r["status"] in S.SPENT_KEY)
            salt = uuid.uuid4().hex if fresh else (f"attempt{spent}" if spent else "")
            run_id, placed, key, row, won = await self._claim(request, base, salt)
            if won:
                return await self._execute(run_id, placed, key, None, timeout, on_update,
                                           held=request.cost_quota, billed_before=False, prefer_wait=prefer_wait)
            self.budget.settle(run_id, request.cost_quota, S.ERROR, 0)  # another run holds the key
            if row is not None and row.get("sweep_id") != sweep_id:
                # the same request in another sweep (or outside one), claimed first: share its task
                other = await asyncio.to_thread(self._run_row, row["run_id"])
                if other is not None:
                    shared = await self._take_up(other, request, timeout, on_update, own_sweep=True,
                                                 prefer_wait=prefer_wait)
                    if shared is not None:
                        return await self._record_cache_hit(request, None, base, result=shared)
        raise RuntimeError(f"the log keeps changing under this run ({self.log.location}); run it again")

    async def _claim(self, request: Request, base: dict[str, Any], salt: str
                     ) -> tuple[str, Request, str, dict[str, Any] | None, bool]:
        """Budget held, inputs placed, the row claimed under the request's key: (run id, the
        placed request, its key, the row that holds the key, whether that row is this run)."""
        run_id = _new_run_id()
        self.budget.hold(None, request.cost_quota, checked=True)  # before the claim: a refused run leaves no trace
        try:
            placed = await self._place_inputs(request)
            key = placed.idempotency_key(salt)
            row = await self._claim_write(self.writer.claim_run, {
                **base, **placed.to_row(), "run_id": run_id, "created_at": time.time(),
                "backend": self.backend, "idempotency_key": key, "status": S.PLANNED, "cache_hit": False})
            won = row is not None and row["run_id"] == run_id
            if won and placed.images:
                await self._claim_write(self.writer.add_inputs, run_id, placed.images)
        except BaseException as exc:
            self.budget.settle(run_id, request.cost_quota, S.ERROR, 0)
            if isinstance(exc, asyncio.CancelledError):  # after the claim (if it lands): nothing was sent
                self._write_later(self.writer.transition, run_id, S.CANCELLED, cost_quota=0, cost_usd=0.0,
                                  error_message="cancelled before it was sent")
            raise
        return run_id, placed, key, row, won

    async def _take_up(self, row: dict[str, Any], request: Request, timeout: float | None,
                       on_update: RunUpdate | None, *, own_sweep: bool,
                       prefer_wait: float | None = None) -> Result | None:
        """This request's earlier run: its result, driven on, or an error; None = run anew."""
        status = row["status"]
        if row.get("cache_hit") or row.get("idempotency_key") is None:
            return self._result_from_row(row, request) if own_sweep and row["files_ok"] else None
        if status == S.COMPLETED and row["files_ok"]:
            return self._result_from_row(row, request) if own_sweep else None
        if status == S.IMAGES_LOST:
            err = LinkExpiredError(_lost_message(row))
            err.run_id, err.run_state = row["run_id"], status
            raise err
        if status in S.RESUMABLE or status == S.COMPLETED:  # completed, files deleted: fetch again
            billed_before = status in S.BILLED
            held = 0 if billed_before else request.cost_quota
            self.budget.hold(row["run_id"], held, checked=status == S.ERROR)  # in flight: owed, not a new spend
            try:
                if status == S.ERROR:  # refused before any task existed: placed anew (a dead link is not resent)
                    request = await self._place_inputs(request)
                    if request.images:
                        await self._write(self.writer.add_inputs, row["run_id"], request.images)
                else:
                    request = await asyncio.to_thread(self._as_sent_before, request, row["run_id"])
            except BaseException:
                self.budget.settle(row["run_id"], held, S.ERROR, 0)
                raise
            return await self._execute(row["run_id"], request, row["idempotency_key"], row.get("task_id"),
                                       timeout, on_update, held=held, billed_before=billed_before,
                                       prefer_wait=prefer_wait)
        return None  # failed or cancelled (refunded): a new attempt with a new key

    # -- input images ----------------------------------------------------------------
    async def _place_inputs(self, request: Request) -> Request:
        """Each input image as it will be sent (``AsyncClient.place``), after looking in
        the log for a result link of the same bytes: a file of the run folder, or any
        image the API made, goes out as its link while it lives instead of being
        uploaded. An input that cannot be sent is a RequestError here, before anything
        is logged, sent or billed."""
        if not request.images:
            return request
        server_now = self.aio.server_clock.now()  # link expiries are the server's times
        dead = await asyncio.to_thread(self.records.dead_links, [r.url for r in request.images if r.sha256 and r.url],
                                       server_now)
        refs = []
        for given in request.images:
            ref = given
            if ref.url in dead:  # refused as expired before (freed early): its bytes go another way
                ref = dataclasses.replace(ref, url=None, expires_at=None)
            if ref.sha256 and ref.live_url(self.aio.link_margin, server_now) is None:
                # an expired one still tells when it ended
                link = await asyncio.to_thread(self.records.result_link, ref.sha256)
                if link is not None and link[1] > (ref.expires_at or 0):
                    ref = dataclasses.replace(ref, url=link[0], expires_at=link[1])
            refs.append(ref)
        return await self.aio.prepare_inputs(dataclasses.replace(request, images=tuple(refs)))

    def _as_sent_before(self, request: Request, run_id: str) -> Request:
        """A resumed run sends the result links it sent the first time, placed as they
        were (``AsyncClient.place`` keeps them), so a re-submit with the same
        Idempotency-Key carries the same body and the server replays its task.
        Reads the log: call it off the event loop."""
        sent = {row["idx"]: row for row in self.records.inputs(run_id) if row["via"] == "link"}
        refs = tuple(
            dataclasses.replace(ref, url=sent[i]["url"], expires_at=sent[i]["expires_at"], via="link")
            if i in sent and sent[i]["sha256"] == ref.sha256 else ref
            for i, ref in enumerate(request.images)
        )
        return dataclasses.replace(request, images=refs)

    async def _execute(self, run_id: str, request: Request, key: str, task_id: str | None,
                       timeout: float | None, on_update: RunUpdate | None, *, held: int,
                       billed_before: bool, prefer_wait: float | None = None) -> Result:
        """Drive one claimed run to its end, writing each state it passes."""
        last: list[Task] = []

        def update(task: Task) -> None:  # on the loop: never waits for the log
            before = last[0].status if last else None
            last[:] = [task]
            if task.status in (S.QUEUED, S.PROCESSING) and task.status != before:
                cols: dict[str, Any] = {"task_id": task.task_id}
                if task.status == S.PROCESSING:
                    cols["started_at"] = time.time()
                self._write_later(self.writer.transition, run_id, task.status, **cols)
            if on_update is not None:
                on_update(run_id, task)

        try:
            done = await self.aio.complete(request, idempotency_key=key, task_id=task_id, timeout=timeout,
                                           on_update=update, prefer_wait=prefer_wait)
        except asyncio.CancelledError:
            task = last[0] if last else None
            state, cols = _interrupted(task, request)
            await self._write(self.writer.transition, run_id, state, **cols, within=INTERRUPTED_WRITE_S)
            self.budget.settle(run_id, held, state, 0 if billed_before else (cols.get("cost_quota") or 0))
            raise
        except WanError as caught:
            exc = await self._mark_dead_inputs(caught, request)
            task = last[0] if last else None
            state, cols = self._stopped_by(exc, task)
            self.budget.settle(run_id, held, state, 0)
            final = await self._record(_noter(on_update, run_id, task, state), self.writer.transition, run_id, state,
                                       **cols)
            exc.run_id, exc.run_state = run_id, final or state
            if exc is not caught:
                raise exc from caught
            raise
        except BaseException:
            self.budget.settle(run_id, held, S.UNCONFIRMED, 0)
            raise
        return await self._deliver(run_id, request, done.task, held=held, billed_before=billed_before,
                                   submitted_at=done.submitted_at, finished_at=done.finished_at, on_update=on_update)

    async def _mark_dead_inputs(self, exc: WanError, request: Request) -> WanError:
        """A 400 saying that input links we sent have expired, though they announced a later
        end (the server freed them early): they are marked dead in the log, so running the
        same request again uploads the files instead of sending the dead links forever."""
        if not isinstance(exc, InvalidRequestError):
            return exc
        dead = []
        for p in exc.problems:
            found = re.fullmatch(r"image_urls\[(\d+)\]", p.field)
            if found is None or "expired" not in f"{p.rule} {p.message}":
                continue
            idx = int(found.group(1))
            ref = request.images[idx] if idx < len(request.images) else None
            if ref is not None and ref.sha256 and ref.url and ref.via != "upload":
                dead.append(ref.url)
        if not dead:
            return exc
        now = self.aio.server_clock.now()  # on the clock link expiries are written in
        for url in dead:
            await self._write(self.writer.mark_link_dead, url, now)
        return InvalidRequestError(
            f"{exc.message} — {len(dead)} input link(s) ended before the expiry they announced (the server freed "
            "them early); the log now marks them dead, so running the same request again uploads the file(s) "
            "instead (nothing was billed)",
            status=exc.status, code=exc.code, task_id=exc.task_id, body=exc.body)

    async def _deliver(self, run_id: str, request: Request | None, task: Task, *, held: int, billed_before: bool,
                       submitted_at: float | None, finished_at: float, on_update: RunUpdate | None = None) -> Result:
        """A completed task: its cost is the server's word, written now (``_record``: never
        dropped); then its images, committed with the final state and the cost in one
        transaction."""
        price = request.cost_quota if request is not None else 0
        cost = task.cost if task.cost is not None else price
        money: dict[str, Any] = {"task_id": task.task_id, "cost_quota": cost, "cost_usd": _spec.quota_to_usd(cost),
                                 "finished_at": finished_at}
        if submitted_at is not None:
            money["submitted_at"] = submitted_at
        self.budget.settle(run_id, held, S.DOWNLOADING, 0 if billed_before else cost)
        note = _noter(on_update, run_id, task, S.DOWNLOADING)
        # committed before the download starts: a kernel that dies while fetching leaves
        # the run billed at the server's cost, and the next run fetches its images
        await self._record(note, self.writer.transition, run_id, S.DOWNLOADING, **money)
        try:
            images = await self.aio.download(task)
        except LinkExpiredError as exc:
            cause: DownloadError = exc
            err: DownloadError = LinkExpiredError(
                f"{exc} — task {task.task_id} was billed {quota_usd(cost)} and its images are "
                "lost; the log records it as billed (images_lost). Running the same request again does not pay "
                "again (it sends nothing); fresh=True pays for a new run")
            state, code = S.IMAGES_LOST, "link_expired"
        except DownloadError as exc:
            cause = exc
            err = DownloadError(
                f"{exc} — task {task.task_id} was billed {quota_usd(cost)}; its images are not on "
                "disk yet. Running the same request again downloads them at no extra cost while the links last "
                f"({_spec.OUTPUT_LINK_HOURS} h)")
            state, code = S.DOWNLOADING, "download_failed"
        else:
            final = await self._record(note, self.writer.transition, run_id, S.COMPLETED, images=images, **money,
                                       downloaded_at=time.time(), error_code=None, error_message=None)
            return Result(run_id, request, task.task_id, final or S.COMPLETED, images,
                          0 if billed_before else cost, warnings=request.warnings if request else (), log=self.log,
                          timings={"submitted_at": submitted_at, "finished_at": finished_at,
                                   "downloaded_at": time.time()})
        final = await self._record(note, self.writer.transition, run_id, state, **money, error_code=code,
                                   error_message=str(err))
        err.run_id, err.run_state = run_id, final or state
        raise err from cause

    def _stopped_by(self, exc: WanError, task: Task | None) -> tuple[str, dict[str, Any]]:
        """The state (and columns) a run is left in when ``exc`` stopped it before completion."""
        cols: dict[str, Any] = {"error_code": getattr(exc, "code", None) or type(exc).__name__,
                                "error_message": str(exc), "finished_at": time.time()}
        if task is not None:
            cols["task_id"] = task.task_id
        if isinstance(exc, TaskError) and exc.task is not None and exc.task.status in S.REFUNDED:
            return exc.task.status, {**cols, "cost_quota": 0, "cost_usd": 0.0}
        if isinstance(exc, TaskTimeout):  # still on the server: it may finish and be billed
            return getattr(exc.task, "status", None) or S.UNCONFIRMED, cols
        if task is not None or self.aio.may_have_created(exc):
            return S.UNCONFIRMED, {**cols, "cost_quota": None, "cost_usd": None}
        return S.ERROR, {**cols, "cost_quota": 0, "cost_usd": 0.0}  # refused: no task was made

    async def _record_cache_hit(self, request: Request, source: dict[str, Any] | None, base: dict[str, Any],
                                result: Result | None = None) -> Result:
        """A zero-cost row for this request, showing the images of ``source`` (or of ``result``)."""
        run_id = _new_run_id()
        now = time.time()
        images = stored_images(source) if source is not None else list(result.images if result else [])
        from_run = source["run_id"] if source is not None else (result.run_id if result else None)
        task_id = source.get("task_id") if source is not None else (result.task_id if result else None)
        await self._write(self.writer.add_run, {
            **base, **request.to_row(), "run_id": run_id, "created_at": now, "backend": self.backend,
            "task_id": task_id, "status": S.COMPLETED, "cost_quota": 0, "cost_usd": 0.0, "cache_hit": True,
            "cached_from": from_run, "submitted_at": now, "finished_at": now, "downloaded_at": now}, images)
        return Result(run_id, request, task_id, S.COMPLETED, images, 0, cache_hit=True, log=self.log,
                      cached_from=from_run, warnings=request.warnings)

    def _result_from_row(self, row: dict[str, Any], request: Request | None) -> Result:
        return Result(row["run_id"], request, row.get("task_id"), row["status"], stored_images(row),
                      0, log=self.log, cache_hit=bool(row.get("cache_hit")), cached_from=row.get("cached_from"),
                      warnings=request.warnings if request else ())

    def _files_ok(self, row: dict[str, Any]) -> bool:
        images = row.get("images") or []
        return bool(images) and all(img.get("path") is not None and Path(img["path"]).is_file() for img in images)

    # -- tasks by id ---------------------------------------------------------------
    def fetch(self, task_id: str) -> Result:
        """Images of a task by id (e.g. one that outlived a deadline), stored and logged."""
        return get_portal().run(self.afetch(task_id))

    async def afetch(self, task_id: str) -> Result:
        rows = await asyncio.to_thread(self.records.find_runs, task_id=task_id)
        if rows:
            row = rows[-1]
            run_id, price = row["run_id"], int(row.get("est_quota") or 0)
            billed_before = row["status"] in S.BILLED
        else:
            run_id, price, billed_before = _new_run_id(), 0, False
        held = 0 if billed_before else price
        self.budget.hold(run_id, held, checked=False)  # already sent: owed
        try:
            task = await self.aio.wait(task_id)
            if not rows:
                await self._record(_noter(None, run_id, None, S.PLANNED), self.writer.add_run, {
                    "run_id": run_id, "created_at": time.time(), "backend": self.backend, "task_id": task_id,
                    "user": _config.user(),
                    "action": task.action, "model": task.model, "status": S.PLANNED})
        except WanError as exc:
            if rows:
                state, cols = self._stopped_by(exc, None)
                state = S.UNCONFIRMED if state == S.ERROR else state  # the task was made: it may be billed
                final = await self._record(_noter(None, run_id, None, state), self.writer.transition, run_id,
                                           state, **cols)
                exc.run_id, exc.run_state = run_id, final or state
            self.budget.settle(run_id, held, S.ERROR, 0)
            raise
        except BaseException:
            self.budget.settle(run_id, held, S.UNCONFIRMED, 0)
            raise
        return await self._deliver(run_id, None, task, held=held, billed_before=billed_before,
                                   submitted_at=None, finished_at=time.time())


def _noter(on_update: RunUpdate | None, run_id: str, task: Task | None, state: str) -> Note:
    """What ``_record`` says while the log refuses a write: the run's status line hears
    its task with a note ("billed, not yet recorded: the disk is full"), then without."""
    def note(why: str | None) -> None:
        if on_update is None or task is None:
            return
        text = None if why is None else f"{_MONEY_WORD.get(state, state)}, not yet recorded: {why}"
        on_update(run_id, dataclasses.replace(task, note=text))

    return note


def check_labels(tags: Any, note: Any) -> None:
    """``tags`` (a list of text) and ``note`` (text) as the log stores them; RequestError otherwise."""
    problems = []
    if tags is not None and (isinstance(tags, str) or not isinstance(tags, (list, tuple))):
        problems.append(Problem("tags", "type", f"must be a list of text labels (got {tags!r})"))
    for i, tag in enumerate(tags if isinstance(tags, (list, tuple)) else []):
        bad = "must be text" if not isinstance(tag, str) else text_problem(tag)
        problem = Problem(f"tags[{i}]", "text", f"{bad} (got {tag!r})") if bad else tag_problem(f"tags[{i}]", tag)
        if problem is not None:  # the one tag rule: what r.tag() takes, generate(tags=) takes
            problems.append(problem)
    if note is not None:
        bad = "must be text" if not isinstance(note, str) else text_problem(note)
        if bad:
            problems.append(Problem("note", "text", bad))
    if problems:
        raise RequestError(problems)


def _interrupted(task: Task | None, request: Request) -> tuple[str, dict[str, Any]]:
    """Where Ctrl-C leaves a run: only what the server confirmed. A task it cancelled
    is refunded; one still running, or a submit with no answer, may be billed: the
    next run of the cell takes it up with the same key instead of paying again."""
    cols: dict[str, Any] = {"error_message": "interrupted"}
    if task is None:
        return S.UNCONFIRMED, cols
    cols["task_id"] = task.task_id
    if task.status in S.REFUNDED:
        return task.status, {**cols, "cost_quota": 0, "cost_usd": 0.0, "finished_at": time.time()}
    if task.status == S.COMPLETED:  # the cancel came too late: billed, images still to fetch
        cost = task.cost if task.cost is not None else request.cost_quota
        return S.DOWNLOADING, {**cols, "cost_quota": cost, "cost_usd": _spec.quota_to_usd(cost)}
    return task.status, cols


def _lost_message(row: dict[str, Any]) -> str:
    cost = _spec.quota_to_usd(int(row.get("cost_quota") or 0))
    return (f"task {row.get('task_id')} of this request was billed {usd(cost)}, but its result links expired "
            f"before the images were downloaded (run {row['run_id']} is images_lost in the log); nothing was "
            "sent now. Pass fresh=True to pay for a new run of it")


def _new_run_id() -> str:
    return "run-" + uuid.uuid4().hex[:16]


# -- the current session -----------------------------------------------------------
_current: Session | None = None


def connect(
    api_key: str | None = None,
    base_url: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    log: str | os.PathLike[str] | None = None,
    uploader: Uploader | None = None,
    ask: bool = False,
    timeout: float = _config.DEFAULT_TIMEOUT,
    http_timeout: float = _config.HTTP_TIMEOUT,
    latency: float = 1.5,
    concurrency: int = 4,
    quiet: bool = False,
) -> Session:
    """Connect to the hosted API (key given or in WAVE_API_KEY), or start the built-in simulator.

    Prints one line saying which, and where runs are saved; a new connect closes the
    session it replaces.

    Parameters
    ----------
    api_key : str, optional
        Default ``WAVE_API_KEY``. With none (and no ``base_url``) the built-in simulator
        starts on loopback: images drawn locally, nothing billed.
    base_url : str, optional
        Default ``WAN_NB_BASE_URL``, else the hosted API. A loopback URL without a key is
        a simulator already running (``python -m wan_nb.sim``).
    home : str or path, optional
        The run folder (images, thumbnails, the log); default ``WAN_NB_HOME``, else ./wan_runs.
        For a team's log, a folder every machine shares (paths in the log are relative to it).
    log : str or path, optional
        Where runs are logged: default ``WAN_NB_LOG``, else the run folder's ``log.sqlite``.
        ``postgresql://user:password@host:5432/db``: a team's log, every user's runs in one
        database (needs ``pip install 'wan_nb[postgres]'``; the password is never shown).
    uploader : callable (bytes, content type) -> URL, optional
        Makes local images reachable for the hosted API, which takes URLs only (may be async).
    ask : bool, default False
        Prompt for the key (getpass) when none is set.
    timeout : float, default 600
        One run's deadline in seconds (submit to images on disk); ``timeout=`` per call overrides it.
    http_timeout : float, default 30
        One HTTP exchange, in seconds (raise it on a slow network).
    latency : float, default 1.5
        The built-in simulator's seconds per task (ignored otherwise).
    concurrency : int, default 4
        The built-in simulator's tasks at once (ignored otherwise).
    quiet : bool, default False
        Do not print the line.

    Returns
    -------
    Session
    """
    global _current
    check_seconds("timeout", timeout)
    check_seconds("http_timeout", http_timeout)
    target = _config.log_target(log)  # a URL wan_nb cannot use is refused before anything changes
    folder = _config.home(home)  # so is a URL given as the run folder
    if _current is not None:
        _current.close()
        _current = None
    key = _config.api_key(api_key)
    if not key and ask:
        key = getpass.getpass("Wan API key (WAVE_API_KEY): ").strip() or None
    url = _config.explicit_base_url(base_url)
    simulator = None
    store = Store(folder)
    if key:
        url = _config.base_url(base_url)
        backend = "simulator" if _config.is_loopback_url(url) else "hosted"
        line = f"wan_nb: connected to {url}"
    elif url and _config.is_loopback_url(url):
        key, backend = SIM_KEY, "simulator"
        line = f"wan_nb: no API key set; using the simulator at {url} (nothing is billed)"
    elif url:
        raise ConfigError(f"no API key for {url}: pass api_key=..., set {_config.ENV_API_KEY}, or connect(ask=True)")
    else:
        from .sim import Simulator

        simulator = Simulator(latency=latency, concurrency=concurrency).start()
        key, url, backend = SIM_KEY, simulator.base_url, "simulator"
        line = (f"wan_nb: no {_config.ENV_API_KEY} set; using the built-in simulator at {url} "
                "(images are drawn locally, nothing is billed)")
    client = AsyncClient(key, url, store=store, uploader=uploader, timeout=timeout, http_timeout=http_timeout)
    try:
        _current = Session(client, backend=backend, simulator=simulator, log=target)
    except BaseException:
        Client.of(client).close()
        if simulator is not None:
            simulator.stop()
        raise
    enable_in_colab(quiet=quiet)  # Colab shows custom widgets only with its custom widget manager
    if not quiet:
        where = f"; logged in {target.label}" if target is not None and target.kind != "sqlite" else ""
        print(f"{line}; runs are saved in {store.root}{where}")  # noqa: T201 - connect()'s one line; quiet=True silences it
    return _current


def current() -> Session | None:
    """The current session, or None when nothing is connected (never connects)."""
    return _current


def session() -> Session:
    """The current session, connecting with the defaults on first use."""
    return _current if _current is not None else connect()


def emit_warnings(request: Request, caller_depth: int = 2) -> None:
    """Show the request's warnings at the user's line (``caller_depth`` frames above
    the public function that calls this)."""
    for text in request.warnings:
        warnings.warn(text, WanWarning, stacklevel=2 + caller_depth)
