"""A team shares one log (issue 19): PostgreSQL behind the same Log API, many machines,
nothing billed twice, the password nowhere.

The PostgreSQL tests run against the throwaway server ``conftest.pg`` starts (a fresh
schema each); the simulator's ledger is the truth about money. Two "machines" are two
processes with their own ``WAN_NB_USER`` sharing one database and one run folder.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import sys
import textwrap
import threading
import time
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from children import child, communicate, describe, wait_for
from PIL import Image

import wan_nb as wan
from wan_nb import _config, _log_postgres, _spec, cli
from wan_nb._exceptions import LogWriteError
from wan_nb._log import Log, records
from wan_nb._store import Store
from wan_nb.sim import Simulator

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME", "WAN_NB_LOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAN_NB_USER", "ann")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAVE_API_KEY", "WAN_NB_LOG", "WAN_NB_HOME")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


# -- URLs: one place, the password never shown ----------------------------------------------------


def test_a_url_of_an_unknown_engine_is_an_error_never_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("mysql://ann:hunter2-x@db.example/wan", "http://ann:hunter2-x@db.example/wan"):
        with pytest.raises(wan.ConfigError, match="does not know") as caught:
            wan.Log(url)
        assert "hunter2-x" not in str(caught.value) and "db.example" in str(caught.value)
    monkeypatch.setenv("WAN_NB_LOG", "oracle://scott:tiger-x@db.example/wan")
    monkeypatch.setattr(wan._session_module, "_current", None)  # no session: wan.log() reads WAN_NB_LOG
    with pytest.raises(wan.ConfigError, match="oracle"):
        wan.log()
    with pytest.raises(wan.ConfigError, match="oracle"):
        wan.connect(quiet=True)  # refused before a simulator starts
    assert list(tmp_path.iterdir()) == []  # no folder named after a URL (0.1.0 made one, password included)


def test_an_unreachable_server_is_named_by_host_without_the_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = "postgresql://ann:s3cret-pw-x@127.0.0.1:9/wan"  # nothing listens on port 9
    with pytest.raises(wan.ConfigError) as caught:
        wan.Log(url, home=tmp_path / "shared")
    text = f"{caught.value} {caught.value!r} {caught.value.__cause__!r} {caught.value.__context__!r}"
    assert "127.0.0.1" in text and "cannot be reached" in text and "s3cret-pw-x" not in text
    assert not (tmp_path / "postgresql:").exists() and list(tmp_path.iterdir()) == []
    target = _config.parse_log(url)
    assert target.label == "postgresql://ann@127.0.0.1:9/wan" and "s3cret" not in repr(target)
    assert _config.scrub("dsn=" + url) == "dsn=postgresql://ann:***@127.0.0.1:9/wan"
    assert _config.parse_log("sqlite:////tmp/x/log.sqlite").path == Path("/tmp/x/log.sqlite")
    sqlalchemy = _config.parse_log("postgresql+psycopg://ann:s3cret-pw-x@db:5432/wan")
    assert sqlalchemy.url == "postgresql://ann:s3cret-pw-x@db:5432/wan" and sqlalchemy.label == "postgresql://ann@db:5432/wan"


def test_a_log_url_given_as_the_run_folder_is_refused_or_opened_as_the_log_never_a_folder(tmp_path, monkeypatch):
    """wan.log(URL) opens the log the URL names, as wan.Log(URL) does; a URL anywhere a run
    folder goes (home=, WAN_NB_HOME, --home) is a ConfigError saying where a log's URL goes."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(wan._session_module, "_current", None)
    # a postgresql URL: opened as the team's log (nothing listens on port 9: its error, not an SQLite log)
    with pytest.raises(wan.ConfigError, match="cannot be reached") as caught:
        wan.log("postgresql://ann:Sekr1t@127.0.0.1:9/wan")
    assert "127.0.0.1" in str(caught.value) and "Sekr1t" not in str(caught.value)
    refused = [
        (lambda: wan.log("mysql://ann:Sekr1t@db.example/wan"), "home= .*does not know"),
        (lambda: wan.connect(home="postgresql://ann:Sekr1t@db.example/wan", quiet=True), "home= is a run folder"),
        (lambda: wan.Log(tmp_path / "x.sqlite", home="postgresql://ann:Sekr1t@db.example/wan"), "home= is a run"),
        (lambda: wan.log(log="postgresql://ann:Sekr1t@db.example/wan", home="postgresql://ann:Sekr1t@db.example/w"),
         "home= is a run folder"),
    ]
    for call, match in refused:
        with pytest.raises(wan.ConfigError, match=match) as caught:
            call()
        assert "log= or WAN_NB_LOG" in str(caught.value) and "Sekr1t" not in str(caught.value), caught.value
    monkeypatch.setenv("WAN_NB_HOME", "postgresql://ann:Sekr1t@db.example/wan")
    for call in (wan.log, lambda: wan.connect(quiet=True)):
        with pytest.raises(wan.ConfigError, match="WAN_NB_HOME is a run folder") as caught:
            call()
        assert "log= or WAN_NB_LOG" in str(caught.value) and "Sekr1t" not in str(caught.value)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert cli.main(["export", "--csv", str(tmp_path / "x.csv")]) == 2
        assert cli.main(["export", "--home", "postgresql://ann:Sekr1t@db/wan", "--csv", str(tmp_path / "x.csv")]) == 2
        assert cli.main(["log", "repair", "mysql://ann:Sekr1t@db.example/wan"]) == 2
    assert "WAN_NB_HOME is a run folder" in err.getvalue() and "--home is a run folder" in err.getvalue()
    assert "does not know (mysql)" in err.getvalue() and "PostgreSQL" not in err.getvalue().splitlines()[-1]
    assert "Sekr1t" not in out.getvalue() + err.getvalue()
    assert list(tmp_path.iterdir()) == []  # nothing made on disk


@pytest.mark.postgres
def test_wan_log_with_a_postgresql_url_opens_that_log_as_wan_Log_does(pg_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(wan._session_module, "_current", None)
    monkeypatch.setenv("WAN_NB_HOME", str(tmp_path / "shared"))
    team = Log(pg_url)
    team.add_run({"run_id": "r1", "prompt": "a fox"})
    log = wan.log(pg_url)
    assert log.kind == "postgresql" and log.count() == 1 and log.root == team.root == tmp_path / "shared"
    assert [p.name for p in tmp_path.iterdir()] == []  # no folder named after the URL, no empty SQLite log
    team.close()
    log.close()


def test_malformed_log_urls_are_config_errors_naming_the_setting_and_the_rule(monkeypatch):
    for url in ("postgresql://ann:Sekr1t@db.example:54x2/wan", "postgresql://ann:Sekr1t@[::1/wan",
                "postgresql://ann:Sekr1t@db.example:99999/wan"):
        with pytest.raises(wan.ConfigError, match=r"^log= .*not a valid PostgreSQL URL.*port a number") as caught:
            _config.log_target(url)
        assert "Sekr1t" not in str(caught.value), caught.value
        monkeypatch.setenv("WAN_NB_LOG", url)
        with pytest.raises(wan.ConfigError, match=r"^WAN_NB_LOG .*not a valid PostgreSQL URL") as caught:
            _config.log_target()
        assert "Sekr1t" not in str(caught.value), caught.value


def test_a_password_is_scrubbed_by_its_place_in_a_url_and_elsewhere_only_as_a_whole_token():
    _config.parse_log("postgresql://ann:wan@db.example/team")
    _config.parse_log("postgresql://bob:postgres@db.example/team?sslmode=require")
    assert _config.scrub("pip install wan_nb[postgres]") == "pip install wan_nb[postgres]"
    assert _config.scrub("postgresql://carl@db/wan") == "postgresql://carl@db/wan"
    assert _config.scrub("postgres://dan:anything-else@db/x") == "postgres://dan:***@db/x"  # never parsed: its place
    assert _config.scrub("host=db password=wan user=ann") == "host=db password=*** user=ann"
    assert _config.scrub("{'password': 'postgres'}") == "{'password': '***'}"
    assert _config.scrub("x://u:p@ss@h/?password=wan&a=1") == "x://u:***@h/?password=***&a=1"
    assert _config.redact_url("postgresql://ann:Sekr1t@[::1/wan") == "postgresql://ann:***@[::1/wan"


@pytest.mark.subprocess
def test_without_the_postgres_extra_the_error_names_it(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["psycopg"] = None  # as if not installed
        import wan_nb as wan
        try:
            wan.Log("postgresql://ann:pw-x@127.0.0.1:9/wan", home={str(tmp_path)!r})
        except wan.ConfigError as exc:
            print(exc)
        print(len(wan.Log({str(tmp_path / "log.sqlite")!r}).runs()))  # SQLite needs nothing more
        """)
    with child([sys.executable, "-c", code], env=_env()) as proc:
        out, err = communicate(proc, what="a Python without psycopg")
    assert proc.returncode == 0, describe(out, err)
    assert "pip install 'wan_nb[postgres]'" in out and out.split()[-1] == "0"


# -- a team's log ----------------------------------------------------------------------------------


def test_a_claim_whose_answer_was_lost_is_tried_again_and_billed_once(tmp_path, monkeypatch):
    """A claim that landed but whose answer was lost with the connection (a LogWriteError after
    the commit; made here on SQLite, a real PostgreSQL drop before the commit is the test below):
    the claim (idempotent: same run id, same key) is written again, the server bills it once."""
    from wan_nb import _log_writer, _session

    monkeypatch.setattr(_session, "RECORD_RETRY_S", (0.05, 0.1))
    real = _log_writer.LogWriter.claim_run
    refused: list[int] = []

    def flaky(self, run):
        if not refused:
            refused.append(1)
            real(self, run)  # it landed, but the answer was lost with the connection
            raise LogWriteError("the log could not be written: the database server at db cannot be reached",
                                "the database server at db cannot be reached")
        return real(self, run)

    monkeypatch.setattr(_log_writer.LogWriter, "claim_run", flaky)
    with Simulator(latency=0.05) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        try:
            r = wan.generate("a heron", seed=5, resolution="1K")
            ledger = sim.ledger()
        finally:
            sess.close()
    assert refused and r.status == "completed" and ledger["submitted"] == 1
    assert wan.log(tmp_path / "runs").count() == 1



@pytest.mark.postgres
def test_a_claim_cut_off_by_a_real_dropped_connection_is_written_again_and_billed_once(pg, pg_url, tmp_path,
                                                                                       monkeypatch, caplog):
    """The server ends the log's session in the middle of the claim's transaction (after its
    INSERT, before COMMIT: pg_terminate_backend): the claim is a LogWriteError, written again
    on a new connection, and the run goes on, billed once."""
    from wan_nb import _session

    monkeypatch.setattr(_session, "RECORD_RETRY_S", (0.05, 0.1))
    real = _log_postgres.PgConnection.execute
    cut: list[int] = []

    def execute(self, sql, params=()):
        cur = real(self, sql, params)
        if not cut and sql.startswith("INSERT INTO runs"):
            cut.append(self.raw.info.backend_pid)
            pg.psql(f"SELECT pg_terminate_backend({cut[0]})")  # the server drops it mid-transaction
        return cur

    monkeypatch.setattr(_log_postgres.PgConnection, "execute", execute)
    with Simulator(latency=0.05) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "shared", log=pg_url, quiet=True)
        try:
            r = wan.generate("a heron", seed=5, resolution="1K")
            ledger = sim.ledger()
        finally:
            sess.close()
    assert cut and r.status == "completed" and ledger["submitted"] == 1
    assert "cannot be reached" in caplog.text and "nothing sent yet" in caplog.text  # refused, then retried
    log = Log(pg_url, home=tmp_path / "shared")
    assert log.count() == 1 and log.get_run(r.run_id)["status"] == "completed"
    log.close()


@pytest.mark.postgres
def test_with_only_wan_nb_log_set_connect_and_log_use_the_team_log(pg_url, tmp_path, monkeypatch):
    home = tmp_path / "shared"
    monkeypatch.setenv("WAN_NB_LOG", pg_url)
    monkeypatch.setenv("WAN_NB_HOME", str(home))
    with Simulator(latency=0.05) as sim:
        sess = wan.connect(base_url=sim.base_url, quiet=True)
        try:
            r = wan.generate("a heron", seed=1, resolution="1K")
            assert sess.log.kind == "postgresql" and wan.log() is sess.log
            assert not (home / "log.sqlite").exists()
        finally:
            sess.close()
    monkeypatch.setattr(wan._session_module, "_current", None)
    team = wan.log()  # no session: WAN_NB_LOG
    row = team.runs().iloc[0]
    assert row["run_id"] == r.run_id and row["user"] == "ann" and row["status"] == "completed"
    assert Path(row["paths"][0]).is_file() and str(row["paths"][0]).startswith(str(home))
    assert records(team).run_images(r.run_id)[0].open().size == r.images[0].open().size
    elsewhere = Log(pg_url, home=tmp_path / "mounted-elsewhere")  # another machine mounts the share elsewhere
    stored = elsewhere.runs()["paths"].iloc[0]
    assert len(stored) == 1 and Path(stored[0]).relative_to(tmp_path / "mounted-elsewhere") == \
        Path(row["paths"][0]).relative_to(home)  # relative paths: each machine's own mount point
    team.close()
    elsewhere.close()


@pytest.mark.postgres
def test_the_explorer_reads_a_team_log_and_lays_it_out_by_user(pg_url, tmp_path):
    log = Log(pg_url, home=tmp_path)
    log.add_runs([{"run_id": f"r{i}", "user": ["ann", "bob"][i % 2], "seed": i % 3, "prompt": "a fox",
                   "status": "completed", "created_at": 1_700_000_000 + i} for i in range(12)])
    x = log.explore(rows="user", cols="seed", status="completed")
    assert x.grid.row_values == ["ann", "bob"] and x.grid.col_values == [0, 1, 2]
    x.prompt.value = "FOX"  # "prompt has": strpos over upper() in PostgreSQL
    assert sum(len(c.items) for c in x.grid.cells.values()) == 12
    assert list(x.user.options)[1:] == ["ann", "bob"]
    x.user.value = "bob"  # the user filter: only bob's runs
    assert x.filters["user"] == "bob" and set(x.runs()["user"]) == {"bob"}
    assert {it.run_id for c in x.grid.cells.values() for it in c.items} == {f"r{i}" for i in range(1, 12, 2)}
    assert log.explore(user="ann").filters == {"user": "ann"}
    assert log.distinct("user") == ["ann", "bob"] and log.count(user="bob") == 6
    log.close()


ACCENTED = ["Café au lait", "CAFÉ NOIR", "cafe plain", "straße", "STRASSE", "ﬁsh", "FISH", "naïve", "NAÏVE art"]


@pytest.mark.postgres
def test_case_insensitive_text_filters_agree_with_pandas_on_both_engines_for_accented_letters(pg, tmp_path):
    """prompt.str.contains(..., case=False, regex=False) and the explorer's "prompt has" upper-case
    both sides as Python does (é → É, ß → SS, ﬁ → FI), also in a database made with LC_CTYPE C
    (whose own upper() leaves é alone): the same runs on SQLite, PostgreSQL and in pandas."""
    runs = [{"run_id": f"r{i}", "prompt": p, "status": "completed", "created_at": 1_700_000_000 + i}
            for i, p in enumerate(ACCENTED)]
    logs = {"sqlite": Log(tmp_path / "one" / "log.sqlite"),
            "postgresql": Log(pg.new_database(ctype="C"), home=tmp_path)}
    with logs["postgresql"]._engine.transaction(write=False) as conn:
        assert conn.execute("SELECT upper('é')").fetchone()[0] == "é"  # the database's own upper(): C
    frame = None
    for log in logs.values():
        log.add_runs(runs)
        frame = log.runs()
    assert frame is not None
    for needle in ("café", "CAFÉ", "é", "ß", "SS", "straße", "ﬁ", "FI", "naïve", "Ï"):
        expected = set(frame[frame["prompt"].str.contains(needle, case=False, regex=False)]["run_id"])
        assert expected, needle
        for kind, log in logs.items():
            got = set(log.runs(where=f"prompt.str.contains({needle!r}, case=False, regex=False)")["run_id"])
            assert got == expected, (kind, needle, sorted(got), sorted(expected))
            x = log.explore(rows="prompt", cols="seed")
            x.prompt.value = needle
            assert {it.run_id for c in x.grid.cells.values() for it in c.items} == expected, (kind, needle)
    for log in logs.values():
        log.close()


@pytest.mark.postgres
def test_writes_from_two_machines_queue_on_one_lock_and_a_long_wait_is_a_log_write_error(pg_url, tmp_path,
                                                                                         monkeypatch):
    """Every write transaction takes the log's advisory lock first (SQLite's BEGIN IMMEDIATE):
    another machine's write waits for it; past LOCK_TIMEOUT_S it is a LogWriteError saying why."""
    a, b = Log(pg_url, home=tmp_path), Log(pg_url, home=tmp_path)
    a.add_run({"run_id": "r1", "tags": ["x"]})
    held = threading.Event()
    done: list[float] = []

    def hold() -> None:
        with a._engine.transaction(write=True) as conn:
            conn.execute("UPDATE runs SET note = 'held' WHERE run_id = 'r1'")
            held.set()
            time.sleep(1.0)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    t0 = time.monotonic()
    assert b.tag("r1", "y") == ["x", "y"]  # read-change-write: waited, then saw the holder's commit
    done.append(time.monotonic() - t0)
    holder.join()
    assert done[0] > 0.5 and b.get_run("r1")["note"] == "held"
    monkeypatch.setattr(_log_postgres, "LOCK_TIMEOUT_S", 0.3)
    holder = threading.Thread(target=hold)
    holder.start()
    held.clear()
    held.wait(10)
    with pytest.raises(LogWriteError, match="another process holds its write lock") as caught:
        b.note("r1", "too late")
    assert caught.value.why.startswith("another process holds its write lock")
    holder.join()
    assert b.get_run("r1")["note"] == "held" and b.count() == 1
    a.close()
    b.close()


@pytest.mark.postgres
def test_a_connection_the_server_dropped_is_made_again(pg, pg_url, tmp_path):
    log = Log(pg_url, home=tmp_path)
    log.add_run({"run_id": "r1", "prompt": "x"})
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'wan_nb'", db="wan")
    assert log.count() == 1  # the dead connection is noticed at BEGIN and opened again
    log.add_run({"run_id": "r2", "prompt": "y"})
    assert log.count() == 2
    log.close()


@pytest.mark.postgres
def test_an_unknown_host_or_a_required_ssl_the_server_lacks_is_a_config_error_naming_the_host(pg_url, tmp_path):
    """Settings no wait will change are ConfigErrors at open, not "cannot be reached" (LogWriteError)."""
    for url, said in ((re.sub(r"@127\.0\.0\.1:\d+", "@nosuch.invalid", pg_url), "nosuch.invalid"),
                      (pg_url + "&sslmode=require", "127.0.0.1")):
        t0 = time.monotonic()
        with pytest.raises(wan.ConfigError) as caught:
            Log(url, home=tmp_path)
        assert type(caught.value) is wan.ConfigError and "cannot be opened" in str(caught.value), caught.value
        assert said in str(caught.value) and "pw-" not in str(caught.value) and time.monotonic() - t0 < 5


@pytest.mark.postgres
def test_a_failover_onto_a_read_only_standby_keeps_the_billed_cost_and_writes_it_when_it_clears(pg, tmp_path,
                                                                                               monkeypatch):
    """SQLSTATE 25006 (a read-only transaction: a standby a failover left the name on) while a
    task finishes: a LogWriteError, tried again (on a new connection) until it lands; the
    billed cost is never dropped. Made here with default_transaction_read_only on the database."""
    from wan_nb import _session

    monkeypatch.setattr(_session, "RECORD_RETRY_S", (0.1, 0.2))
    url = pg.new_database()
    db = url.rsplit("/", 1)[1]
    home = tmp_path / "shared"
    Log(url, home=home).close()  # the schema, made while writes are allowed
    kick = (f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' "
            "AND pid <> pg_backend_pid()")
    with Simulator(latency=1.0) as sim:
        sess = wan.connect(base_url=sim.base_url, home=home, log=url, quiet=True)
        try:
            sw = wan.sweep("a {animal}", animal=["fox", "owl"], seed=1, resolution="1K", quiet=True)
            wait_for(lambda: sim.ledger()["submitted"] == 2, what="both cells submitted")
            pg.psql(f"ALTER DATABASE {db} SET default_transaction_read_only = on")
            pg.psql(kick)  # every new session of the log: read-only
            wait_for(lambda: sim.ledger()["billed_quota"] == 2 * _spec.UNIT_QUOTA, what="both billed")
            time.sleep(1.0)  # the completions' writes meet the read-only server, and are tried again
            assert Log(url, home=home).spend().loc["all", "billed_quota"] == 0  # (reads go on)
            pg.psql(f"ALTER DATABASE {db} RESET default_transaction_read_only")  # new sessions may write
            sw.wait(timeout=60)
            ledger = sim.ledger()
        finally:
            sess.close()
    log = Log(url, home=home)
    spend = log.spend().loc["all"]
    assert spend["billed_quota"] == ledger["billed_quota"] == 2 * _spec.UNIT_QUOTA, (spend, ledger)
    assert (log.runs()["status"] == "completed").all() and sw.counts()["completed"] == 2
    log.close()


def test_sqlstates_are_wan_nb_errors_naming_the_host_transient_ones_log_write_errors():
    psycopg = pytest.importorskip("psycopg")
    engine = object.__new__(_log_postgres.PostgresEngine)
    engine._psycopg, engine.label, engine.host = psycopg, "postgresql://ann@db:5432/wan", "db:5432"
    engine._patience = 30.0
    for state, kind in (("25006", LogWriteError), ("08006", LogWriteError), ("53300", LogWriteError),
                        ("57P01", LogWriteError), ("40001", LogWriteError), ("58030", LogWriteError),
                        ("42501", wan.ConfigError), ("42P01", wan.ConfigError), ("22P02", wan.ConfigError)):
        exc = psycopg.errors.lookup(state)(f"the server says {state}")
        got = engine._translated(exc, write=True)
        assert type(got) is kind and "db:5432" in str(got), (state, got)


SWEEP_ON_A_MACHINE = textwrap.dedent("""
    import os, sys, time, wan_nb as wan
    base_url, home, go = sys.argv[1:4]
    open(go + "." + os.environ["WAN_NB_USER"], "w").close()  # up and waiting
    while not os.path.exists(go):
        time.sleep(0.005)
    wan.connect(base_url=base_url, home=home, quiet=True)          # the log: WAN_NB_LOG
    sw = wan.sweep("a {animal} on a team", animal=["fox", "owl", "cat", "yak"], seed=range(3), resolution="1K",
                   concurrency=6, quiet=True)
    sw.wait()
    print("DONE", sw.counts()["completed"], flush=True)
""")


@pytest.mark.postgres
@pytest.mark.subprocess
def test_two_machines_run_the_same_sweep_at_once_and_each_cell_is_billed_once(pg_url, tmp_path):
    home, go = tmp_path / "shared", tmp_path / "go"
    cells = 12
    with Simulator(latency=0.4, concurrency=16) as sim, ExitStack() as stack:
        procs = {user: stack.enter_context(child([sys.executable, "-c", SWEEP_ON_A_MACHINE, sim.base_url, str(home),
                                                  str(go)], env=_env(WAN_NB_USER=user, WAN_NB_LOG=pg_url)))
                 for user in ("ann", "bob")}
        for user, proc in procs.items():
            wait_for(Path(f"{go}.{user}").exists, proc=proc, what=f"{user}'s machine up and waiting")
        go.touch()  # both start the sweep at once
        outs = [communicate(proc, what=f"{user}'s sweep") for user, proc in procs.items()]
        ledger = sim.ledger()
    for out, err in outs:
        assert f"DONE {cells}" in out, describe(out, err)
    assert ledger["submitted"] == cells and ledger["billed_quota"] == cells * _spec.UNIT_QUOTA, ledger
    with child([sys.executable, "-c", "import wan_nb as wan; df = wan.log().runs(); "
                "print(df[['run_id', 'user', 'status', 'animal', 'seed', 'cost_quota']].to_json(orient='records'))"],
               env=_env(WAN_NB_LOG=pg_url, WAN_NB_HOME=str(home))) as third:
        out, err = communicate(third, what="a third machine's read of the team's log")
    assert third.returncode == 0, describe(out, err)
    rows = json.loads(out)
    assert len(rows) == cells and {(r["animal"], r["seed"]) for r in rows} == {
        (a, s) for a in ("fox", "owl", "cat", "yak") for s in range(3)}
    assert all(r["status"] == "completed" and r["user"] in ("ann", "bob") for r in rows)
    assert sum(r["cost_quota"] for r in rows) == ledger["billed_quota"]
    print(f"two machines, one sweep of {cells} cells: ledger submitted {ledger['submitted']}, "
          f"billed {ledger['billed_quota']} quota; rows by user "
          f"{ {u: sum(r['user'] == u for r in rows) for u in ('ann', 'bob')} }")


@pytest.mark.postgres
@pytest.mark.subprocess
def test_a_machine_killed_mid_sweep_is_taken_over_by_another_and_each_cell_is_billed_once(pg_url, tmp_path):
    home, go = tmp_path / "shared", tmp_path / "go"
    go.touch()
    with Simulator(latency=1.0, concurrency=4) as sim:
        with child([sys.executable, "-c", SWEEP_ON_A_MACHINE, sim.base_url, str(home), str(go)],
                   env=_env(WAN_NB_USER="ann", WAN_NB_LOG=pg_url)) as ann:
            wait_for(lambda: sim.ledger()["submitted"] >= 4, proc=ann, what="ann's machine submits 4 cells")
            ann.send_signal(signal.SIGKILL)  # the machine dies with tasks in flight, rows claimed
            ann.wait()
        killed_at = sim.ledger()["submitted"]
        assert 4 <= killed_at < 12, "the kill must land mid-sweep"
        with child([sys.executable, "-c", SWEEP_ON_A_MACHINE, sim.base_url, str(home), str(go)],
                   env=_env(WAN_NB_USER="bob", WAN_NB_LOG=pg_url)) as bob:
            out, err = communicate(bob, what="bob's run of the same sweep")
        assert "DONE 12" in out, describe(out, err)
        ledger = sim.ledger()
    assert ledger["submitted"] == 12 and ledger["billed_quota"] == 12 * _spec.UNIT_QUOTA, ledger
    log = Log(pg_url, home=home)
    runs = log.runs()
    assert len(runs) == 12 and (runs["status"] == "completed").all() and runs["task_id"].nunique() == 12
    assert set(runs["user"]) == {"ann", "bob"}  # ann's claims, taken over by bob, keep who started them
    assert log.spend().loc["all", "billed_quota"] == ledger["billed_quota"]
    assert all(Path(p).is_file() for ps in runs["paths"] for p in ps)
    log.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_sweep_on_a_big_team_log_reads_through_indexes(pg_url, tmp_path, monkeypatch):
    """Every statement a sweep sends to PostgreSQL has an index to serve it: planned with
    sequential scans switched off, none still scans runs or images (the planner would pick a
    scan on a small table anyway; this asks whether it could do without one)."""
    from test_log_query import _rows

    home = tmp_path / "shared"
    Log(pg_url, home=home).add_runs(_rows(3000))
    sent: list[tuple[str, list[Any]]] = []
    real = _log_postgres.PgConnection.execute

    def traced(self, sql, params=()):
        params = list(params)
        sent.append((sql, params))
        return real(self, sql, params)

    monkeypatch.setattr(_log_postgres.PgConnection, "execute", traced)
    with Simulator(latency=0.05, concurrency=4) as sim:
        sess = wan.connect(base_url=sim.base_url, home=home, log=pg_url, quiet=True)
        try:
            sw = wan.sweep("a {style} fox", style=["ink", "oil"], seed=[1, 2, 3], resolution="1K", quiet=True).wait()
            again = wan.sweep("a {style} fox", style=["ink", "oil"], seed=[1, 2, 3], resolution="1K", quiet=True).wait()
        finally:
            sess.close()
    monkeypatch.undo()
    assert sw.counts()["completed"] == 6 and again.counts()["completed"] == 6
    queries = {(q, tuple(p)) for q, p in sent if q.lstrip().upper().startswith(("SELECT", "UPDATE"))
               and "pg_class" not in q and "FROM meta" not in q}
    assert len(queries) > 10
    log = Log(pg_url, home=home)
    scans = {}
    with log._engine.transaction(write=False) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        for sql, params in queries:
            plan = " | ".join(r[0] for r in conn.execute("EXPLAIN " + sql, list(params)).fetchall())
            if re.search(r"Seq Scan on (runs|images)\b", plan):
                scans[sql] = plan
    log.close()
    print(f"{len(queries)} statements planned, {len(scans)} with a scan")
    assert not scans, "scans on a sweep's way:\n" + "\n".join(f"{s}\n  -> {p}" for s, p in scans.items())


# -- copy_to ---------------------------------------------------------------------------------------


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (i % 256, (i * 7) % 256, (i * 13) % 256)).save(buf, "PNG")
    return buf.getvalue()


def _big_sqlite_log(home: Path, n: int, files: int) -> Log:
    """``n`` runs, ``files`` of them with an image file (the rest cache hits of those), each
    made from the run before it: lineage across the whole log."""
    log = Log(home / "log.sqlite")  # before the files: a new log beside unknown images warns
    store = Store(home)
    images = [store.put(_png(i)) for i in range(files)]
    runs, imgs = [], {}
    for i in range(n):
        made = images[i % files]
        runs.append({"run_id": f"run-{i:05d}", "created_at": 1_700_000_000 + i, "prompt": f"p{i % 50}",
                     "status": "completed", "user": ["ann", "bob"][i % 2], "seed": i, "cost_quota": 11475,
                     "idempotency_key": None if i >= files else f"key-{i}", "cache_hit": i >= files,
                     "cached_from": None if i < files else f"run-{i % files:05d}", "tags": ["big"],
                     "images_in": [f"sha256:{images[(i - 1) % files].sha256}"] if 0 < i < files else None})
        imgs[f"run-{i:05d}"] = [made]
    log.add_runs(runs, imgs)
    return log


@pytest.mark.postgres
@pytest.mark.slow
def test_copy_to_postgresql_twice_adds_each_run_once_with_its_images_and_lineage(pg_url, tmp_path):
    src = _big_sqlite_log(tmp_path / "laptop", 10_000, 100)
    team_home = tmp_path / "team"
    dst = Log(pg_url, home=team_home)
    seen: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    first = src.copy_to(dst, progress=lambda done, total: seen.append((done, total)))
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = src.copy_to(dst)
    second_s = time.perf_counter() - t0
    assert (first.copied, first.present, first.images, first.files_copied) == (10_000, 0, 10_000, 100)
    assert (second.copied, second.present, second.updated, second.files_copied) == (0, 10_000, 0, 0)
    assert seen[-1] == (10_000, 10_000) and len(seen) == 5
    assert dst.count() == 10_000 and dst.count(tag="big") == 10_000
    a, b = src.runs(), dst.runs()
    assert a["run_id"].tolist() == b["run_id"].tolist()
    for col in ("prompt", "user", "seed", "cost_quota", "cached_from", "status", "idempotency_key"):
        assert a[col].tolist() == b[col].tolist(), col
    rel = lambda df, home: [[str(Path(p).relative_to(home)) for p in ps] for ps in df["paths"]]  # noqa: E731
    assert rel(a, tmp_path / "laptop") == rel(b, team_home)
    assert all(Path(p).is_file() for ps in b["paths"] for p in ps)
    assert src.made_from() == dst.made_from()
    assert dst.lineage("run-00099")["run_id"].tolist() == [f"run-{i:05d}" for i in range(100)]
    assert dst.spend().loc["all", "billed_quota"] == src.spend().loc["all", "billed_quota"]
    import psycopg

    with psycopg.connect(pg_url) as admin:  # analysed by the copy, not left to autovacuum's timing
        analysed = admin.execute("SELECT relname FROM pg_stat_user_tables WHERE relname IN ('runs', 'images') "
                                 "AND last_analyze IS NOT NULL").fetchall()
    assert sorted(r[0] for r in analysed) == ["images", "runs"]
    print(f"copy_to 10,000 runs SQLite -> PostgreSQL: {first_s:.1f} s, again {second_s:.1f} s "
          f"({dst.count()} rows, {first.files_copied} files)")
    src.close()
    dst.close()


def test_copy_to_again_brings_over_runs_whose_source_row_moved_on_and_a_third_copy_changes_nothing(log_url,
                                                                                                    tmp_path):
    """A run copied while unconfirmed, completed later in the source (cost, task, tags, stars,
    note, images): the next copy updates it. A run the target has taken further is left as it
    is (never less billed than it says), the target's own tags are kept; a third copy: nothing."""
    src = Log(tmp_path / "laptop" / "log.sqlite")
    src.add_runs([{"run_id": f"r{i}", "prompt": "a fox", "status": "unconfirmed", "idempotency_key": f"k{i}",
                   "est_quota": 11475, "created_at": 1_700_000_000 + i} for i in (1, 2, 3)])
    dst = Log(log_url, home=tmp_path / "team")
    first = src.copy_to(dst)
    assert (first.copied, first.updated) == (3, 0)
    image = Store(tmp_path / "laptop").put(_png(1))
    with src._engine.transaction(write=True) as conn:  # r1 lands in the source: billed, fetched
        conn.execute("UPDATE runs SET status = 'completed', task_id = 't-1', cost_quota = 11475, cost_usd = 0.0459, "
                     "finished_at = 1700000100 WHERE run_id = 'r1'")
        conn.execute("UPDATE runs SET status = 'completed', task_id = 't-2', cost_quota = 11475 WHERE run_id = 'r2'")
        conn.execute("INSERT INTO images (run_id, idx, path, sha256, bytes) VALUES ('r1', 0, ?, ?, ?)",
                     (image.path.relative_to(tmp_path / "laptop").as_posix(), image.sha256, image.path.stat().st_size))
    src.tag("r1", "keep")
    src.rate("r1", 5)
    src.note("r1", "the one")
    with dst._engine.transaction(write=True) as conn:  # the team finished r3 itself
        conn.execute("UPDATE runs SET status = 'completed', task_id = 't-3', cost_quota = 11475 WHERE run_id = 'r3'")
    dst.tag("r2", "team-pick")
    dst.rate("r2", 4)
    second = src.copy_to(dst)
    assert (second.copied, second.present, second.updated) == (0, 3, 2), second
    assert "2 of them updated" in str(second)
    r1, r2, r3 = (dst.get_run(f"r{i}") for i in (1, 2, 3))
    assert (r1["status"], r1["task_id"], r1["cost_quota"], r1["tags"], r1["stars"], r1["note"]) == (
        "completed", "t-1", 11475, ["keep"], 5, "the one")
    paths = [Path(im["path"]) for im in r1["images"]]
    assert [p.relative_to(tmp_path / "team") for p in paths] == [image.path.relative_to(tmp_path / "laptop")]
    assert paths[0].is_file()
    assert (r2["status"], r2["cost_quota"], r2["tags"], r2["stars"]) == ("completed", 11475, ["team-pick"], 4)
    assert (r3["status"], r3["task_id"], r3["cost_quota"]) == ("completed", "t-3", 11475)  # not back to unconfirmed
    assert dst.spend().loc["all", "billed_quota"] >= src.spend().loc["all", "billed_quota"]
    before = dst.runs()
    third = src.copy_to(dst)
    assert (third.copied, third.updated) == (0, 0), third
    assert dst.runs().equals(before) and dst.count() == 3
    src.close()
    dst.close()


@pytest.mark.postgres
def test_wan_nb_log_copy_from_a_shell_says_how_far_it_is(pg_url, tmp_path):
    src = _big_sqlite_log(tmp_path / "laptop", 30, 3)
    src.close()
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["log", "copy", str(tmp_path / "laptop"), pg_url, "--home", str(tmp_path / "team")])
    assert code == 0, err.getvalue()
    assert "copied 30 of 30 run(s)" in out.getvalue() and "30/30 runs (100%)" in err.getvalue()
    with redirect_stdout(out), redirect_stderr(err):
        assert cli.main(["log", "copy", str(tmp_path / "laptop"), pg_url, "--home", str(tmp_path / "team")]) == 0
    assert "copied 0 of 30 run(s)" in out.getvalue() and "already there: 30 run(s)" in out.getvalue()
    secret = _config.parse_log(pg_url).url.split(":")[2].split("@")[0]
    assert secret not in out.getvalue() + err.getvalue()
    with redirect_stdout(out), redirect_stderr(err):
        assert cli.main(["log", "copy", str(tmp_path / "nowhere"), pg_url]) == 2
    assert "no log at" in err.getvalue()
    # and back: the team's log into a laptop's new run folder, files from the team's folder
    with redirect_stdout(out), redirect_stderr(err):
        assert cli.main(["log", "copy", pg_url, str(tmp_path / "away"), "--src-home", str(tmp_path / "team")]) == 0
    away = Log(tmp_path / "away")
    assert away.count() == 30 and all(Path(p).is_file() for ps in away.runs()["paths"] for p in ps)
    assert away.made_from() == Log(tmp_path / "laptop").made_from()
    # wan-nb export reads WAN_NB_LOG's log
    with redirect_stdout(out), redirect_stderr(err), pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAN_NB_LOG", pg_url)
        assert cli.main(["export", "--home", str(tmp_path / "team"), "--csv", str(tmp_path / "team.csv")]) == 0
    assert len((tmp_path / "team.csv").read_text().splitlines()) == 31 and secret not in out.getvalue()


# -- a database restart mid-sweep --------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_restart_mid_sweep_loses_no_money(pg, pg_url, tmp_path):
    """The server is stopped while every cell is in flight and the tasks finish while it is
    down; it comes back on the same port: every billed cost lands, log == ledger."""
    home = tmp_path / "shared"
    with Simulator(latency=1.5, concurrency=8) as sim:
        sess = wan.connect(base_url=sim.base_url, home=home, log=pg_url, quiet=True)
        try:
            sw = wan.sweep("a {animal} in the rain", animal=["fox", "owl", "cat", "yak"], seed=[1, 2],
                           resolution="1K", quiet=True)
            wait_for(lambda: sim.ledger()["submitted"] == 8, what="every cell submitted")
            pg.stop()
            wait_for(lambda: sim.ledger()["billed_quota"] == 8 * _spec.UNIT_QUOTA,
                     what="every task completed and billed while the database is down")
            pg.start()
            sw.wait(timeout=120)
            ledger = sim.ledger()
        finally:
            sess.close()
    log = Log(pg_url, home=home)
    spend = log.spend().loc["all"]
    assert ledger["submitted"] == 8 and spend["billed_quota"] == ledger["billed_quota"], (spend, ledger)
    assert spend["unconfirmed_quota"] == 0 and sw.counts()["completed"] == 8
    runs = log.runs()
    assert (runs["status"] == "completed").all() and all(Path(p).is_file() for ps in runs["paths"] for p in ps)
    log.close()


# -- the password, nowhere ----------------------------------------------------------------------------


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _texts(exc: BaseException | None) -> list[str]:
    out = []
    while exc is not None:
        out += [str(exc), repr(exc), repr(exc.args)]
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.mark.postgres
@pytest.mark.slow
def test_the_password_appears_in_no_message_repr_exception_or_log_line(pg, pg_url, tmp_path, capfd):
    password = pg.password
    assert password in pg_url
    seen: list[str] = []
    handler = _Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with Simulator(latency=0.05) as sim:
            sess = wan.connect(base_url=sim.base_url, home=tmp_path / "shared", log=pg_url)
            try:
                r = wan.generate("a fox", seed=1, resolution="1K")
                sw = wan.sweep("a {animal}", animal=["owl", "cat"], seed=1, resolution="1K", quiet=True).wait()
                log = wan.log()
                seen += [repr(sess), repr(log), repr(log._engine), repr(_config.parse_log(pg_url)), str(r), repr(r),
                         repr(sw), log.location, str(log.runs().to_dict()), log.export_html(tmp_path / "r.html")
                         .read_text(), str(log.spend())]
                log.to_csv(tmp_path / "r.csv")
                seen.append((tmp_path / "r.csv").read_text())
                for bad in (pg_url.replace(password, password + "-wrong"), pg_url.replace(f":{pg.port}/", ":9/"),
                            pg_url.replace("/wan?", "/nosuchdb?"), pg_url.replace("postgresql:", "mysql:")):
                    with pytest.raises(wan.WanError) as caught:
                        Log(bad, home=tmp_path)
                    seen += _texts(caught.value)
                pg.stop()  # a read and a write while the server is away: their errors too
                try:
                    old = _log_postgres.RECONNECT_S
                    log._engine._patience = 0.5
                    for call in (log.count, lambda: log.tag(r, "while-down")):
                        with pytest.raises(LogWriteError) as caught:
                            call()
                        seen += _texts(caught.value)
                        assert "127.0.0.1" in str(caught.value)
                finally:
                    pg.start()
                    log._engine._patience = old
                assert log.count() == 3  # back
                out = io.StringIO()
                with redirect_stdout(out), redirect_stderr(out):
                    cli.main(["log", "copy", pg_url, str(tmp_path / "laptop"), "--src-home", str(tmp_path / "shared")])
                    cli.main(["log", "copy", pg_url.replace(password, "nope-" + password), str(tmp_path / "x")])
                    cli.main(["log", "check", pg_url])
                    cli.main(["export", "--home", pg_url, "--csv", str(tmp_path / "e.csv")])
                seen.append(out.getvalue())
            finally:
                sess.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    captured = capfd.readouterr()
    seen += [*handler.lines, captured.out, captured.err]
    seen += [p.read_text(errors="replace") for p in (tmp_path / "shared").rglob("*") if p.is_file()
             and p.suffix not in (".jpg", ".png")]
    leaks = [s for s in seen if password in s]
    assert not leaks, leaks[:3]
    assert len(seen) > 40 and any("cannot be reached" in s for s in seen) and handler.lines
    print(f"password leak check: {len(seen)} texts (messages, reprs, exceptions and their causes, "
          f"{len(handler.lines)} log records, stdout/stderr, CLI output, files), 0 with the password")

