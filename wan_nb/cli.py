"""``wan-nb`` (or ``python -m wan_nb``): the toolkit from a shell.

    wan-nb sim [--port 8765 --latency 2 ...]    serve the simulator (same as python -m wan_nb.sim)
    wan-nb demo [--home DIR]                     a few images in a few modes; prints where they are
    wan-nb sweep FILE.json [--yes]               run a sweep described in a JSON file
    wan-nb export --csv/--parquet/--html PATH    export the experiment log of a run folder (or WAN_NB_LOG's)
    wan-nb log check [--home DIR]                is the log whole? do its images exist? (read only)
    wan-nb log repair [--home DIR]               keep a damaged log aside, save what it holds,
                                                 add images no run names as recovered runs
    wan-nb log copy SRC DST [--home DIR]         copy one log into another (a run folder or its
                                                 log.sqlite, or postgresql://...): runs keep their
                                                 ids, image files go to DST's run folder; a second
                                                 copy adds only new runs
    wan-nb studio [--port P] [--home DIR] [--budget USD]
                                                 serve the studio app with Voilà; prints its URL
                                                 (with WAVE_API_KEY set it needs a budget)

With no ``WAVE_API_KEY`` set, ``demo`` and ``sweep`` run on the built-in simulator
(nothing is billed). A user mistake (bad file, bad field, over budget, no log) is
reported as one line on stderr with exit status 2, never a traceback.

A sweep file is a JSON object::

    {
      "prompts": "a {animal} in snow, {style}",          # a template, a prompt, or a list of them
      "budget_usd": 0.50,                                # optional: refuse above this without --yes
      "fields": {"animal": ["fox", "owl"], "style": ["ink", "pixel art"],
                 "seed": "0-3", "resolution": "1K"}      # any field; a list is an axis
    }

Optional keys: ``concurrency`` (tasks at once), ``tags`` (list of strings),
``fresh`` (true: ignore the cache and the log, pay again).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _states as S
from ._money import budget, usd
from ._options import is_whole
from ._sweep_plan import cell_label
from ._text import did_you_mean

PROG = "wan-nb"
SWEEP_KEYS = ("prompts", "budget_usd", "fields", "concurrency", "tags", "fresh")


class UserError(Exception):
    """A mistake the user can fix; shown as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (and exit status 2, as argparse does)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Wan 2.7 images from the shell: simulator, demo, sweeps from a file, log export. "
        "With no WAVE_API_KEY set, demo and sweep use the built-in simulator (nothing is billed).",
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"wan_nb {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sub.add_parser(
        "sim", help="serve the API simulator on loopback (same as python -m wan_nb.sim; try: sim --help)",
        add_help=False,
    )

    home_help = "run folder (default: WAN_NB_HOME or ./wan_runs)"
    d = sub.add_parser("demo", help="make a few images in a few modes and print where the files and the log are")
    d.add_argument("--home", default=None, help=home_help)
    d.add_argument("--latency", type=float, default=0.5, help="simulator: seconds a task spends processing")
    d.add_argument("--yes", action="store_true", help="hosted API (WAVE_API_KEY set): agree to pay for the demo")

    s = sub.add_parser("sweep", help="run a sweep described in a JSON file; prints its cost first")
    s.add_argument("file", metavar="FILE.json", help='{"prompts": ..., "budget_usd": ..., "fields": {...}}')
    s.add_argument("--home", default=None, help=home_help)
    s.add_argument("--yes", action="store_true", help="run even if the cost is above the file's budget_usd")
    s.add_argument("--latency", type=float, default=1.0, help="simulator: seconds a task spends processing")

    e = sub.add_parser("export", help="export the experiment log as CSV, Parquet and/or an HTML report")
    e.add_argument("--home", default=None, help=home_help)
    e.add_argument("--csv", metavar="PATH", help="one row per run")
    e.add_argument("--parquet", metavar="PATH", help="one row per run, dtypes kept")
    e.add_argument("--html", metavar="PATH", help="self-contained report: grids per sweep, every run, thumbnails")
    e.add_argument("--sweep", metavar="SWEEP_ID", help="only this sweep's runs")
    e.add_argument("--where", metavar="QUERY", help='only runs matching a pandas query, e.g. "status == \'completed\'"')
    lg = sub.add_parser("log", help="check or repair a run folder's experiment log")
    actions = lg.add_subparsers(dest="log_command", metavar="ACTION", parser_class=_Parser, required=True)
    for name, text in (("check", "is the log whole, do the images it names exist, which images does it "
                                 "not know (reads only; exit status 1 if anything is wrong)"),
                       ("repair", "keep a damaged log aside, save every row it still holds into a new one, "
                                  "add images no run names as recovered runs, rebuild the search index")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--home", default=None, help=home_help)
        action.add_argument("folder", nargs="?", default=None, help="the run folder (same as --home)")
    c = actions.add_parser("copy", help="copy one log into another, e.g. a run folder's log.sqlite into a team's "
                                        "postgresql://... log: runs keep their ids, image files are copied into the "
                                        "target's run folder; run it again and only new runs are added")
    c.add_argument("src", metavar="SRC", help="a run folder, its log.sqlite, or postgresql://user:password@host/db")
    c.add_argument("dst", metavar="DST", help="the same kinds (WAN_NB_LOG's URL, for a team)")
    c.add_argument("--home", default=None, help="DST's run folder, where the image files go (default: DST's own "
                                               "folder for a log.sqlite; WAN_NB_HOME or ./wan_runs for a URL)")
    c.add_argument("--src-home", default=None, help="SRC's run folder when SRC is a URL (default: WAN_NB_HOME or "
                                                   "./wan_runs)")

    st = sub.add_parser("studio", help="serve the studio (generate, sweep, draw boxes, rate, compare: no code) "
                                       "with Voilà on loopback; prints its URL")
    st.add_argument("--port", type=int, default=None, help="port to listen on (default 8866; 0: a free one)")
    st.add_argument("--home", default=None, help=home_help)
    st.add_argument("--budget", metavar="USD", default=None,
                    help="the most the studio's session may spend (default: WAN_NB_BUDGET_USD); "
                         "required when WAVE_API_KEY is set")
    st.add_argument("--ip", default=None, help="address to listen on (default 127.0.0.1, this machine only)")
    return p


# ----------------------------------------------------------------- helpers


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    """An exception as one line (a RequestError lists its problems separated by ';'), with
    any log URL's password scrubbed."""
    from ._config import scrub

    problems = getattr(exc, "problems", None)
    if problems:
        return scrub("; ".join(str(p) for p in problems))
    return scrub(" ".join(str(exc).split()) or type(exc).__name__)


def _connect(home: str | None, latency: float) -> Any:
    import wan_nb as wan

    return wan.connect(home=home, latency=latency)


def _where(home: Path, log: str | None = None) -> list[str]:
    """Where a session's files and log are (``log``: a team's log, named without its password)."""
    return [
        f"images:     {home / 'images'}",
        f"thumbnails: {home / 'thumbs'}",
        f"log:        {log or home / 'log.sqlite'}",
    ]


# ----------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    import wan_nb as wan

    from . import _config

    hosted = bool(_config.api_key()) and not _config.is_loopback_url(_config.base_url())
    steps = [
        ("generate", "ink-wash mountains & a river at dawn", {"aspect_ratio": "16:9", "resolution": "1K", "seed": 7}),
        ("generate", "a paper-cut fox in snow", {"aspect_ratio": "1:1", "resolution": "1K", "seed": 7}),
        ("group", "a three-panel storyboard: a lantern drifts down a river at night",
         {"n": 3, "resolution": "1K", "seed": 7}),
    ]
    requests = [wan.make_request(mode, prompt, **kw) for mode, prompt, kw in steps]
    per_image = requests[0].cost_usd / requests[0].n
    images = sum(r.n for r in requests) + 1  # + the edit of the first image
    cost = per_image * images
    if hosted and not args.yes:
        raise UserError(
            f"the demo makes {images} images on the hosted API (WAVE_API_KEY is set) and would cost up to "
            f"{usd(cost)}; run again with --yes to pay for it, or unset WAVE_API_KEY to use the simulator"
        )
    sess = _connect(args.home, args.latency)
    billed = "" if sess.backend == "hosted" else " (simulator: nothing is billed)"
    _out(f"demo: {images} images in 3 modes (generate, group, edit), up to {usd(cost)}{billed}")

    results = []
    for mode, prompt, kw in steps:
        results.append((mode, getattr(wan, mode)(prompt, **kw)))
    first = results[0][1]
    try:  # the first result goes back in as its own result link (the hosted API takes URLs only)
        results.append(("edit", wan.edit("add a red sun above the peaks", first, resolution="1K", seed=7)))
    except wan.RequestError as exc:
        unsendable = [p for p in exc.problems if p.rule in ("link_expired", "needs_url")]
        if not unsendable:
            raise
        _out(f"edit: skipped ({unsendable[0].message})")

    spent = 0.0
    files = 0
    for mode, r in results:
        spent += r.cost_usd
        how = "cache hit, $0" if r.cache_hit else usd(r.cost_usd)
        _out(f"{mode}: {r.request.prompt!r} → {len(r.paths)} file(s), {how}")
        for img in r.images:
            files += 1
            _out(f"    {img.path}  ({img.width}×{img.height})")
    home = Path(sess.home).absolute()
    n_runs = sess.log.count()
    _out(f"done: {files} image file(s), spent {usd(spent)}{billed}")
    for line in _where(home, sess.log.location):
        _out(line + (f"  ({n_runs} run(s))" if line.startswith("log:") else ""))
    _out(f"report:     {PROG} export --home {home} --html report.html")
    return 0


# ----------------------------------------------------------------- sweep


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """Read and check a sweep file; UserError (one line) for anything wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({_one_line(exc)})") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: expected a JSON object like "
                        '{"prompts": "...", "budget_usd": 1.0, "fields": {...}}, '
                        f"got a JSON {type(spec).__name__}")
    for key in spec:
        if key not in SWEEP_KEYS:
            raise UserError(f"{path}: unknown key {key!r}{did_you_mean(key, SWEEP_KEYS)}; "
                            f"a sweep file has: {', '.join(SWEEP_KEYS)}")
    prompts = spec.get("prompts")
    if isinstance(prompts, str):
        ok = bool(prompts.strip())
    else:
        ok = isinstance(prompts, list) and bool(prompts) and all(isinstance(p, str) and p.strip() for p in prompts)
    if not ok:
        raise UserError(f"{path}: \"prompts\" must be a prompt, a template with {{placeholders}}, "
                        "or a non-empty list of them")
    budget = spec.get("budget_usd")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0):
        raise UserError(f"{path}: \"budget_usd\" must be a number of dollars ≥ 0, got {budget!r}")
    fields = spec.get("fields", {})
    if not isinstance(fields, dict):
        raise UserError(f"{path}: \"fields\" must be an object of field → value (a list of values is an axis)")
    if "prompt" in fields:
        raise UserError(f"{path}: put prompts in \"prompts\", not in \"fields\"")
    conc = spec.get("concurrency")
    if conc is not None and not is_whole(conc):
        raise UserError(f"{path}: \"concurrency\" must be a whole number ≥ 1, got {conc!r}")
    tags = spec.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise UserError(f"{path}: \"tags\" must be a list of strings")
    if "fresh" in spec and not isinstance(spec["fresh"], bool):
        raise UserError(f"{path}: \"fresh\" must be true or false")
    return spec


def _check_plan(prompts: Any, kwargs: dict[str, Any]) -> None:
    """Expand the sweep once, without I/O: a RequestError names every broken field."""
    from ._sweep import sweep
    from ._sweep_plan import plan_sweep

    options = set(sweep.__kwdefaults__ or ())
    fields = {k: v for k, v in kwargs.items() if k not in options}
    plan_sweep(prompts, fields)


def cmd_sweep(args: argparse.Namespace) -> int:
    import wan_nb as wan

    spec = load_sweep_file(args.file)
    kwargs: dict[str, Any] = dict(spec.get("fields") or {})
    for name in ("budget_usd", "concurrency", "tags", "fresh"):
        if spec.get(name) is not None:
            kwargs[name] = spec[name]
    kwargs["confirm"] = bool(args.yes)
    _check_plan(spec["prompts"], kwargs)  # every problem of the file, before a simulator starts
    sess = _connect(args.home, args.latency)
    try:
        sw = wan.sweep(spec["prompts"], **kwargs)  # prints the cost line before anything is sent
    except wan.BudgetError as exc:
        if exc.confirmable:  # the library's advice is for Python; say it for the shell
            where = (f"budget_usd={budget(exc.limit_usd)} in {args.file}" if spec.get("budget_usd") is not None
                     else f"the default per-sweep budget of {budget(exc.limit_usd)}")
            raise UserError(f"the sweep costs {usd(exc.cost_usd or 0.0)}, above {where}; "
                            "nothing was sent. Run again with --yes to run it anyway, or make the sweep "
                            "smaller") from None
        raise

    last = ""
    try:
        while True:  # wait in slices to show progress; Ctrl-C cancels the sweep
            try:
                sw.wait(timeout=0.5)
                break
            except TimeoutError:
                line = sw.progress_line()
                if line != last:
                    _err(f"  {line}")
                    last = line
    except KeyboardInterrupt:
        _err("interrupted: cancelling queued tasks on the server...")
        sw.cancel()
        _out(f"sweep {sw.id}: cancelled · {sw.progress_line()}")
        return 130

    counts = sw.counts()
    total = len(sw.cells)
    billed = "" if sess.backend == "hosted" else " (simulator: nothing is billed)"
    files = [p for c in sw.cells if c.result is not None for p in c.result.paths]
    hits = sum(1 for c in sw.cells if c.result is not None and c.result.cache_hit)
    _out(f"sweep {sw.id}: {counts['completed']}/{total} completed"
         + (f", {counts['failed']} failed" if counts["failed"] else "")
         + (f" ({hits} from the cache)" if hits else "")
         + f" · {len(files)} image file(s) · spent {usd(sw.spent_usd)}"
         + (f" + up to {usd(sw.unconfirmed_usd)} unconfirmed" if sw.unconfirmed_usd else "") + billed)
    for c in sw.cells:
        if c.status != S.COMPLETED:
            _out(f"  {c.status}: {cell_label(c.coords, 40)}: {_one_line(Exception(c.error or 'no result'))}")
    if counts["completed"] < total:
        _out("  run the same command again to retry only these; finished cells are not paid for twice")
    for line in _where(Path(sess.home).absolute(), sess.log.location):
        _out(line)
    return 0 if counts["completed"] == total else 1


# ----------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    from ._log import Log

    if not (args.csv or args.parquet or args.html):
        raise UserError("nothing to export: give --csv PATH, --parquet PATH and/or --html PATH")
    from . import _config

    home = _config.home(args.home, "--home")
    target = _config.log_target()  # WAN_NB_LOG: the team's log, its files in the run folder
    db: Any = home / "log.sqlite"
    if target is not None:
        log, db = Log(target, home=home), target.label
    elif not db.is_file():
        raise UserError(f"no experiment log at {db}: run a sweep or the demo first, or pass --home RUN_FOLDER")
    else:
        log = Log(db)
    filters: dict[str, Any] = {}
    if args.sweep:
        if not log.count(sweep_id=args.sweep):
            raise UserError(f"no runs of sweep {args.sweep!r} in {db}")
        filters["sweep_id"] = args.sweep
    n = len(log.runs(args.where, **filters))
    written = []
    if args.csv:
        written.append(("CSV", log.to_csv(args.csv, args.where, **filters)))
    if args.parquet:
        written.append(("Parquet", log.to_parquet(args.parquet, args.where, **filters)))
    if args.html:
        written.append(("HTML report", log.export_html(args.html, args.where, **filters)))
    for what, path in written:
        _out(f"{what}: {Path(path).absolute()} ({n} run(s))")
    return 0


# ----------------------------------------------------------------- log check / repair


def cmd_log_copy(args: argparse.Namespace) -> int:
    from . import _config
    from ._log import Log

    if not _config.is_url(args.src) and not Path(args.src).exists():
        raise UserError(f"no log at {args.src}: give a run folder, its log.sqlite, or a postgresql:// URL")
    for name, folder in (("--src-home", args.src_home), ("--home", args.home)):
        if folder:
            _config.home(folder, name)  # a URL there is a mistake (the log's URL is SRC / DST)
    src = Log(args.src, home=args.src_home)
    dst = Log(args.dst, home=args.home)
    try:
        _out(f"copying {src.location} (files in {src.root}) → {dst.location} (files in {dst.root})")
        shown = [-1.0]

        def progress(done: int, total: int) -> None:
            share = done / total if total else 1.0
            if share - shown[0] >= 0.1 or done == total:  # every tenth, and the end
                shown[0] = share
                _err(f"  {done}/{total} runs ({share:.0%})")

        report = src.copy_to(dst, progress=progress)
    finally:
        src.close()
        dst.close()
    for line in report.lines():
        _out(line)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from ._log_repair import check, repair

    if args.log_command == "copy":
        return cmd_log_copy(args)
    from . import _config

    given = args.folder or args.home
    setting = "FOLDER" if args.folder else "--home"
    if given and _config.is_url(given):
        target = _config.parse_log(given, setting)  # an engine wan_nb does not know: says so
        if target.path is None:
            raise UserError(f"log {args.log_command} reads a run folder's log.sqlite page by page; {target.label} "
                            "is a PostgreSQL log: the server's own tools check it (pg_amcheck, pg_dump)")
        given = str(target.path.parent)  # sqlite:///path
    home = _config.home(given, setting)
    if not home.is_dir():
        raise UserError(f"no run folder at {home}: pass the folder that holds log.sqlite and images/")
    report = check(home) if args.log_command == "check" else repair(home)
    for line in report.lines():
        _out(line)
    if args.log_command == "repair":
        after = check(home)
        _out("after the repair: " + ("the log and its images are in order" if after.ok
                                     else "; ".join(after.problems)))
        return 0 if after.ok else 1
    return 0 if report.ok else 1


# ----------------------------------------------------------------- studio

READY_TIMEOUT = 120  # s for Voilà to listen (its imports are slow on a loaded machine)
STOP_TIMEOUT = 20  # s for Voilà to shut its kernels down


def _listening(ip: str, port: int) -> bool:
    import socket

    host = "127.0.0.1" if ip in ("", "0.0.0.0") else ("::1" if ip == "::" else ip)
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _stop(proc: Any) -> None:
    """Voilà stops on SIGTERM, shutting its kernels down first; killed if it does not."""
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cmd_studio(args: argparse.Namespace) -> int:
    import signal
    import subprocess
    import time

    from . import _serve

    ip = args.ip or _serve.LOOPBACK
    try:
        plan = _serve.plan(port=args.port, home=args.home, budget=args.budget, ip=ip)
    except _serve.ServeError as exc:
        raise UserError(str(exc)) from None
    if not plan.local:
        spend = f" and spend up to {budget(plan.budget_usd)}" if plan.paid else ""
        _err(f"{PROG}: warning: listening on {ip}, not only on this machine: anyone who can reach it and has "
             f"the token can use the studio{spend}")
    # its own process group: Ctrl-C here stops it through _stop (kernels shut down), never half-way
    proc = subprocess.Popen(plan.cmd, env=plan.env, cwd=plan.cwd, stdin=subprocess.DEVNULL,
                            start_new_session=True)

    def stop_on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop_on_term)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _listening(plan.ip, plan.port):
            if proc.poll() is not None:
                raise UserError(f"Voilà stopped before serving the studio (exit status {proc.returncode}); "
                                f"is port {plan.port} free? (see its messages above)")
            if time.monotonic() > deadline:
                raise UserError(f"Voilà did not listen on port {plan.port} within {READY_TIMEOUT} s")
            time.sleep(0.2)
        for line in plan.lines():
            _out(line)
        return proc.wait() or 0
    except KeyboardInterrupt:
        _err(f"{PROG}: stopping the studio…")
        return 0
    finally:
        _stop(proc)
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from ._config import is_url, redact_url, scrub

    for arg in argv:  # a log URL's password is known before anything can repeat it (argparse's errors too)
        if is_url(arg):
            redact_url(arg)
    if argv and argv[0] == "sim":  # everything after `sim` is the simulator's own options
        from .sim.__main__ import main as sim_main

        return sim_main(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        handler = {"demo": cmd_demo, "sweep": cmd_sweep, "export": cmd_export, "log": cmd_log,
                   "studio": cmd_studio}[args.command]
        return handler(args)
    except UserError as exc:
        _err(f"{PROG}: error: {scrub(str(exc))}")
        return 2
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return 130
    except Exception as exc:
        from ._exceptions import WanError

        # wan_nb's own errors name the field / rule / setting; bad --where queries and
        # unreadable files are mistakes too. Anything else is a bug: keep its traceback.
        if isinstance(exc, (WanError, ValueError, sqlite3.DatabaseError, OSError)):
            _err(f"{PROG}: error: {_one_line(exc)}")
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
