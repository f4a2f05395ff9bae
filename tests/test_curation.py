"""Choosing among runs: stars, tags and notes as log data, full-text search, and the log
written by the previous release opening, migrating and reading back unchanged (issue 17)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import wan_nb as wan
from wan_nb import _log_schema
from wan_nb._log import Log
from wan_nb.sim import Simulator

FIXTURE = Path(__file__).parent / "data" / "log_v0_1_0"


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAN_NB_USER", "ann")


@pytest.fixture
def session(tmp_path, log_url):
    """A session on the simulator whose log is on each engine in turn (SQLite, PostgreSQL)."""
    with Simulator(latency=0.05) as sim:
        log = None if log_url.endswith("log.sqlite") else log_url
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", log=log, quiet=True)
        try:
            yield sess
        finally:
            sess.close()


def test_a_result_is_rated_tagged_and_noted_in_its_log(session):
    r = wan.generate("a heron in the reeds", seed=3, resolution="1K")
    r.rate(4)
    assert r.tag("keeper", "Sky") == ["keeper", "Sky"] and r.tag("keeper") == ["keeper", "Sky"]  # a set, case kept
    assert r.untag("Sky") == ["keeper"]
    r.note("too dark")
    row = wan.log().runs(run_id=r.run_id).iloc[0]
    assert row["stars"] == 4 and row["tags"] == ["keeper"] and row["note"] == "too dark" and row["rated_by"] == "ann"
    assert row["user"] == "ann" and r.stars == 4
    r.rate(0)
    r.note("")
    row = wan.log().runs(run_id=r.run_id).iloc[0]
    assert pd.isna(row["stars"]) and row["note"] is None and pd.isna(row["rated_by"])
    r.rate(np.int64(5))  # numpy integers too
    assert r.stars == 5
    r.rate(None)
    assert r.stars is None


def test_the_log_takes_a_run_id_a_result_or_a_row(session):
    a = wan.generate("fox", seed=1, resolution="1K")
    b = wan.generate("owl", seed=2, resolution="1K")
    log = wan.log()
    log.rate(a.run_id, 5)
    log.rate(b, 2)
    row = log.runs(run_id=a.run_id).iloc[0]
    log.tag(row, "x")
    log.note(row, "best so far")
    df = log.runs()
    assert str(df["stars"].dtype) == "Int64" and df["tags"].map(type).eq(list).all()
    assert list(log.runs(where="stars >= 4")["run_id"]) == [a.run_id]
    assert list(log.runs(tag="x")["run_id"]) == [a.run_id] == list(log.runs(tags="x")["run_id"])
    assert log.count(tag="x") == 1 and log.count(where="stars >= 2") == 2
    # in the where-strings too: b has no note (a missing text contains nothing), 'x' in tags is "holds x"
    assert list(log.runs(where="note.str.contains('best')")["run_id"]) == [a.run_id]
    assert list(log.runs(where="'x' in tags")["run_id"]) == [a.run_id]
    assert list(log.runs(where="'x' not in tags and stars >= 1")["run_id"]) == [b.run_id]
    with pytest.raises(ValueError, match="tags is a list"):
        log.runs(where="tags == ['x']")
    log.untag(a, "x")
    assert log.count(tag="x") == 0


BAD = [
    ("rate", (6,), "stars"), ("rate", (2.5,), "stars"), ("rate", ("4",), "stars"), ("rate", (-1,), "stars"),
    ("rate", (True,), "stars"), ("tag", ("",), "tags[0]"), ("tag", ("x" * 200,), "tags[0]"),
    ("tag", ("good", "with space"), "tags[1]"), ("tag", (), "tags"), ("untag", ("a/b",), "tags[0]"),
    ("note", (3,), "note"), ("note", ("\ud800",), "note"),
    ("note", ("a\x00b",), "note"),  # PostgreSQL text cannot hold a NUL: refused on both engines alike
    ("tag", ("keeper\n",), "tags[0]"), ("tag", ("héron!",), "tags[0]"), ("tag", ("x" * 41,), "tags[0]"),
]


@pytest.mark.parametrize(("call", "args", "field"), BAD, ids=[f"{c}{a!r}"[:40] for c, a, _ in BAD])
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(session, call, args, field):
    r = wan.generate("a lighthouse", seed=4, resolution="1K")
    r.rate(3)
    r.tag("first")
    r.note("kept")
    before = wan.log().runs(run_id=r.run_id)[["stars", "tags", "note", "rated_by"]].to_dict("records")
    with pytest.raises(wan.RequestError) as caught:
        getattr(r, call)(*args)
    assert caught.value.problems[0].field == field
    after = wan.log().runs(run_id=r.run_id)[["stars", "tags", "note", "rated_by"]].to_dict("records")
    assert after == before


NUL_TEXT = {
    "prompt": lambda: wan.generate("a\x00b", seed=5, resolution="1K"),
    "note": lambda: wan.generate("a lighthouse", seed=5, resolution="1K", note="a\x00b"),
    "tags[0]": lambda: wan.generate("a lighthouse", seed=5, resolution="1K", tags=["a\x00b"]),
    "sweep tags[0]": lambda: wan.sweep("a {x}", x=["fox", "owl"], resolution="1K", tags=["a\x00b"], quiet=True),
}


@pytest.mark.parametrize("field", list(NUL_TEXT))
def test_free_text_the_log_cannot_store_is_refused_before_anything_is_sent(session, field):
    wan.generate("a lighthouse", seed=4, resolution="1K")
    before = wan.log().runs()
    with pytest.raises(wan.RequestError) as caught:
        NUL_TEXT[field]()
    problem = caught.value.problems[0]
    assert problem.field == field.split()[-1] and "NUL" in problem.message and "x00" in str(caught.value)
    pd.testing.assert_frame_equal(wan.log().runs(), before)  # nothing written, on either engine


def test_tags_given_to_a_run_when_it_is_made_follow_the_tag_rule(session):
    """One rule for a tag, whether added later (r.tag) or given with the request."""
    wan.generate("a lighthouse", seed=4, resolution="1K", tags=["héron", "take:2"])
    before = wan.log().runs()
    for call in (lambda: wan.generate("a lighthouse", seed=5, resolution="1K", tags=["ok", "hero shot"]),
                 lambda: wan.sweep("a {x}", x=["fox", "owl"], resolution="1K", tags=["hero shot"], quiet=True)):
        with pytest.raises(wan.RequestError) as caught:
            call()
        assert [(p.field, p.rule) for p in caught.value.problems] in ([("tags[1]", "tag")], [("tags[0]", "tag")])
        assert "1-40 characters" in str(caught.value)
    pd.testing.assert_frame_equal(wan.log().runs(), before)  # nothing written, nothing sent


def test_a_run_that_does_not_exist_is_a_clear_error(session):
    with pytest.raises(wan.RequestError, match="no run with run_id 'run-nope'"):
        wan.log().rate("run-nope", 3)
    with pytest.raises(wan.RequestError, match="no run"):
        wan.log().tag("run-nope", "x")
    with pytest.raises(wan.RequestError, match="expected a run id, a Result or a row"):
        wan.log().rate(42, 3)


def test_search_is_ranked_over_prompt_note_and_tags(session):
    heron = wan.generate("a grey heron standing in the reeds", seed=1, resolution="1K")
    wan.generate("a heron over the sea", seed=2, resolution="1K")
    fox = wan.generate("a fox in snow", seed=3, resolution="1K")
    fox.note("looks like a heron from afar")
    tagged = wan.generate("a lighthouse", seed=4, resolution="1K")
    tagged.tag("reeds")
    log = wan.log()
    found = log.search("heron reeds")
    assert list(found["run_id"]) == [heron.run_id]  # every word, anywhere in prompt / note / tags
    assert set(log.search("heron", limit=None)["run_id"]) >= {heron.run_id, fox.run_id}
    assert list(log.search("reeds", limit=None)["run_id"])[:2] != []
    assert tagged.run_id in set(log.search("reeds", limit=None)["run_id"])
    assert list(log.search("HERON", limit=1)["run_id"]) and len(log.search("heron", limit=1)) == 1
    assert log.search("heron", where="seed == 3")["run_id"].tolist() == [fox.run_id]
    assert log.search("zebra").empty and "score" in found.columns
    # quotes, stars and operators are never query syntax: words only (here "or" must be present too)
    assert len(log.search('"heron*" (reeds')) == 1 and log.search('heron" OR "fox').empty
    fox.note("")
    assert fox.run_id not in set(log.search("afar", limit=None)["run_id"])  # the index follows the note
    with pytest.raises(wan.RequestError, match="words"):
        log.search("  ")


def test_a_tag_is_letters_and_digits_of_any_script(session):
    r = wan.generate("a heron at dawn", seed=6, resolution="1K")
    other = wan.generate("a fox", seed=7, resolution="1K")
    tags = ["héron", "Reiher", "東京", "日本:2024", "цапля-1", "x" * 40]
    assert r.tag(*tags) == tags  # case and spelling kept
    log = wan.log()
    assert log.runs(run_id=r.run_id).iloc[0]["tags"] == tags
    for tag in ("héron", "東京", "цапля-1"):
        assert list(log.runs(tag=tag)["run_id"]) == [r.run_id]
        assert list(log.runs(where=f"{tag!r} in tags")["run_id"]) == [r.run_id]
    for words in ("héron", "東京", "цапля", "Reiher héron"):  # the full-text index reads them as words
        assert list(log.search(words)["run_id"]) == [r.run_id], words
    assert other.run_id not in set(log.search("héron", limit=None)["run_id"])
    assert r.untag("héron") == tags[1:]


def test_search_puts_the_best_match_first(session):
    """Several runs match: the one the words say most of comes first, on both engines (FTS5's
    bm25, PostgreSQL's ts_rank), then the others in their order, a limit keeping the best."""
    weak = wan.generate("a grey heron standing by a long wide quiet river under a pale sky at dawn", seed=1,
                        resolution="1K")
    best = wan.generate("a heron", seed=2, resolution="1K")
    best.note("heron, heron")
    best.tag("heron")
    wan.generate("a fox in snow", seed=3, resolution="1K")  # no match
    middle = wan.generate("heron by heron", seed=4, resolution="1K")
    log = wan.log()
    found = log.search("heron", limit=None)
    assert list(found["run_id"]) == [best.run_id, middle.run_id, weak.run_id]
    assert found["score"].is_monotonic_decreasing and found["score"].iloc[0] > found["score"].iloc[-1]
    assert list(log.search("heron", limit=2)["run_id"]) == [best.run_id, middle.run_id]
    assert list(log.search("heron", where="seed != 2", limit=None)["run_id"]) == [middle.run_id, weak.run_id]


def test_search_reads_the_index_not_the_table(tmp_path):
    log = Log(tmp_path / "log.sqlite")
    log.add_runs([{"run_id": f"r{i}", "prompt": f"prompt {i} " + ("heron" if i % 97 == 0 else "fox")}
                  for i in range(3000)])
    traced: list[str] = []
    log._engine.connection().set_trace_callback(traced.append)  # the SQL search() really sends
    assert len(log.search("heron", limit=None)) == len(range(0, 3000, 97))
    (sql,) = [t for t in traced if "MATCH" in t]
    conn = sqlite3.connect(tmp_path / "log.sqlite")
    plan = " | ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
    conn.close()
    assert "VIRTUAL TABLE INDEX" in plan and not re.search(r"\bSCAN runs\b(?!_fts)", plan), plan


def test_a_sweeps_cells_are_results_like_any_other(session):
    sw = wan.sweep("a {animal}", animal=["fox", "owl"], seed=[1, 2], resolution="1K", quiet=True).wait()
    sw.cells[1].result.rate(5)
    sw.cells[2].result.tag("keeper")
    log = wan.log()
    assert list(log.runs(where="stars == 5")["run_id"]) == [sw.cells[1].run_id]
    assert list(log.runs(tag="keeper", sweep_id=sw.id)["run_id"]) == [sw.cells[2].run_id]


def test_choices_reach_every_view_and_export(session, tmp_path):
    a = wan.generate("a <b>bold</b> heron", seed=1, resolution="1K")
    b = wan.generate("a plain heron", seed=2, resolution="1K")
    c = wan.generate("a third heron", seed=3, resolution="1K")
    a.rate(5)
    b.rate(4)
    c.rate(2)
    a.tag("keeper")
    a.note("<script>alert(1)</script>")
    log = wan.log()
    page = log.export_html(tmp_path / "favourites.html", where="stars >= 4").read_text()
    assert a.run_id in page and b.run_id in page and c.run_id not in page  # exactly the favourites
    assert "★★★★★" in page and "★★★★☆" in page and "keeper" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    grid = log.grid("prompt", "seed")._repr_html_()
    assert 'title="5 stars"' in grid and 'aria-label="4 stars"' in grid and "★★☆☆☆" in grid
    csv = pd.read_csv(log.to_csv(tmp_path / "runs.csv"))
    assert csv.set_index("run_id").loc[a.run_id, "stars"] == 5
    assert json.loads(csv.set_index("run_id").loc[a.run_id, "tags"]) == ["keeper"]
    compared = log.compare(a, c)
    rows = {p.name: (p.a, p.b) for p in compared.outcome}
    assert rows["stars"] == (5, 2) and rows["tags"] == (["keeper"], None)
    pq = pd.read_parquet(log.to_parquet(tmp_path / "runs.parquet"))
    assert pq.set_index("run_id").loc[b.run_id, "stars"] == 4


RACER = textwrap.dedent("""
    import sys
    from wan_nb._log import Log
    log, who = Log(sys.argv[1]), sys.argv[2]
    for i in range(40):
        log.tag("r0", f"{who}-{i}")
        log.rate("r0", 1 + i % 5)
""")


@pytest.mark.subprocess
def test_two_processes_tagging_one_run_at_once_lose_nothing(tmp_path):
    path = tmp_path / "log.sqlite"
    Log(path).add_run({"run_id": "r0", "prompt": "shared"})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(path), who], env=env, stderr=subprocess.PIPE)
             for who in ("ann", "bob")]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()[-2000:]
    row = Log(path).get_run("r0")
    assert sorted(row["tags"]) == sorted(f"{w}-{i}" for w in ("ann", "bob") for i in range(40))
    assert row["stars"] == 5 and row["rated_by"]  # the last rating of either (both end on i=39: 5 stars)


# -- the log across versions ------------------------------------------------------------------------


def _copy_fixture(tmp_path: Path) -> Path:
    home = tmp_path / "old_runs"
    shutil.copytree(FIXTURE, home)
    return home


def _plain(v):
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if v is None or (not isinstance(v, (list, dict)) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def test_a_log_written_by_0_1_0_migrates_in_place_with_nothing_lost(tmp_path):
    home = _copy_fixture(tmp_path)
    expected = json.loads((home / "expected.json").read_text())
    assert expected["schema_version"] == 2 < _log_schema.SCHEMA_VERSION
    log = Log(home / "log.sqlite")
    assert log.schema_version == _log_schema.SCHEMA_VERSION
    assert not list(home.glob("log.sqlite.before-migration*"))  # the copy went once the migration succeeded
    runs = log.runs()
    assert list(runs["run_id"]) == [r["run_id"] for r in expected["runs"]]
    for want, (_, got) in zip(expected["runs"], runs.iterrows(), strict=True):
        for column, value in want.items():
            if column == "paths":
                assert [str(Path(p).relative_to(home)) for p in got["paths"]] == value
            elif column == "created_at":
                assert got["created_at"] == pd.Timestamp(value)
            else:
                assert _plain(got[column]) == value, (want["run_id"], column)
        assert all(Path(p).is_file() for p in got["paths"])
        assert pd.isna(got["stars"])
    images = log.images()
    assert [(r["run_id"], int(r["idx"]), str(Path(r["path"]).relative_to(home)), r["sha256"], int(r["bytes"]))
            for r in images.to_dict("records")] == [
        (i["run_id"], i["idx"], i["path"], i["sha256"], i["bytes"]) for i in expected["images"]]
    assert {rid: list(log.lineage(rid)["run_id"]) for rid in runs["run_id"]} == expected["lineage"]
    spend = log.spend().loc["all"]
    assert {k: int(spend[k]) for k in expected["spend"]} == expected["spend"]
    assert {rid: log.inputs(rid) for rid in expected["inputs"]} == expected["inputs"]
    # the new columns and the search index work on the old runs
    assert list(log.search("heron dusk", limit=None)["run_id"]) == [] and len(log.search("heron", limit=None)) == 2
    log.rate(runs["run_id"][0], 5)
    assert log.count(where="stars == 5") == 1 and log.count(tag="first") == 1


def test_a_migration_that_fails_changes_nothing_and_keeps_the_copy(tmp_path, monkeypatch):
    home = _copy_fixture(tmp_path)
    before = (home / "log.sqlite").read_bytes()
    broken = {**_log_schema.MIGRATIONS, 3: ["ALTER TABLE no_such_table ADD x"]}
    monkeypatch.setattr(_log_schema, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        Log(home / "log.sqlite")
    conn = sqlite3.connect(home / "log.sqlite")
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    assert "stars" not in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}  # one transaction: rolled back
    conn.close()
    copy = home / "log.sqlite.before-migration"
    assert copy.is_file() and copy.stat().st_size >= len(before) // 2
    monkeypatch.undo()
    monkeypatch.setenv("WAN_NB_USER", "ann")
    assert Log(home / "log.sqlite").count() == 7  # the next open migrates


def test_a_log_from_a_newer_release_is_refused_clearly(tmp_path):
    home = _copy_fixture(tmp_path)
    conn = sqlite3.connect(home / "log.sqlite")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(wan.ConfigError, match=r"newer wan_nb \(log schema 99"):
        Log(home / "log.sqlite")
