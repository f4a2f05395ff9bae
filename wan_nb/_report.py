"""Views built from the log: grids, comparisons and the exported HTML report.

These turn DataFrame rows into the renderer's cells (``_grid``). What a legend
holds, what a caption shows and what a comparison highlights are decided here, by
one rule: say each thing once, where it differs. Parameters equal in every shown run
go to the legend; parameters that tell apart images in the same cell go to their
captions; everything else is in the row/column labels.
"""

from __future__ import annotations

import datetime as _dt
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import _log_schema as schema
from . import _spec
from . import _states as S
from ._atomic import atomic_write_text
from ._grid import Cell, Grid, cell_key, distinct, hashable, legend_html, render_grid_html
from ._html_parts import document, esc, format_value, label_html, short
from ._money import usd
from ._tiles import CellItem, render_item_html, stars_html

MAX_COMPARE_THUMBS = 24


# ----------------------------------------------------------------- helpers



def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a frame as dicts keyed by column name."""
    return [{str(k): v for k, v in row.items()} for row in df.to_dict("records")]

def _plain(value: Any) -> Any:
    """A DataFrame cell as a plain Python value (pd.NA/NaN/NaT → None)."""
    if isinstance(value, (list, tuple, dict)):
        return value
    if schema.is_missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def cell_names(columns: Iterable[str]) -> list[str]:
    """The names among ``columns`` that came from sweep cells (not documented columns, not derived ones)."""
    return [c for c in columns if c not in schema.RUNS and c not in schema.DERIVED_COLUMNS]


def parameter_names(columns: Iterable[str]) -> list[str]:
    """Sweep axes first (what the user varied), then the request parameters, of ``columns``."""
    present = list(columns)
    return list(dict.fromkeys(cell_names(present) + [c for c in schema.PARAMETERS if c in present]))


def cell_columns(df: pd.DataFrame) -> list[str]:
    """Columns that came from sweep cells (not documented columns, not derived ones)."""
    return cell_names(df.columns)


def parameter_columns(df: pd.DataFrame) -> list[str]:
    """Sweep axes first (what the user varied), then the request parameters."""
    return parameter_names(df.columns)


def fixed_parameters(df: pd.DataFrame, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """Parameters with one and the same (non-empty) value in every row."""
    out: dict[str, Any] = {}
    excluded = set(exclude)
    for name in parameter_columns(df):
        if name in excluded or df.empty:
            continue
        values = distinct(_plain(v) for v in df[name])
        if len(values) == 1 and values[0] is not None and values[0] != []:
            out[name] = values[0]
    return out


def _sort_axis(name: str, values: list[Any], series: pd.Series) -> list[Any]:
    """Numbers ascending, documented vocabularies in the document's order, else first seen."""
    present = [v for v in values if v is not None]
    missing = [None] if len(present) < len(values) else []
    if present and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in present):
        return sorted(present) + missing
    order: tuple[Any, ...] = schema.CATEGORY_ORDER.get(name, ())
    if not order and isinstance(series.dtype, pd.CategoricalDtype):
        order = tuple(series.cat.categories)
    if order:
        rank = {v: i for i, v in enumerate(order)}
        return sorted(present, key=lambda v: rank.get(v, len(rank))) + missing
    return present + missing


def _check_axis(df: pd.DataFrame, name: str, which: str) -> None:
    if not isinstance(name, str) or name not in df.columns:
        raise ValueError(
            f"{which}={name!r} is not a column of the log; columns are: {', '.join(map(str, df.columns))}"
        )


def _error_text(run: dict[str, Any]) -> str | None:
    code, message = run.get("error_code"), run.get("error_message")
    if code and message:
        return f"{code}: {message}"
    return code or message or None


def _run_items(run: dict[str, Any], images: list[dict[str, Any]], caption: str) -> list[CellItem]:
    """A run's images as grid items, or one placeholder/error item if it has none."""
    status = run.get("status") or S.PLANNED
    error = _error_text(run)
    if images:
        many = len(images) > 1
        return [
            CellItem(
                thumb=Path(im["thumb_path"]) if im.get("thumb_path") else None,
                full=Path(im["path"]) if im.get("path") else None,
                status=S.COMPLETED,
                caption=" · ".join(x for x in (caption, f"#{int(im['idx']) + 1}" if many else "") if x),
                width=_plain(im.get("width")),
                height=_plain(im.get("height")),
                run_id=run.get("run_id"),
                stars=_plain(run.get("stars")),
            )
            for im in images
        ]
    if status == S.COMPLETED and not error:
        error = None  # renderer shows "image file missing"
    return [CellItem(thumb=None, full=None, status=status, error=error, caption=caption, run_id=run.get("run_id"),
                     stars=_plain(run.get("stars")))]


def _images_by_run(images: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records(images[["run_id", "idx", "path", "thumb_path", "width", "height"]]):
        out.setdefault(rec["run_id"], []).append(rec)
    return out


def _with_cache_source(run: dict[str, Any], by_run: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A cache hit without its own image rows shows the images of the run it reused."""
    own = by_run.get(run["run_id"], [])
    if not own and run.get("cached_from"):
        return by_run.get(run["cached_from"], [])
    return own


def _status_line(df: pd.DataFrame) -> str:
    counts = df["status"].value_counts(dropna=True)
    parts = [f"{int(n)} {s}" for s, n in counts.items() if n]
    billed = df[df["status"].isin(S.BILLED)]
    cost = billed["cost_quota"].fillna(billed["est_quota"]).sum(skipna=True) if len(billed) else 0
    money = f" · ${_spec.quota_to_usd(int(cost)):.4f} billed" if cost else ""
    maybe = df.loc[df["status"].isin(S.MAYBE_BILLED), "est_quota"].sum(skipna=True) if len(df) else 0
    if maybe:
        money += f" · up to ${_spec.quota_to_usd(int(maybe)):.4f} unconfirmed"
    return f"{len(df)} run{'s' if len(df) != 1 else ''}: " + ", ".join(parts) + money


# ----------------------------------------------------------------- grid


def grid_from_frame(
    runs: pd.DataFrame,
    images: pd.DataFrame,
    rows: str,
    cols: str,
    *,
    title: str | None = None,
    row_values: list[Any] | None = None,
    col_values: list[Any] | None = None,
) -> Grid:
    """Lay out ``runs`` by two columns; ``images`` holds their image rows (absolute paths).

    ``row_values`` / ``col_values``: the axes in a given order (a pager's page); by default
    the values found, numbers ascending, vocabularies in the document's order."""
    _check_axis(runs, rows, "rows")
    _check_axis(runs, cols, "cols")
    by_run = _images_by_run(images)
    if row_values is None:
        row_values = _sort_axis(rows, distinct(_plain(v) for v in runs[rows]), runs[rows])
    if col_values is None:
        col_values = _sort_axis(cols, distinct(_plain(v) for v in runs[cols]), runs[cols])
    legend = fixed_parameters(runs, exclude=(rows, cols))

    rows_of_runs = records(runs)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for rec in rows_of_runs:
        groups.setdefault(cell_key(_plain(rec[rows]), _plain(rec[cols])), []).append(rec)

    params = [p for p in parameter_columns(runs) if p not in (rows, cols) and p not in legend]
    cells: dict[tuple[Any, ...], Cell] = {}
    for key, recs in groups.items():
        # captions name only what differs between the runs sharing this cell
        varying = [p for p in params if len(distinct(_plain(r.get(p)) for r in recs)) > 1]
        items: list[CellItem] = []
        for rec in recs:
            caption = " · ".join(f"{p}={short(format_value(_plain(rec.get(p))), 40)}" for p in varying)
            items.extend(_run_items(rec, _with_cache_source(rec, by_run), caption))
        cells[key] = Cell(items)
    return Grid(
        row_name=rows,
        col_name=cols,
        row_values=row_values,
        col_values=col_values,
        cells=cells,
        legend=legend,
        title=title if title is not None else f"{rows} × {cols}",
        progress_line=_status_line(runs) if len(runs) else "no runs match",
    )


def build_grid(log: Any, rows: str, cols: str, where: Any = None, **filters: Any) -> Grid:
    selected, images = log.frames(where, **filters)  # indexed SQL: only the selected runs are read
    return grid_from_frame(selected, images, rows, cols)


# ----------------------------------------------------------------- compare


@dataclass
class ParamRow:
    name: str
    a: Any
    b: Any
    differs: bool


@dataclass
class Comparison:
    """Two runs or two sweeps side by side; ``differing`` names the parameters that differ."""

    kind: str  # "runs" | "sweeps"
    a_label: str
    b_label: str
    params: list[ParamRow]
    outcome: list[ParamRow]
    a_items: list[CellItem] = field(default_factory=list)
    b_items: list[CellItem] = field(default_factory=list)

    @property
    def differing(self) -> list[str]:
        return [p.name for p in self.params if p.differs]

    def __repr__(self) -> str:
        differ = ", ".join(self.differing) or "nothing"
        return f"Comparison({self.kind}: {self.a_label} vs {self.b_label}; differ: {differ})"

    def to_html_fragment(self, link_base: str | Path | None = None) -> str:
        td = "border:1px solid #ddd;padding:4px 8px;vertical-align:top;max-width:420px;overflow-wrap:anywhere"
        out = [
            '<div class="wan-compare" style="font-family:system-ui,sans-serif;font-size:12px;color:#222">',
            f'<div style="font-weight:600;font-size:14px;margin-bottom:4px">Compare {esc(self.kind)}: '
            f"{esc(self.a_label)} vs {esc(self.b_label)}</div>",
            f'<div style="color:#555;margin-bottom:6px">{len(self.differing)} parameter'
            f"{' differs' if len(self.differing) == 1 else 's differ'}"
            + (f": {esc(', '.join(self.differing))}" if self.differing else "")
            + "</div>",
            '<table style="border-collapse:collapse">',
            f'<thead><tr><th style="{td}"></th><th style="{td}">parameter</th>'
            f'<th style="{td}">A · {esc(self.a_label)}</th><th style="{td}">B · {esc(self.b_label)}</th>'
            "</tr></thead><tbody>",
        ]
        for p in self.params:
            style = f"{td};background:#fff1b8;font-weight:600" if p.differs else f"{td};color:#555"
            mark = "≠" if p.differs else ""
            out.append(
                f'<tr class="{"differs" if p.differs else "same"}"><td style="{style}">{mark}</td>'
                f'<td style="{style}">{esc(p.name)}</td>'
                f'<td style="{style}">{label_html(p.a, 300)}</td><td style="{style}">{label_html(p.b, 300)}</td></tr>'
            )
        if self.outcome:
            out.append(f'<tr><td colspan="4" style="{td};background:#f4f4f4;color:#777">outcome</td></tr>')
            for p in self.outcome:
                out.append(
                    f'<tr><td style="{td}"></td><td style="{td}">{esc(p.name)}</td>'
                    f'<td style="{td}">{label_html(p.a, 300)}</td><td style="{td}">{label_html(p.b, 300)}</td></tr>'
                )
        out.append("</tbody></table>")
        out.append('<table style="border-collapse:collapse;margin-top:8px"><tr>')
        for label, items in (("A", self.a_items), ("B", self.b_items)):
            body = (
                "".join(render_item_html(it, link_base=link_base) for it in items)
                or '<span style="color:#999">no images</span>'
            )
            out.append(f'<td style="{td};max-width:none"><div style="color:#777">{label}</div>{body}</td>')
        out.append("</tr></table></div>")
        return "".join(out)

    def _repr_html_(self) -> str:
        import os

        return self.to_html_fragment(link_base=os.getcwd())


def _resolve(log: Any, x: Any) -> tuple[str, str]:
    """('run', id) or ('sweep', id) for a run id, sweep id, or an object carrying one."""
    if not isinstance(x, str):
        run_id, sweep_id = getattr(x, "run_id", None), getattr(x, "sweep_id", None)
        if isinstance(run_id, str) and run_id:
            return "run", run_id
        if isinstance(sweep_id, str) and sweep_id:
            return "sweep", sweep_id
        raise TypeError(f"compare: expected a run id, a sweep id or an object with .run_id/.sweep_id, got {x!r}")
    if log.get_run(x) is not None:
        return "run", x
    if log.count(sweep_id=x):
        return "sweep", x
    raise KeyError(f"compare: {x!r} is neither a run_id nor a sweep_id in {log.location}")


def _summarise(values: list[Any]) -> Any:
    """One value as itself; several as 'k values: a, b, c'."""
    present = [v for v in values if v is not None]
    if len(values) == 1:
        return values[0]
    shown = ", ".join(short(format_value(v), 40) for v in present[:8])
    more = f", … (+{len(present) - 8})" if len(present) > 8 else ""
    return f"{len(values)} values: {shown}{more}"


def param_rows(
    names: Iterable[str], values_a: Mapping[str, list[Any]], values_b: Mapping[str, list[Any]]
) -> list[ParamRow]:
    """What differs, decided once: per parameter, each side's distinct values (in order;
    missing: ``[None]``) side by side, marked when they differ (lists and dicts compared
    by content). A parameter neither side has is left out. ``Log.compare`` and
    ``ImageCompare`` both ask this."""
    rows: list[ParamRow] = []
    for name in names:
        va, vb = values_a.get(name, [None]), values_b.get(name, [None])
        if va == [None] and vb == [None]:
            continue
        differ = [hashable(v) for v in va] != [hashable(v) for v in vb]
        rows.append(ParamRow(name, _summarise(va), _summarise(vb), differ))
    return rows


def differing_params(fields_a: Mapping[str, Any], fields_b: Mapping[str, Any]) -> list[ParamRow]:
    """Two single runs compared as ``Log.compare`` compares two runs. Each side is a
    mapping of log columns (a ``runs()`` row as a dict, ``Log.get_run``'s dict with its
    ``cell`` keys spread out, or ``Request.to_row()``): sweep-cell keys first, then the
    request parameters; values as the log reads them (NaN / NA: none)."""
    names = parameter_names([*fields_a, *(k for k in fields_b if k not in fields_a)])
    return param_rows(
        names,
        {n: [_plain(fields_a.get(n))] for n in names},
        {n: [_plain(fields_b.get(n))] for n in names},
    )


def _outcome(kind: str, part: pd.DataFrame) -> dict[str, Any]:
    """What came of a run (its status, images, cost, time) or of a sweep (runs by status, totals)."""
    if kind == "run":
        rec = part.iloc[0]
        return {"status": _plain(rec["status"]), "error": _error_text({str(k): v for k, v in rec.items()}),
                "images": _plain(rec["n_images"]), "cost_usd": _plain(rec["cost_usd"]),
                "duration_s": _plain(rec["duration_s"]), "task_id": _plain(rec["task_id"]),
                "created_at": _plain(rec["created_at"]), "stars": _plain(rec.get("stars")),
                "tags": _plain(rec.get("tags")) or None, "note": _plain(rec.get("note"))}
    counts = part["status"].value_counts()
    return {"runs": len(part), "status": ", ".join(f"{int(n)} {s}" for s, n in counts.items() if n),
            "images": int(part["n_images"].sum()), "cost_usd": _plain(part["cost_usd"].sum(skipna=True))}


def build_comparison(log: Any, a: Any, b: Any) -> Comparison:
    (kind_a, id_a), (kind_b, id_b) = _resolve(log, a), _resolve(log, b)
    if kind_a != kind_b:
        raise ValueError(
            f"compare: cannot compare a {kind_a} ({id_a!r}) with a {kind_b} ({id_b!r}); pass two runs or two sweeps"
        )
    col = "run_id" if kind_a == "run" else "sweep_id"
    runs, images = log.frames(**{col: [id_a, id_b]})
    by_run = _images_by_run(images)
    part_a, part_b = runs[runs[col] == id_a], runs[runs[col] == id_b]
    both = pd.concat([part_a, part_b])
    names = parameter_columns(both.dropna(axis=1, how="all")) or list(schema.PARAMETERS)

    def values(part: pd.DataFrame) -> dict[str, list[Any]]:
        return {name: _sort_axis(name, distinct(_plain(v) for v in part[name]), part[name])
                for name in names if name in part}

    params = param_rows(names, values(part_a), values(part_b))

    oa, ob = _outcome(kind_a, part_a), _outcome(kind_a, part_b)
    outcome_rows = [ParamRow(k, oa.get(k), ob.get(k), False) for k in dict.fromkeys([*oa, *ob])]

    def items(part: pd.DataFrame) -> list[CellItem]:
        axes = cell_columns(part.dropna(axis=1, how="all"))
        out: list[CellItem] = []
        for rec in records(part):
            caption = " · ".join(f"{k}={short(format_value(_plain(rec.get(k))), 30)}" for k in axes)
            out.extend(_run_items(rec, _with_cache_source(rec, by_run), caption))
            if len(out) >= MAX_COMPARE_THUMBS:
                return out[:MAX_COMPARE_THUMBS]
        return out

    return Comparison(
        kind=kind_a + "s",
        a_label=id_a,
        b_label=id_b,
        params=params,
        outcome=outcome_rows,
        a_items=items(part_a),
        b_items=items(part_b),
    )


# ----------------------------------------------------------------- report


def _sweep_axes(part: pd.DataFrame) -> list[str]:
    axes: list[str] = []
    for cell in part["cell"]:
        if isinstance(cell, dict):
            axes.extend(k for k in cell if k not in axes and k in part.columns)
    # an axis with a single value in this slice lays nothing out
    return [a for a in axes if len(distinct(_plain(v) for v in part[a])) > 1]


def _made_from_html(parents: list[str], shown: set[str]) -> str:
    """The "made from" line: a link to each source run's row (plain text if it is not in the report)."""
    if not parents:
        return ""
    links = [f'<a href="#run-{esc(p)}">{esc(p)}</a>' if p in shown else esc(p) for p in parents]
    return f'<div class="wan-made-from" style="color:#555;margin-top:3px">made from {", ".join(links)}</div>'


def _runs_table(
    df: pd.DataFrame,
    by_run: dict[str, list[dict[str, Any]]],
    link_base: Path,
    made_from: dict[str, list[str]] | None = None,
) -> str:
    td = "border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left"
    head = ["created (UTC)", "status", "prompt", "parameters", "cost", "choice", "images"]
    out = ['<table style="border-collapse:collapse">', "<thead><tr>"]
    out += [f'<th style="{td};background:#fafafa">{esc(h)}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    shown = set(df["run_id"])
    for rec in records(df):
        created = _plain(rec.get("created_at"))
        created_s = (
            created.strftime("%Y-%m-%d %H:%M:%S") if isinstance(created, _dt.datetime) else format_value(created)
        )
        params = " · ".join(
            f"{k} {format_value(_plain(rec.get(k)))}"
            for k in ("action", "aspect_ratio", "resolution", "seed", "n")
            if _plain(rec.get(k)) is not None
        )
        extra = [f"{k}={format_value(_plain(rec.get(k)))}" for k in cell_columns(df) if _plain(rec.get(k)) is not None]
        if extra:
            params += " · " + " · ".join(extra)
        status = format_value(_plain(rec.get("status")))
        error = _error_text(rec)
        status_html = esc(status) + (
            f'<div style="color:#a00" title="{esc(error)}">{esc(short(error, 160))}</div>' if error else ""
        )
        cost = _plain(rec.get("cost_usd"))
        imgs = _with_cache_source(rec, by_run)
        thumbs = (
            "".join(render_item_html(it, link_base=link_base, box=96) for it in _run_items(rec, imgs, ""))
            if imgs
            else ""
        )
        stars, tags, note = _plain(rec.get("stars")), _plain(rec.get("tags")) or [], _plain(rec.get("note"))
        choice = (stars_html(stars, 'style="color:#e0a100"')
                  + "".join(f'<span style="background:#eef;border-radius:3px;padding:0 3px;margin-right:2px">'
                            f"{esc(t)}</span>" for t in tags)
                  + (f'<div style="color:#555;font-style:italic">{esc(short(note, 200))}</div>' if note else ""))
        out.append(
            f'<tr id="run-{esc(rec["run_id"])}">'
            f'<td style="{td};white-space:nowrap" title="{esc(rec["run_id"])}">{esc(created_s)}</td>'
            f'<td style="{td}">{status_html}</td>'
            f'<td style="{td};max-width:360px;overflow-wrap:anywhere">{label_html(_plain(rec.get("prompt")), 400)}'
            f"{_made_from_html((made_from or {}).get(rec['run_id'], []), shown)}</td>"
            f'<td style="{td};max-width:260px">{esc(params)}</td>'
            f'<td style="{td};white-space:nowrap">{esc(f"{usd(cost)}" if cost is not None else "—")}</td>'
            f'<td style="{td};max-width:200px">{choice}</td>'
            f'<td style="{td}">{thumbs}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def report_html(log: Any, link_base: Path, where: Any = None, title: str | None = None, **filters: Any) -> str:
    """The report page: summary, one grid per sweep, then every run with its images."""
    df, images = log.frames(where, **filters)
    by_run = _images_by_run(images)
    title = title or f"wan_nb report · {log.root.name}"
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    selection = ", ".join(f"{k}={v!r}" for k, v in filters.items())
    if isinstance(where, str):
        selection = ", ".join(x for x in (selection, f"where {where}") if x)
    parts = [
        f"<h1>{esc(title)}</h1>",
        f'<p style="color:#555">{esc(_status_line(df) if len(df) else "no runs match")} · '
        f"{int(df['n_images'].sum()) if len(df) else 0} images · generated {esc(now)}"
        + (f" · selection: {esc(selection)}" if selection else "")
        + "</p>",
    ]
    legend = fixed_parameters(df)
    if legend:

        parts.append(legend_html(legend))
    for sweep_id in distinct(v for v in df["sweep_id"].tolist() if v is not None):
        part = df[df["sweep_id"] == sweep_id]
        axes = _sweep_axes(part)
        if not axes:
            continue
        rows, cols = (axes[0], axes[1]) if len(axes) > 1 else ("sweep_id", axes[0])
        grid = grid_from_frame(part.reset_index(drop=True), images, rows, cols, title=f"Sweep {sweep_id}")
        parts.append(f"<h2>Sweep {esc(sweep_id)}</h2>")
        parts.append(
            render_grid_html(
                row_name=grid.row_name,
                col_name=grid.col_name,
                row_values=grid.row_values,
                col_values=grid.col_values,
                cells=grid.cells,
                legend=grid.legend,
                progress_line=grid.progress_line,
                link_base=link_base,
            )
        )
    parts.append("<h2>Runs</h2>")
    parts.append(_runs_table(df, by_run, link_base, log.made_from()) if len(df) else "<p>No runs.</p>")
    return document(title, "\n".join(parts))


def export_report(log: Any, path: str | Path, where: Any = None, title: str | None = None, **filters: Any) -> Path:
    path = Path(path)
    html_text = report_html(log, path.absolute().parent, where=where, title=title, **filters)
    return atomic_write_text(path, html_text)
