"""The experiment log of a run folder: every request, task, cost and file, as pandas.

``Log`` is the user's face of the log. Behind it, one part per job: the storage
engine (``_log_engine``: SQLite by default; ``_log_postgres`` for a team's log in
PostgreSQL, opened by its URL), the writer (``_log_writer``: claims,
state moves, the writer thread; the package's, not the user's), row reads for the
run pipeline (``_log_rows``), DataFrame queries (``_log_frames``) and files written
out (``_log_export``). ``writer(log)`` and ``records(log)`` hand those parts to the
package (the session, the views) without putting their methods on the public class.

pandas is loaded when the first DataFrame is asked for, the views (grid, report,
explorer) when they are: ``import wan_nb`` and a run that never reads a DataFrame
stay quick.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _config
from ._curation import check_note, check_stars, check_tags, run_id_of
from ._log_copy import CopyReport, copy_log
from ._log_engine import Engine, SQLiteEngine
from ._log_paths import RunFolder
from ._log_rows import LogRows
from ._log_writer import LogWriter

if TYPE_CHECKING:
    import pandas as pd

    from ._explore import LogExplorer
    from ._grid import Grid
    from ._log_frames import LogFrames, Where
    from ._report import Comparison


class Log:
    """The experiment log: a run folder's ``log.sqlite``, or a team's PostgreSQL database,
    with pandas views.

    ``Log(path)``: a ``log.sqlite`` file or its run folder (the folder holds the images).
    ``Log("postgresql://user:password@host:5432/db", home=DIR)``: a team's log; ``home`` is
    the run folder of its files, shared by the team (default ``WAN_NB_HOME``, else
    ./wan_runs); every machine stores paths relative to it. ``sqlite:///path`` is a path.
    A URL of any other database is a ConfigError, never a file name. Every call below works
    the same on both engines.
    """

    def __init__(self, path: str | os.PathLike[str] | _config.LogTarget,
                 home: str | os.PathLike[str] | None = None) -> None:
        target = path if isinstance(path, _config.LogTarget) else _config.parse_log(path)
        self.kind = target.kind
        self.location = target.label  # where the log is, for messages: a path, or the URL without its password
        engine: Engine
        if target.path is not None:
            self.path: Path | None = target.path
            self.root = _config.home(home).absolute() if home is not None else target.path.parent
            target.path.parent.mkdir(parents=True, exist_ok=True)
            engine = SQLiteEngine(target.path)
        else:
            from ._log_postgres import PostgresEngine  # the driver (the postgres extra) loads for a PostgreSQL log

            self.path = None
            self.root = _config.home(home).absolute()
            engine = PostgresEngine(target)
        self._folder = RunFolder(self.root)
        self._engine = engine
        self._rows = LogRows(self._engine, self._folder)
        self._writer = LogWriter(self._engine, self._folder)

    def __repr__(self) -> str:
        home = "" if self.path is not None and self.root == self.path.parent else f", home={str(self.root)!r}"
        return f"Log({self.location!r}{home})"

    def close(self) -> None:
        """Close the log's connections (each thread's); a later call opens them again."""
        self._engine.close()

    @functools.cached_property
    def _frames(self) -> LogFrames:
        from ._log_frames import LogFrames  # pandas loads with the first DataFrame, not with `import wan_nb`

        return LogFrames(self._engine, self._folder, self._rows)

    @property
    def schema_version(self) -> int:
        """The version of the log's tables (``_log_schema.SCHEMA_VERSION`` once opened)."""
        return self._engine.schema_version

    def contains(self, path: str | Path) -> bool:
        """Is ``path`` inside this log's run folder, with ``..`` and symlinks resolved?"""
        return self._folder.contains(path)

    # -- imports -----------------------------------------------------------------------
    def add_run(self, run: Mapping[str, Any], images: Iterable[Any] | None = None) -> None:
        """Insert one run (keys = column names), with its ``images``, in one transaction.
        ``created_at`` defaults to now. For imports: runs made by wan_nb are logged as they run."""
        self._writer.add_run(run, images)

    def add_runs(self, runs: Iterable[Mapping[str, Any]], images: Mapping[str, Iterable[Any]] | None = None) -> int:
        """Insert many runs (and ``images``: run_id → its images) in one transaction.

        For imports and fixtures: a thousand rows cost about what one ``add_run``
        does. Every value is checked as ``add_run`` checks it; one bad row refuses
        the whole batch (nothing written). Returns the number of runs written.
        """
        return self._writer.add_runs(runs, images)

    # -- reads -------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run as a dict (JSON columns decoded, flags as bool) plus ``images`` (absolute paths)."""
        return self._rows.get_run(run_id)

    def inputs(self, run_id: str) -> list[dict[str, Any]]:
        """How each input image of a run went out (``via``: url / link / upload), by ``idx``."""
        return self._rows.inputs(run_id)

    def made_from(self) -> dict[str, list[str]]:
        """run_id → the runs whose images it took as inputs, in input order.

        An input is matched by its sha256 (however it was sent), or, for a URL given by
        hand, by the result link it is; an image belongs to the first run that made it
        (not to a later cache hit that shows the same file).
        """
        return self._rows.made_from()

    def frames(self, where: Where = None, *, limit: int | None = None, offset: int = 0,
               **filters: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(runs, images) of the selected runs: ``runs()`` rows and the image rows they
        show (their own, and those a cache hit among them was served from).

        Filters and ``where`` strings run as SQL on the log's indexes (see
        ``_log_query``); what SQL cannot say is evaluated with pandas on the rows SQL
        selected. ``limit``/``offset`` page through the selection, oldest first.
        """
        return self._frames.frames(where, limit=limit, offset=offset, **filters)

    def runs(self, where: Where = None, *, limit: int | None = None, offset: int = 0, **filters: Any) -> pd.DataFrame:
        """One row per run, oldest first, filtered by ``column=value(s)`` and ``where``.

        dtypes: ``*_at`` UTC datetimes; action/aspect_ratio/resolution/status/model/backend
        categories; counts and sizes Int64; flags boolean; cost_usd Float64; JSON columns
        as Python objects. Added: ``n_images``, ``paths`` (absolute), ``duration_s``
        (finished − submitted) and one column per sweep-cell key (e.g. ``style``) of the
        selected runs. ``limit``/``offset``: one page of the selection. Filters and
        simple ``where`` strings run as indexed SQL (see ``frames``).
        """
        return self._frames.runs(where, limit=limit, offset=offset, **filters)

    def count(self, where: Where = None, **filters: Any) -> int:
        """How many runs ``runs(where, **filters)`` would return, without reading them."""
        return self._frames.count(where, **filters)

    def distinct(self, column: str, where: Where = None, *, newest_first: bool = False, limit: int | None = None,
                 offset: int = 0, **filters: Any) -> list[Any]:
        """The values ``column`` takes in the selected runs, each once, in order
        (documented vocabularies in the document's order, numbers ascending, text
        alphabetically; a missing value last; ``newest_first``: by their latest run).
        A sweep-cell key works as a column. ``limit``/``offset``: one page of that list,
        read from the column's index where it has one (a million runs' prompts, a page at a time)."""
        return self._frames.distinct(column, where, newest_first=newest_first, limit=limit, offset=offset,
                                     **filters)

    def count_distinct(self, column: str, where: Where = None, *, at_most: int | None = None,
                       **filters: Any) -> int:
        """How many values ``distinct`` would return, without reading them; ``at_most``: stop
        counting past it (a larger answer means "more than ``at_most``")."""
        return self._frames.count_distinct(column, where, at_most=at_most, **filters)

    def cell_keys(self) -> list[str]:
        """The keys of sweep cells in the log (what ``runs()`` adds as columns), first seen first."""
        return self._frames.cell_keys()

    def images(self, where: Where = None, **filters: Any) -> pd.DataFrame:
        """One row per image, with its run's parameters alongside (width/height are the image's)."""
        return self._frames.images(where, **filters)

    def lineage(self, run: Any) -> pd.DataFrame:
        """The run and every run it was made from, back to the first: ``runs()`` rows,
        oldest first (the first row is where the chain started, the last is ``run``).

        ``run``: a run id or anything with ``.run_id`` (a ``Result``). Added columns:
        ``made_from`` (run ids whose images this run took as inputs) and ``depth``
        (steps back from ``run``: 0 is the run itself, 1 its sources, ...).
        """
        return self._frames.lineage(run)

    def search(self, text: str, *, limit: int | None = 20, where: Where = None, **filters: Any) -> pd.DataFrame:
        """Runs whose prompt, note or tags hold every word of ``text``, best match first.

        A full-text index (SQLite FTS5), not a scan: fast on a big log. A DataFrame like
        ``runs()`` plus ``score`` (higher is a better match); ``where`` and filters narrow
        it as in ``runs()``; ``limit=None``: every match.
        """
        return self._frames.search(text, limit=limit, where=where, **filters)

    # -- choosing ----------------------------------------------------------------------
    def rate(self, run: Any, stars: int | None) -> None:
        """Give a run 1-5 stars (0 or None clears); the last rating wins, ``rated_by`` says whose.

        ``run``: a run id, a ``Result`` or a row of ``runs()``."""
        value = check_stars(stars)
        self._writer.rate(run_id_of(run), value, _config.user())

    def tag(self, run: Any, *tags: str) -> list[str]:
        """Add tags to a run (each 1-40 letters of any script, digits, ``-_.:``; case kept); returns its tags.
        One bad tag refuses the call, adding none."""
        return self._writer.retag(run_id_of(run), check_tags(tags), [])

    def untag(self, run: Any, *tags: str) -> list[str]:
        """Remove tags from a run (those it does not have are ignored); returns its tags."""
        return self._writer.retag(run_id_of(run), [], check_tags(tags))

    def note(self, run: Any, text: str | None) -> None:
        """Replace a run's note ("" or None clears it)."""
        self._writer.set_note(run_id_of(run), check_note(text))

    # -- a team's log ----------------------------------------------------------------------
    def copy_to(self, dst: Log | str | os.PathLike[str], *, home: str | os.PathLike[str] | None = None,
                progress: Callable[[int, int], Any] | None = None) -> CopyReport:
        """Copy this log into another (``dst``: a ``Log``, a path or a URL; ``home``: its run
        folder when ``dst`` is a URL): runs keep their ids, with their images, inputs,
        choices and costs; image files are copied into ``dst``'s run folder (content-addressed:
        a file already there is not copied again).

        Idempotent: a second copy adds only runs that are new since the first, and brings
        over runs copied before whose source row has moved on (an ``unconfirmed`` run completed
        since: its status, task, cost, images; tags, stars and notes merged), never making the
        target say less was billed (``report.updated``); a third copy changes nothing. A run whose
        task ``dst`` already holds (the same idempotency key under another run id: the same
        cell run on two machines, billed once) is not copied, and is counted as such.
        ``progress(runs_done, runs_total)`` is called as batches land.
        """
        target = dst if isinstance(dst, Log) else Log(dst, home=home)
        try:
            return copy_log(self._engine, self._folder, target._engine, target._folder, progress)
        finally:
            if target is not dst:
                target.close()

    # -- money -------------------------------------------------------------------------
    def spend(self) -> pd.DataFrame:
        """What the server billed, per sweep and in all: the figures to reconcile with
        the account.

        One row per sweep (runs outside a sweep under ``"(single runs)"``) and a last
        row ``"all"``. ``billed_*``: runs the server said completed, at the cost it
        reported, whether or not their images were downloaded (``images_lost`` counts
        those whose links expired first). ``unconfirmed_*``: runs with no answer yet (in
        flight, or the answer was lost), at their price: they may have been billed;
        running them again settles them (same Idempotency-Key, billed once). Quota is
        exact (500,000 = $1); ``*_usd`` are the same figures in dollars.
        """
        return self._frames.spend()

    # -- views -------------------------------------------------------------------------
    def grid(self, rows: str, cols: str, where: Where = None, **filters: Any) -> Grid:
        """Images of the selected runs laid out by two parameters (``Grid``)."""
        from ._report import build_grid  # the views load when one is asked for

        return build_grid(self, rows, cols, where=where, **filters)

    def explore(self, **options: Any) -> LogExplorer:
        """A widget over this log: a grid of any two parameters, filters, a run's details (``LogExplorer``)."""
        from ._explore import LogExplorer  # ipywidgets loads when a widget is asked for

        return LogExplorer(self, **options)

    def compare(self, a: Any, b: Any) -> Comparison:
        """Two runs or two sweeps side by side, differing parameters highlighted."""
        from ._report import build_comparison

        return build_comparison(self, a, b)

    def export_html(self, path: str | Path, where: Where = None, title: str | None = None, **filters: Any) -> Path:
        """A self-contained HTML report (no server, thumbnails embedded, relative links)."""
        from ._report import export_report

        return export_report(self, path, where=where, title=title, **filters)

    # -- flat files --------------------------------------------------------------------
    def to_csv(self, path: str | Path, where: Where = None, **filters: Any) -> Path:
        """runs() as CSV (JSON columns as JSON text), written atomically."""
        from ._log_export import to_csv

        return to_csv(self._frames, path, where, filters)

    def to_parquet(self, path: str | Path, where: Where = None, **filters: Any) -> Path:
        """runs() as Parquet (JSON columns as JSON text, dtypes kept), written atomically.

        Needs pyarrow: ``pip install 'wan_nb[parquet]'``."""
        from ._log_export import to_parquet

        return to_parquet(self._frames, path, where, filters)


def writer(log: Log) -> LogWriter:
    """The package's write access to ``log`` (claims, state moves, the writer thread)."""
    return log._writer


def records(log: Log) -> LogRows:
    """The package's row reads of ``log`` (the run pipeline's look-ups, without pandas)."""
    return log._rows
