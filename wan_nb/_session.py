"""The session: which API, which run folder, and how one run is carried out.

``connect()`` picks the backend (hosted API with a key; the built-in simulator
without one) and says so in one line. ``Session.arun`` is the one path every run
takes, whether it comes from ``wan.generate``, a sweep cell or a form:

1. the same run seen before (same request, same sweep) is resumed, not re-sent:
   a completed one is returned from the log, one still in flight is waited for with
   its task id, and one the kernel lost before its answer is re-submitted with the
   same Idempotency-Key, so the server returns the task it already created;
2. a fixed-seed request identical to a completed one is a cache hit: served from
   the files on disk at zero cost and logged as such (``fresh=True`` skips this);
3. otherwise the log row is written BEFORE the submit, then updated as the task
   moves, and the images are on disk before the result is reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import threading
import time
import uuid
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable

from . import _config, _spec
from ._client import Client
from ._exceptions import BudgetError, ConfigError, TaskError, TaskTimeout, WanError, WanWarning
from ._log import IMAGE_FIELDS, Log
from ._portal import get_portal
from ._request import Request
from ._result import Result
from ._store import Store, StoredImage
from ._wire import Task

IN_FLIGHT = ("planned", "submitted", "queued", "processing")
SPENT_KEY = ("failed", "cancelled")  # the server ended that key's task: a retry needs a new key
SIM_KEY = "sim-local"
DEFAULT_SWEEP_BUDGET_USD = 2.00  # a sweep costing more asks for confirm=True first  # what the client sends to the simulator; not a secret

RunUpdate = Callable[[str, Task], Any]


class Session:
    """A connection (client + run folder + log) and the run pipeline on top of it."""

    def __init__(self, client: Client, *, backend: str, simulator: Any = None) -> None:
        self.client = client
        self.backend = backend
        self.simulator = simulator
        self.store: Store = client.store
        self.home = Path(self.store.root)
        self.log = Log(self.home / "log.sqlite")
        self.spent_quota = 0  # billed through this session
        self.reserved_quota = 0  # held for runs in flight, so concurrent runs cannot overshoot
        self.budget_usd: float | None = None  # session-wide cap, never exceeded
        self.sweep_budget_usd: float | None = DEFAULT_SWEEP_BUDGET_USD  # above it a sweep needs confirm=True
        self._budget_lock = threading.Lock()
        self.sweeps: "weakref.WeakSet[Any]" = weakref.WeakSet()  # running sweeps, cancelled on close

    def __repr__(self) -> str:
        return f"<wan_nb Session {self.backend} {self.client.base_url} home={str(self.home)!r}>"

    @property
    def spent_usd(self) -> float:
        return _spec.quota_to_usd(self.spent_quota)

    def check_budget(self, quota: int, what: str = "this request") -> None:
        """Raise BudgetError if ``quota`` more would take the session past its budget."""
        if self.budget_usd is None:
            return
        limit = round(self.budget_usd * _spec.QUOTA_PER_USD)
        if self.spent_quota + self.reserved_quota + quota > limit:
            usd = _spec.quota_to_usd
            raise BudgetError(
                f"{what} would cost ${usd(quota):.5f}, but the session budget is ${self.budget_usd:.2f} "
                f"(${usd(self.spent_quota):.5f} spent, ${usd(self.reserved_quota):.5f} held by runs in flight); "
                "nothing was sent. Raise it with wan.set_budget(usd).",
                cost_usd=usd(quota), limit_usd=self.budget_usd,
            )

    def _reserve(self, quota: int) -> None:
        with self._budget_lock:
            self.check_budget(quota)
            self.reserved_quota += quota

    def _settle(self, reserved: int, billed: int) -> None:
        with self._budget_lock:
            self.reserved_quota -= reserved
            self.spent_quota += billed

    def completed_hashes(self) -> dict[str, set]:
        """request_hash → sweep ids of completed runs whose files are on disk."""
        out: dict[str, set] = {}
        for row in self.log.find_runs(status="completed"):
            if row.get("request_hash") and self._files_ok(row):
                out.setdefault(row["request_hash"], set()).add(row.get("sweep_id"))
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
        cell: dict | None = None,
        cell_index: int | None = None,
        tags: list[str] | None = None,
        note: str | None = None,
        on_update: RunUpdate | None = None,
    ) -> Result:
        history = [] if fresh else self.log.find_runs(request_hash=request.request_hash)
        mine = [r for r in history if r.get("sweep_id") == sweep_id]
        last = mine[-1] if mine else None

        if last and last["status"] in IN_FLIGHT:
            with self._budget_lock:  # already submitted once: its hold is owed, not a new spend
                self.reserved_quota += request.cost_quota
            request = self._as_sent_before(request, last["run_id"])
            return await self._execute(last["run_id"], request, last["idempotency_key"], last.get("task_id"),
                                       timeout, on_update)
        if last and last["status"] == "completed" and sweep_id is not None and self._files_ok(last):
            return self._result_from_row(last, request)

        base = dict(sweep_id=sweep_id, cell=cell, cell_index=cell_index, tags=tags or [], note=note)
        if not request.seed_random and not fresh:
            done = [r for r in history if r["status"] == "completed" and self._files_ok(r)]
            if done:
                return self._record_cache_hit(request, done[-1], base)

        self._reserve(request.cost_quota)  # before the log row: a refused run leaves no trace
        spent = sum(1 for r in history if r["status"] in SPENT_KEY)
        salt = uuid.uuid4().hex if fresh else (f"attempt{spent}" if spent else "")
        key = request.idempotency_key(salt)
        run_id = _new_run_id()
        try:  # nothing is sent yet: a refused input or log row gives back what was held
            request = await self._place_inputs(request)
            self.log.add_run({**base, **_request_columns(request), "run_id": run_id, "created_at": time.time(),
                              "backend": self.backend, "idempotency_key": key, "status": "planned",
                              "cache_hit": False})
            if request.images:
                self.log.add_inputs(run_id, request.images)
        except BaseException:
            self._settle(request.cost_quota, 0)
            raise
        return await self._execute(run_id, request, key, None, timeout, on_update)

    # -- input images ----------------------------------------------------------------
    async def _place_inputs(self, request: Request) -> Request:
        """Each input image as it will be sent (``AsyncClient.place``), after looking in
        the log for a result link of the same bytes: a file of the run folder, or any
        image the API made, goes out as its link while it lives instead of being
        uploaded. An input that cannot be sent is a RequestError here, before anything
        is logged, sent or billed."""
        if not request.images:
            return request
        client = self.client.aio
        refs = []
        for ref in request.images:
            if ref.sha256 and ref.live_url(client.link_margin) is None:
                link = self.log.result_link(ref.sha256)  # an expired one still tells when it ended
                if link is not None and link[1] > (ref.expires_at or 0):
                    ref = dataclasses.replace(ref, url=link[0], expires_at=link[1])
            refs.append(ref)
        return await client.prepare_inputs(dataclasses.replace(request, images=tuple(refs)))

    def _as_sent_before(self, request: Request, run_id: str) -> Request:
        """A resumed run sends the result links it sent the first time, placed as they
        were (``AsyncClient.place`` keeps them), so a re-submit with the same
        Idempotency-Key carries the same body and the server replays its task."""
        sent = {row["idx"]: row for row in self.log.inputs(run_id) if row["via"] == "link"}
        refs = tuple(
            dataclasses.replace(ref, url=sent[i]["url"], expires_at=sent[i]["expires_at"], via="link")
            if i in sent and sent[i]["sha256"] == ref.sha256 else ref
            for i, ref in enumerate(request.images)
        )
        return dataclasses.replace(request, images=refs)

    async def _execute(
        self,
        run_id: str,
        request: Request,
        key: str,
        task_id: str | None,
        timeout: float | None,
        on_update: RunUpdate | None,
    ) -> Result:
        seen: dict[str, Any] = {"status": None, "task": None}

        def update(task: Task) -> None:
            seen["task"] = task
            if task.status != seen["status"]:
                cols: dict[str, Any] = {"status": task.status, "task_id": task.task_id}
                if seen["status"] is None:
                    cols["submitted_at"] = time.time()
                if task.status == "processing":
                    cols["started_at"] = time.time()
                self.log.update_run(run_id, **cols)
                seen["status"] = task.status
            if on_update is not None:
                on_update(run_id, task)

        billed = 0
        try:
            outcome = await self.client.aio.run(
                request, idempotency_key=key, task_id=task_id, timeout=timeout, on_update=update
            )
            billed = outcome.task.cost if outcome.task.cost is not None else request.cost_quota
        except TaskError as exc:
            status = exc.task.status if exc.task is not None else "error"
            if isinstance(exc, TaskTimeout) and not exc.cancelled:
                status = getattr(exc.task, "status", "processing")
            self.log.update_run(run_id, status=status, error_code=getattr(exc, "code", None) or type(exc).__name__,
                                error_message=str(exc), cost_quota=0, cost_usd=0.0, finished_at=time.time())
            raise
        except WanError as exc:
            self.log.update_run(run_id, status="error", error_code=getattr(exc, "code", None) or type(exc).__name__,
                                error_message=str(exc), finished_at=time.time())
            raise
        except asyncio.CancelledError:
            # Record only what the server confirmed: "cancelled" if it said so; a task
            # still running (or one whose submit got no answer) stays in flight, so the
            # next run of this cell resumes it with the same key instead of paying again.
            task = seen["task"]
            self.log.update_run(run_id, status=task.status if task is not None else "planned",
                                error_message="interrupted")
            raise
        finally:
            self._settle(request.cost_quota, billed)
        cost = billed
        self.log.add_images(run_id, outcome.images)
        self.log.update_run(
            run_id, status="completed", task_id=outcome.task.task_id, cost_quota=cost,
            cost_usd=_spec.quota_to_usd(cost), submitted_at=outcome.submitted_at,
            finished_at=outcome.finished_at, downloaded_at=outcome.downloaded_at,
        )
        return Result(run_id, request, outcome.task.task_id, "completed", outcome.images, cost,
                      warnings=request.warnings,
                      timings={"submitted_at": outcome.submitted_at, "finished_at": outcome.finished_at,
                               "downloaded_at": outcome.downloaded_at})

    def _record_cache_hit(self, request: Request, source: dict, base: dict) -> Result:
        run_id = _new_run_id()
        now = time.time()
        images = self._images_of(source)
        self.log.add_run({**base, **_request_columns(request), "run_id": run_id, "created_at": now,
                          "backend": self.backend, "idempotency_key": source.get("idempotency_key"),
                          "task_id": source.get("task_id"), "status": "completed", "cost_quota": 0,
                          "cost_usd": 0.0, "cache_hit": True, "cached_from": source["run_id"],
                          "submitted_at": now, "finished_at": now, "downloaded_at": now})
        self.log.add_images(run_id, images)
        return Result(run_id, request, source.get("task_id"), "completed", images, 0, cache_hit=True,
                      cached_from=source["run_id"], warnings=request.warnings)

    def _result_from_row(self, row: dict, request: Request | None) -> Result:
        return Result(row["run_id"], request, row.get("task_id"), row["status"], self._images_of(row),
                      0, cache_hit=bool(row.get("cache_hit")), cached_from=row.get("cached_from"),
                      warnings=request.warnings if request else ())

    def _images_of(self, row: dict) -> list[StoredImage]:
        """A logged run's images (the log gives absolute paths)."""
        return [StoredImage(**{f: img.get(f) for f in IMAGE_FIELDS}) for img in row.get("images") or []]

    def _files_ok(self, row: dict) -> bool:
        images = row.get("images") or []
        return bool(images) and all((self.home / img["path"]).is_file() for img in images)

    # -- tasks by id ---------------------------------------------------------------
    def fetch(self, task_id: str) -> Result:
        """Images of a task by id (e.g. one that outlived a deadline), stored and logged."""
        rows = self.log.find_runs(task_id=task_id)
        task = self.client.wait(task_id)
        images = self.client.download(task)
        run_id = rows[-1]["run_id"] if rows else _new_run_id()
        if not rows:
            self.log.add_run({"run_id": run_id, "created_at": time.time(), "backend": self.backend,
                              "task_id": task_id, "action": task.action, "model": task.model,
                              "status": "completed", "cost_quota": task.cost,
                              "cost_usd": _spec.quota_to_usd(task.cost or 0)})
        else:
            self.log.update_run(run_id, status="completed", cost_quota=task.cost,
                                cost_usd=_spec.quota_to_usd(task.cost or 0), finished_at=time.time())
        self.log.add_images(run_id, images)
        return Result(run_id, None, task_id, "completed", images, task.cost or 0)


def _new_run_id() -> str:
    return "run-" + uuid.uuid4().hex[:16]


def _request_columns(req: Request) -> dict[str, Any]:
    """The log's request columns: effective values of every field."""
    width, height = req.output_size
    return {
        "model": req.model, "action": req.action, "prompt": req.prompt, "n": req.n, "seed": req.seed,
        "seed_random": req.seed_random, "aspect_ratio": req.aspect_ratio, "resolution": req.resolution,
        "width": width, "height": height, "images_in": [img.canonical for img in req.images],
        "callback_url": req.callback_url, "callback_events": list(req.callback_events),
        "watermark": req.watermark, "thinking_mode": req.thinking_mode,
        "enable_sequential": req.enable_sequential,
        "color_palette": [list(p) for p in req.color_palette] if req.color_palette else None,
        "bbox_list": [[list(b) for b in bs] for bs in req.bbox_list] if req.bbox_list else None,
        "warnings": list(req.warnings), "request_json": req.canonical_json(),
        "request_hash": req.request_hash, "est_quota": req.cost_quota,
    }


# -- the current session -----------------------------------------------------------
_current: Session | None = None


def connect(
    api_key: str | None = None,
    base_url: str | None = None,
    *,
    home: str | Path | None = None,
    uploader: Any = None,
    ask: bool = False,
    timeout: float = _config.DEFAULT_TIMEOUT,
    latency: float = 1.5,
    concurrency: int = 4,
    quiet: bool = False,
) -> Session:
    """Connect to the hosted API (key given or in WAVE_API_KEY) or start the simulator.

    ``ask=True`` prompts for the key (getpass) when none is set. ``latency`` and
    ``concurrency`` tune the built-in simulator. Prints one line saying which.
    """
    global _current
    if _current is not None:
        _current.close()
        _current = None
    key = _config.api_key(api_key)
    if not key and ask:
        key = getpass.getpass("Wan API key (WAVE_API_KEY): ").strip() or None
    url = _config.explicit_base_url(base_url)
    simulator = None
    store = Store(_config.home(home))
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
    client = Client(key, url, store=store, uploader=uploader, timeout=timeout)
    _current = Session(client, backend=backend, simulator=simulator)
    if not quiet:
        print(f"{line}; runs are saved in {store.root}")
    return _current


def session() -> Session:
    """The current session, connecting with the defaults on first use."""
    return _current if _current is not None else connect()


def emit_warnings(request: Request, caller_depth: int = 2) -> None:
    """Show the request's warnings at the user's line (``caller_depth`` frames above
    the public function that calls this)."""
    for text in request.warnings:
        warnings.warn(text, WanWarning, stacklevel=2 + caller_depth)
