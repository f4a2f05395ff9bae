"""One log copied into another: ``Log.copy_to`` and ``wan-nb log copy`` (a person's SQLite log
into the team's PostgreSQL, a team's log into a laptop's SQLite, any way round).

Runs keep their ids, with their images, inputs, choices and costs as stored; image files
(and thumbnails, and the uploads folder) are copied into the target's run folder under
the same relative paths, each atomically and only when it is not there already
(content-addressed names: the same name is the same bytes). Idempotent, in batches: each
batch is one write transaction that adds only what the target does not hold, so a copy
interrupted half-way and run again finishes the job, and a second copy adds only runs made
since. A run whose idempotency key the target holds under another run id (the same cell
run on two machines, one task, billed once) is left out and counted: the target already
has that task's row, and one row per key is what keeps it from being counted twice.

A run the target already holds (a copy made before) is brought up to date when its source
row has moved on since: a run copied while ``unconfirmed`` and later ``completed`` in the
source gets its status, task, cost, timings, images and inputs (``updated`` in the report).
The source's facts are taken only when that is a move the run's states allow from the
target's (``_states.NEXT``: never a ``completed`` back to ``unconfirmed``) or the source
says more was billed, and never when the source says less was billed than the target. Tags,
stars and notes are merged, not replaced: the source's tags first, then the target's others;
the source's stars and note where it has them, else the target's. So a third copy finds
nothing to do (idempotent), and a copy the other way round never undoes what a team did.

Files are copied before the rows that name them, so a reader of the target never sees a
run whose images are not there yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _log_schema as schema
from . import _states
from ._atomic import atomic_copy
from ._log_dialect import cols, q
from ._log_engine import Engine
from ._log_paths import RunFolder

BATCH = 2000  # runs per write transaction
_IN = 500  # values per IN (...) list
_RUN_NAMES = [c.name for c in schema.RUN_COLUMNS]
_IMAGE_NAMES = [c.name for c in schema.IMAGE_COLUMNS]
_INPUT_NAMES = [c.name for c in schema.INPUT_COLUMNS]
_AT = {name: i for i, name in enumerate(_RUN_NAMES)}


@dataclass
class CopyReport:
    """What a copy did, in figures (``lines()``: as the command line says it)."""

    source: str
    target: str
    runs: int = 0  # runs in the source
    copied: int = 0  # runs added to the target
    present: int = 0  # already in the target (same run id): a copy made before
    updated: int = 0  # of those, brought up to date: their source row had moved on since
    same_task: int = 0  # left out: the target holds their task under another run id
    images: int = 0  # image rows added
    files_copied: int = 0
    files_present: int = 0
    files_missing: int = 0  # named by the source log, not in its run folder
    missing: list[str] = field(default_factory=list)  # the first few of those

    def lines(self) -> list[str]:
        out = [f"copied {self.copied} of {self.runs} run(s) from {self.source} to {self.target}",
               f"  already there: {self.present} run(s)"
               + (f", {self.updated} of them updated (their source row had moved on)" if self.updated else "")
               + (f"; left out {self.same_task} whose task the target already holds under another run id"
                  if self.same_task else ""),
               f"  {self.images} image row(s); files: {self.files_copied} copied, {self.files_present} already there"]
        if self.files_missing:
            out.append(f"  {self.files_missing} file(s) the source names are missing from its folder "
                       f"(rows copied as they are): {', '.join(self.missing)}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _chunks(values: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def _select_in(conn: Any, sql: str, column: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
    """``sql`` (ending in WHERE) for ``column IN values``, in lists of ``_IN``."""
    rows: list[tuple[Any, ...]] = []
    for part in _chunks(values, _IN):
        rows.extend(tuple(r) for r in conn.execute(
            f'{sql} "{column}" IN ({", ".join("?" for _ in part)})', list(part)).fetchall())
    return rows


def _held(conn: Any, ids: Sequence[str], keys: Sequence[str]) -> tuple[set[str], set[str]]:
    """Of these run ids and idempotency keys, those the log holds."""
    have_ids = {r[0] for r in _select_in(conn, "SELECT run_id FROM runs WHERE", "run_id", ids)}
    have_keys = {r[0] for r in _select_in(conn, "SELECT idempotency_key FROM runs WHERE", "idempotency_key", keys)}
    return have_ids, have_keys


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


class _Files:
    """Image files copied into the target's run folder, each once."""

    def __init__(self, src: RunFolder, dst: RunFolder, report: CopyReport) -> None:
        self.src, self.dst, self.report = src, dst, report
        self.skip = _same_folder(src.root, dst.root)  # one shared folder: the files are where they belong
        self.seen: set[str] = set()

    def copy(self, stored: str | None, counted: bool) -> None:
        if stored is None or self.skip or stored in self.seen:
            return
        self.seen.add(stored)
        source = self.src.absolute(stored)
        if source is None or not os.path.isfile(source):
            if counted:
                self.report.files_missing += 1
                if len(self.report.missing) < 5:
                    self.report.missing.append(stored)
            return
        if not self.dst.contains(stored):
            return  # the target's folder would put it elsewhere (a symlink out): not followed
        target = self.dst.root / stored
        try:
            if target.stat().st_size == os.path.getsize(source):
                if counted:
                    self.report.files_present += 1
                return
        except FileNotFoundError:
            pass
        atomic_copy(source, target)
        if counted:
            self.report.files_copied += 1

    def uploads(self) -> None:
        """Files uploaded into forms (``uploads/<sha256>.<ext>``), so a form's code finds them."""
        folder = self.src.root / "uploads"
        if self.skip or not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                self.copy(f"uploads/{path.name}", counted=False)


def copy_log(src: Engine, src_folder: RunFolder, dst: Engine, dst_folder: RunFolder,
             progress: Callable[[int, int], Any] | None = None) -> CopyReport:
    """Copy every run of ``src`` that ``dst`` does not hold (see the module docstring)."""
    report = CopyReport(source=src.label, target=dst.label)
    with src.transaction(write=False) as conn:
        listed = [(r[0], r[1]) for r in conn.execute(
            f"SELECT run_id, idempotency_key FROM runs ORDER BY created_at, {src.tiebreak}").fetchall()]
    report.runs = len(listed)
    files = _Files(src_folder, dst_folder, report)
    files.uploads()
    done = 0
    for batch in _chunks(listed, BATCH):
        ids = [rid for rid, _ in batch]
        keys = [key for _, key in batch if key]
        with dst.transaction(write=False) as conn:
            have_ids, have_keys = _held(conn, ids, keys)
        wanted = [rid for rid, key in batch if rid not in have_ids and not (key and key in have_keys)]
        if wanted:
            with src.transaction(write=False) as conn:
                runs = _select_in(conn, f"SELECT {cols(_RUN_NAMES)} FROM runs WHERE", "run_id", wanted)
                images = _select_in(conn, f"SELECT {cols(_IMAGE_NAMES)} FROM images WHERE", "run_id", wanted)
                inputs = _select_in(conn, f"SELECT {cols(_INPUT_NAMES)} FROM inputs WHERE", "run_id", wanted)
            path, thumb = _IMAGE_NAMES.index("path"), _IMAGE_NAMES.index("thumb_path")
            for row in images:  # the files first: a row never names a file that is not there yet
                files.copy(row[path], counted=True)
                files.copy(row[thumb], counted=False)
            order = {rid: i for i, rid in enumerate(wanted)}
            runs.sort(key=lambda r: order[r[0]])  # the target's own tie-break follows the source's order
            images.sort(key=lambda r: (order[r[0]], r[1]))
            inputs.sort(key=lambda r: (order[r[0]], r[1]))
            _write(dst, runs, images, inputs, report)
        present = [rid for rid in ids if rid in have_ids]
        if present:
            _update(src, dst, present, files, report)
        report.present += len(present)
        report.same_task += sum(1 for rid, key in batch if rid not in have_ids and key and key in have_keys)
        done += len(batch)
        if progress is not None:
            progress(done, len(listed))
    if report.copied or report.updated:
        dst.refresh_statistics()  # a bulk load's queries planned on the tables' new shape at once
    return report


def _insert(table: str, names: list[str]) -> str:
    return f"INSERT INTO {table} ({cols(names)}) VALUES ({', '.join('?' for _ in names)})"


def _write(dst: Engine, runs: list[tuple[Any, ...]], images: list[tuple[Any, ...]],
           inputs: list[tuple[Any, ...]], report: CopyReport) -> None:
    """One batch in one write transaction, checked again under the target's write lock (another
    copy, or a sweep, may have added some of these meanwhile)."""
    key = _RUN_NAMES.index("idempotency_key")
    with dst.transaction(write=True) as conn:
        have_ids, have_keys = _held(conn, [r[0] for r in runs], [r[key] for r in runs if r[key]])
        new = [r for r in runs if r[0] not in have_ids and not (r[key] and r[key] in have_keys)]
        chosen = {r[0] for r in new}
        kept = [r for r in images if r[0] in chosen]
        for table, names, rows in (("runs", _RUN_NAMES, new), ("images", _IMAGE_NAMES, kept),
                                   ("inputs", _INPUT_NAMES, [r for r in inputs if r[0] in chosen])):
            if hasattr(conn, "copy_rows"):  # PostgreSQL: COPY (the rows are new: checked above, under the lock)
                conn.copy_rows(table, names, rows)
            else:
                conn.executemany(_insert(table, names), rows)
    report.copied += len(new)
    report.images += len(kept)
    report.present += sum(1 for r in runs if r[0] in have_ids)
    report.same_task += sum(1 for r in runs if r[0] not in have_ids and r[0] not in chosen)


# -- runs the target holds already: brought up to date when the source's row has moved on ----------

Rows = tuple[dict[str, tuple[Any, ...]], dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]]


def _rows(conn: Any, ids: Sequence[str]) -> Rows:
    """The run rows of ``ids``, and their image and input rows (by run id, in ``idx`` order)."""
    runs = {r[0]: r for r in _select_in(conn, f"SELECT {cols(_RUN_NAMES)} FROM runs WHERE", "run_id", ids)}
    images: dict[str, list[tuple[Any, ...]]] = {}
    inputs: dict[str, list[tuple[Any, ...]]] = {}
    for table, names, into in (("images", _IMAGE_NAMES, images), ("inputs", _INPUT_NAMES, inputs)):
        for r in sorted(_select_in(conn, f"SELECT {cols(names)} FROM {table} WHERE", "run_id", ids),
                        key=lambda r: (r[0], r[1])):
            into.setdefault(r[0], []).append(r)
    return runs, images, inputs


def _billed(row: tuple[Any, ...]) -> int:
    """What a run row says was billed (quota): its cost once the server said completed."""
    return int(row[_AT["cost_quota"]] or 0) if row[_AT["status"]] in _states.BILLED else 0


def _tags(text: Any) -> list[Any]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _merged(src: tuple[Any, ...], dst: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """The target's row after the copy, and whether it takes the source's facts (status, task,
    cost, images): see the module docstring. Curation is merged either way."""
    status_src, status_dst = src[_AT["status"]], dst[_AT["status"]]
    moves = status_dst is None or status_src in _states.NEXT.get(status_dst, frozenset())
    facts = (moves or _billed(src) > _billed(dst)) and _billed(src) >= _billed(dst)
    row = list(src if facts else dst)
    row[_AT["idempotency_key"]] = dst[_AT["idempotency_key"]] or row[_AT["idempotency_key"]]  # the claim stays
    tags_src, tags_dst = _tags(src[_AT["tags"]]), _tags(dst[_AT["tags"]])
    tags = tags_src + [t for t in tags_dst if t not in tags_src]
    row[_AT["tags"]] = (src[_AT["tags"]] if tags == tags_src else dst[_AT["tags"]] if tags == tags_dst
                        else json.dumps(tags, ensure_ascii=False, separators=(",", ":")))
    rated = src if src[_AT["stars"]] is not None else dst
    row[_AT["stars"]], row[_AT["rated_by"]] = rated[_AT["stars"]], rated[_AT["rated_by"]]
    row[_AT["note"]] = src[_AT["note"]] or dst[_AT["note"]]
    return tuple(row), facts


def _changes(src: Rows, dst: Rows, ids: Sequence[str]) -> list[tuple[tuple[Any, ...], bool]]:
    """For each run of ``ids`` whose target rows would change: its new row, and whether its
    images and inputs are replaced by the source's."""
    out = []
    for rid in ids:
        if rid not in src[0] or rid not in dst[0]:
            continue
        row, facts = _merged(src[0][rid], dst[0][rid])
        files = facts and (src[1].get(rid, []) != dst[1].get(rid, []) or src[2].get(rid, []) != dst[2].get(rid, []))
        if row != dst[0][rid] or files:
            out.append((row, files))
    return out


def _update(src: Engine, dst: Engine, ids: Sequence[str], files: _Files, report: CopyReport) -> None:
    """Bring the target's copies of ``ids`` up to date where the source's rows moved on: the files
    first, then the rows, planned again under the target's write lock (a sweep on the target
    may have moved them meanwhile)."""
    with src.transaction(write=False) as conn:
        theirs = _rows(conn, ids)
    with dst.transaction(write=False) as conn:
        ours = _rows(conn, ids)
    changed = _changes(theirs, ours, ids)
    if not changed:
        return
    path, thumb = _IMAGE_NAMES.index("path"), _IMAGE_NAMES.index("thumb_path")
    for row, replace in changed:
        for image in theirs[1].get(row[0], []) if replace else []:
            files.copy(image[path], counted=True)
            files.copy(image[thumb], counted=False)
    names = _RUN_NAMES[1:]
    update = f"UPDATE runs SET {', '.join(f'{q(n)} = ?' for n in names)} WHERE run_id = ?"
    with dst.transaction(write=True) as conn:
        ours = _rows(conn, [row[0] for row, _ in changed])
        changed = _changes(theirs, ours, [row[0] for row, _ in changed])
        conn.executemany(update, [[*row[1:], row[0]] for row, _ in changed])
        replaced = [row[0] for row, replace in changed if replace]
        for table, names_of, rows in (("images", _IMAGE_NAMES, theirs[1]), ("inputs", _INPUT_NAMES, theirs[2])):
            conn.executemany(f"DELETE FROM {table} WHERE run_id = ?", [[rid] for rid in replaced])
            conn.executemany(_insert(table, names_of), [r for rid in replaced for r in rows.get(rid, [])])
    report.updated += len(changed)
