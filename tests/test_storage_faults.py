"""When the disk or the lock fails: billed runs still recorded, readers never wait, damaged logs named.

Each case of issue 18 over real loopback HTTP, with the simulator's ledger as the truth:
a lock held longer than the log's wait and a disk that fills during the cost write both
end with log == ledger and every image on disk, paid once; a reader opens a log another
process is writing at once; a read-only copy opens read-only; a damaged or emptied log
is named, with the images said to be safe and what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wan_nb as wan
from wan_nb import _log_engine, _session
from wan_nb._log import Log
from wan_nb.sim import Simulator

REPO = Path(__file__).resolve().parents[1]
ANIMALS = ["fox", "owl", "cat", "dog"]


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)


def _wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"precondition not met within {seconds:g} s: {what}")
        time.sleep(0.02)


def _settled(home: Path, sim: Simulator, cells: int) -> None:
    """log == ledger, every image on disk, each cell submitted once."""
    ledger = sim.ledger()
    spend = Log(home / "log.sqlite").spend().loc["all"]
    assert ledger["submitted"] == cells, ledger
    assert spend["billed_quota"] == ledger["billed_quota"] and spend["unconfirmed_quota"] == 0, (spend, ledger)
    runs = Log(home / "log.sqlite").runs()
    assert list(runs["status"]) == ["completed"] * cells
    assert all(Path(p).is_file() for paths in runs["paths"] for p in paths) and runs["n_images"].sum() == cells


# -- money recorded when storage comes back ----------------------------------------------------------


@pytest.mark.slow  # holds the lock for 3 s of real time
def test_a_lock_held_past_the_logs_wait_delays_the_cost_but_never_drops_it(tmp_path, monkeypatch):
    """Another process holds the write lock longer than the log waits (here 0.5 s, 60 s by
    default) while four billed tasks finish: their costs wait in memory, the cells say
    "billed, not yet recorded", and once the lock is gone every cost and image lands."""
    monkeypatch.setattr(_log_engine, "BUSY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(_session, "RECORD_RETRY_S", (0.2, 0.4))
    home = tmp_path / "runs"
    with Simulator(latency=1.0, concurrency=8) as sim:
        sess = wan.connect(base_url=sim.base_url, home=home, quiet=True)
        try:
            sw = wan.sweep("a {animal} at dawn", animal=ANIMALS, seed=1, resolution="1K", quiet=True)
            _wait_for(lambda: sim.ledger()["submitted"] == len(ANIMALS), 30, "every cell submitted")
            holder = sqlite3.connect(home / "log.sqlite", isolation_level=None)  # "a database browser"
            holder.execute("BEGIN IMMEDIATE")
            notes: set[str] = set()
            try:
                end = time.monotonic() + 3.0  # the tasks finish (1 s) while the lock is held
                while time.monotonic() < end:
                    notes |= {c.note for c in sw.cells if c.note}
                    time.sleep(0.05)
                line = sw.progress_line()
            finally:
                holder.execute("COMMIT")
                holder.close()
            sw.wait(timeout=60)
        finally:
            sess.close()
        assert any(n.startswith("billed, not yet recorded: another process holds its lock") for n in notes), notes
        assert "not yet recorded" in line
        assert all(c.status == "completed" and c.note is None for c in sw.cells), [c.error for c in sw.cells]
        _settled(home, sim, len(ANIMALS))


FULL_DISK_CHILD = textwrap.dedent("""
    import json, resource, signal, sys, time
    from pathlib import Path
    import httpx
    import wan_nb as wan
    from wan_nb import _session
    base_url, home = sys.argv[1], Path(sys.argv[2])
    _session.RECORD_RETRY_S = (0.2, 0.4)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    sess = wan.connect(base_url=base_url, home=home, quiet=True)
    sw = wan.sweep("a {animal} at dawn", animal=%r, seed=1, resolution="1K", quiet=True)
    ledger = base_url.rsplit("/v1", 1)[0] + "/sim/ledger"
    deadline = time.monotonic() + 30
    while httpx.get(ledger).json()["submitted"] < len(sw.cells):  # every claim written, every task made
        if time.monotonic() > deadline:
            sys.exit("precondition not met: the cells were not all submitted within 30 s")
        time.sleep(0.01)
    wal = home / "log.sqlite-wal"
    limit = max(wal.stat().st_size if wal.exists() else 0, (home / "log.sqlite").stat().st_size)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # the log can no longer grow: "the disk is full"
    notes = set()
    end = time.monotonic() + 3.0  # the tasks finish (1 s) while nothing can be written
    while time.monotonic() < end:
        notes |= {c.note for c in sw.cells if c.note}
        time.sleep(0.05)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    sw.wait(timeout=60)
    print(json.dumps({"notes": sorted(notes), "statuses": [c.status for c in sw.cells],
                      "errors": [c.error for c in sw.cells]}))
    sess.close()
""") % (ANIMALS,)


@pytest.mark.subprocess
@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="RLIMIT_FSIZE as Linux has it")
def test_a_disk_that_fills_during_the_cost_write_loses_no_money(tmp_path):
    """The log's files cannot grow (RLIMIT_FSIZE, as a full disk) while four billed tasks
    finish: the costs wait in memory, then land with every image, paid once."""
    home = tmp_path / "runs"
    with Simulator(latency=1.0, concurrency=8) as sim:
        proc = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, sim.base_url, str(home)],
                              capture_output=True, text=True, timeout=180, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["statuses"] == ["completed"] * len(ANIMALS), out
        assert any("billed, not yet recorded" in n for n in out["notes"]), out
        _settled(home, sim, len(ANIMALS))


# -- readers never wait on writers -------------------------------------------------------------------


def _log_with_runs(home: Path, n: int = 3) -> Log:
    log = Log(home / "log.sqlite")
    log.add_runs([{"run_id": f"r{i}", "prompt": f"p{i}", "seed": i, "status": "completed"} for i in range(n)])
    return log


def test_opening_a_current_log_writes_nothing_and_waits_for_no_lock(tmp_path, monkeypatch):
    home = tmp_path / "runs"
    _log_with_runs(home)
    holder = sqlite3.connect(home / "log.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing (or a backup tool) holds the lock
    holder.execute("INSERT INTO runs (run_id, created_at) VALUES ('other', 0)")
    try:
        started = time.monotonic()
        assert wan.log(home).count() == 3  # the uncommitted row is not seen; nothing waits
        assert len(wan.log(home).runs()) == 3
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert took < 5, f"a read waited {took:.1f} s for another process's write lock"


def test_a_log_missing_an_index_added_since_opens_without_the_lock_and_its_first_write_adds_it(tmp_path):
    """Indexes come without a schema bump (runs_seed_status did): reading must not wait to make them."""
    home = tmp_path / "runs"
    _log_with_runs(home).close()
    plain = sqlite3.connect(home / "log.sqlite", isolation_level=None)
    plain.execute("DROP INDEX runs_seed_status")
    plain.close()
    holder = sqlite3.connect(home / "log.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        log = wan.log(home)
        assert log.count(seed=1) == 1
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert took < 5, f"opening waited {took:.1f} s for another process's lock to make an index"
    log.add_run({"run_id": "later", "prompt": "p", "seed": 9})
    check = sqlite3.connect(home / "log.sqlite")
    assert check.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs_seed_status'").fetchone(), "the write made it"
    check.close()


@pytest.mark.subprocess
def test_cli_export_reads_while_another_process_writes(tmp_path):
    home = tmp_path / "runs"
    _log_with_runs(home)
    holder = sqlite3.connect(home / "log.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc = subprocess.run([sys.executable, "-m", "wan_nb", "export", "--home", str(home), "--csv",
                               str(tmp_path / "runs.csv")], capture_output=True, text=True, timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs.csv").read_text().count("\n") == 4


READ_ONLY_CHILD = textwrap.dedent("""
    import sys, time
    import wan_nb as wan
    started = time.monotonic()
    log = wan.log(sys.argv[1])
    print(log.count(), len(log.runs()), round(time.monotonic() - started, 1))
    try:
        log.add_run({"run_id": "new"})
    except wan.ConfigError as exc:
        print("refused:", exc)
""")


def _read_only_command(home: Path, argv: list[str]) -> tuple[list[str], dict[str, object]]:
    """``argv`` run with ``home`` read-only: as root (who writes anywhere) under a read-only
    bind mount in a private mount namespace; otherwise with the folder's write bits off."""
    if os.geteuid() != 0:
        for p in (home, *home.rglob("*")):
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        return argv, {}
    if shutil.which("unshare") is None:
        pytest.fail("precondition not met: root needs `unshare` (util-linux) to make a read-only mount")
    script = f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" "{home}" && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv], {}


@pytest.mark.subprocess
@pytest.mark.parametrize("wal", ["rows still in the WAL", "closed cleanly"])
def test_a_read_only_run_folder_opens_read_only_at_once(tmp_path, wal):
    """A published or archived copy: read as it is, at once; a write says why it cannot."""
    home = tmp_path / "runs"
    if wal == "closed cleanly":  # the writer's process ended: no -wal or -shm file is left
        code = (f"from wan_nb._log import Log; Log({str(home / 'log.sqlite')!r}).add_runs("
                "[{'run_id': f'r{i}', 'prompt': 'p', 'status': 'completed'} for i in range(4)])")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        assert not (home / "log.sqlite-wal").exists()
    else:
        _log_with_runs(home).add_run({"run_id": "late", "prompt": "still in the WAL"})
    argv, extra = _read_only_command(home, [sys.executable, "-c", READ_ONLY_CHILD, str(home)])
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, **extra)
    finally:
        for p in (home, *home.rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert proc.returncode == 0, proc.stderr[-2000:]
    count, rows, took = proc.stdout.splitlines()[0].split()
    assert (int(count), int(rows)) == (4, 4) and float(took) < 20
    assert "refused:" in proc.stdout and "read-only" in proc.stdout and str(home) in proc.stdout


@pytest.mark.subprocess
def test_a_read_only_folder_with_a_wal_but_no_shm_says_why_and_what_to_do(tmp_path):
    """A copy that took log.sqlite and its -wal but not the -shm: SQLite cannot read the WAL
    where it may not write, so the error names the file, the reason and the way out."""
    home = tmp_path / "runs"
    log = _log_with_runs(home)
    log.add_run({"run_id": "late", "prompt": "still in the WAL"})
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("log.sqlite", "log.sqlite-wal"):
        shutil.copyfile(home / name, copy / name)
    assert (copy / "log.sqlite-wal").stat().st_size > 0
    argv, _ = _read_only_command(copy, [sys.executable, "-c", READ_ONLY_CHILD, str(copy)])
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    finally:
        for p in (copy, *copy.rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert proc.returncode != 0
    assert "ConfigError" in proc.stderr and str(copy / "log.sqlite") in proc.stderr, proc.stderr[-2000:]
    assert "-shm" in proc.stderr and "somewhere writable" in proc.stderr


# -- damaged logs --------------------------------------------------------------------------------------


def _damage(home: Path, how: str) -> None:
    path = home / "log.sqlite"
    if how == "truncated":
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)
    elif how == "broken header":
        with open(path, "r+b") as fh:
            fh.write(b"this is not an SQLite header")
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["truncated", "broken header"])
def test_a_damaged_log_is_named_with_the_images_safe_and_what_to_do(tmp_path, how):
    home = tmp_path / "runs"
    log = _log_with_runs(home, 400)
    del log
    conn = sqlite3.connect(home / "log.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    _damage(home, how)
    with pytest.raises(wan.ConfigError) as caught:
        wan.log(home).runs()
    text = str(caught.value)
    assert str(home / "log.sqlite") in text and "images are safe" in text and "wan-nb log repair" in text
    with pytest.raises(wan.ConfigError, match="damaged"):
        wan.connect(home=home, base_url="http://127.0.0.1:9/v1", quiet=True).log.runs()


def test_an_emptied_log_beside_images_is_kept_aside_with_a_warning(tmp_path):
    home = tmp_path / "runs"
    (home / "images" / "ab").mkdir(parents=True)
    (home / "images" / "ab" / "ab12.jpg").write_bytes(b"\xff\xd8 not really")
    (home / "log.sqlite").write_bytes(b"")
    old = time.time() - 60  # emptied by a crash a minute ago (a younger empty file is another kernel's new log)
    os.utime(home / "log.sqlite", (old, old))
    with pytest.warns(wan.WanWarning, match=r"holds 1 image file\(s\) it does not know.*wan-nb log repair"):
        log = wan.log(home)
    assert log.count() == 0
    kept = [p.name for p in home.iterdir() if p.name.startswith("log.sqlite.empty-")]
    assert len(kept) == 1


def test_a_new_log_in_a_fresh_folder_says_nothing(tmp_path, recwarn):
    wan.log(tmp_path / "fresh").count()
    assert not [w for w in recwarn if issubclass(w.category, wan.WanWarning)]


def test_a_sqlite_file_that_is_not_a_log_is_refused_not_changed(tmp_path):
    home = tmp_path / "runs"
    home.mkdir()
    other = sqlite3.connect(home / "log.sqlite")
    other.execute("CREATE TABLE photos (name TEXT)")
    other.commit()
    other.close()
    before = (home / "log.sqlite").read_bytes()
    with pytest.raises(wan.ConfigError, match="not a wan_nb log"):
        wan.log(home)
    assert (home / "log.sqlite").read_bytes() == before


# -- wan-nb log check / repair -------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wan_nb", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def made(tmp_path):
    """A run folder with six real runs (images on disk), its log closed and checkpointed."""
    home = tmp_path / "runs"
    with Simulator(latency=0.05) as sim:
        sess = wan.connect(base_url=sim.base_url, home=home, quiet=True)
        try:
            sw = wan.sweep("a {animal}", animal=["fox", "owl", "cat"], seed=[1, 2], resolution="1K", quiet=True)
            sw.wait(timeout=120)
            sw.cells[0].result.tag("keeper")
        finally:
            sess.close()
    sess.log._engine.close()
    conn = sqlite3.connect(home / "log.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return home


@pytest.mark.subprocess
def test_log_check_says_a_healthy_folder_is_in_order(made):
    proc = _cli("log", "check", str(made))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "in order" in proc.stdout


@pytest.mark.subprocess
def test_repair_adds_images_no_run_names_and_check_finds_them_first(made):
    stray = next((made / "images").glob("??/*.jpg"))
    conn = sqlite3.connect(made / "log.sqlite")
    conn.execute("DELETE FROM images WHERE sha256 = ?", (stray.name.split(".")[0],))
    conn.commit()
    conn.close()
    proc = _cli("log", "check", "--home", str(made))
    assert proc.returncode == 1 and "1 image file(s) in images/ are in no run" in proc.stdout
    proc = _cli("log", "repair", str(made))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "added 1 image(s)" in proc.stdout and "after the repair: the log and its images are in order" in proc.stdout
    log = Log(made / "log.sqlite")
    assert log.count() == 7 and log.count(tag="recovered") == 1


@pytest.mark.subprocess
@pytest.mark.parametrize("how", ["truncated", "broken header"])
def test_repair_keeps_a_damaged_log_aside_and_rebuilds_what_it_can(made, how):
    _damage(made, how)
    proc = _cli("log", "check", str(made))
    assert proc.returncode == 1 and "damaged" in proc.stdout
    proc = _cli("log", "repair", str(made))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kept the damaged log as log.sqlite.damaged-" in proc.stdout
    assert list(made.glob("log.sqlite.damaged-*"))  # nothing deleted
    log = Log(made / "log.sqlite")
    runs = log.runs()
    files = sorted((made / "images").glob("??/*.jpg"))
    assert len(files) == 6 and all(Path(p).is_file() for ps in runs["paths"] for p in ps)
    shown = {Path(p) for ps in runs["paths"] for p in ps}
    assert shown == set(files)  # every image is in the log again, saved with its run or recovered
    saved = runs[runs["status"] == "completed"]
    assert len(saved) == 6
    if how == "broken header":  # nothing readable: every image comes back as a recovered run
        assert log.count(tag="recovered") == 6 and "could not be read" in proc.stdout


def test_check_and_repair_in_process_find_and_recover_what_the_log_lost(tmp_path):
    """The same in this process (the fast tier's look at _log_repair): an image no run names
    is found by check, added by repair as a recovered run, and check is content afterwards."""
    from wan_nb import _log_repair
    from wan_nb._store import Store

    home = tmp_path / "runs"
    log = _log_with_runs(home, 2)
    stray = Store(home).put(_png(), source_url=None)
    report = _log_repair.check(home)
    assert not report.ok and any("in no run of the log" in p for p in report.problems)
    repaired = _log_repair.repair(home)
    assert any("added 1 image(s)" in d for d in repaired.done), repaired.lines()
    assert _log_repair.check(home).ok
    assert log.count(tag="recovered") == 1 and log.count() == 3
    assert Path(log.runs(tag="recovered")["paths"][0][0]) == stray.path


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (12, 34, 56)).save(buf, "PNG")
    return buf.getvalue()
