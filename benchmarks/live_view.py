"""The live grid and the saved notebook, measured the way a notebook front-end gets them.

A notebook is executed by nbclient (a real kernel; nbclient receives the same IOPub
stream a browser's JupyterLab gets): it connects to a simulator, shows an ``n``-cell
2K sweep while it runs, waits, and shows the finished sweep once more. Every widget
message is timed and sized where the front-end receives it (whole message: envelope,
content and binary buffers). From that run:

* bytes sent for the live grid, against the thumbnails' own bytes (the stored
  thumbnail files of the images shown);
* task end → cell sent: from the moment a cell's run ended in the kernel (images on
  disk) to the first message that carries its image, as received;
* notebook bytes per image, saved with its widget state (as nbclient and JupyterLab's
  "save widget state" store it): the cell's outputs and the state of the widgets they
  show, for a sweep shown live and for another shown once it was done.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from typing import Any

import nbformat
from nbclient import NotebookClient

from ._sims import simulator

REPORT = "WAN_BENCH_REPORT "


class TimedClient(NotebookClient):
    """nbclient that keeps (receive time, bytes, text) of every widget message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.widget_messages: list[tuple[float, int, str]] = []

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        if msg["msg_type"] in ("comm_open", "comm_msg"):
            buffers = msg.get("buffers") or []
            text = json.dumps({k: v for k, v in msg.items() if k != "buffers"}, default=str)
            size = len(text.encode()) + sum(len(memoryview(b).cast("B")) for b in buffers)
            self.widget_messages.append((time.time(), size, text))
        return super().process_message(msg, cell, cell_index)


def _saved_bytes(nb: Any, index: int) -> int:
    """Bytes cell ``index`` adds to the saved notebook: its outputs (as nbformat writes them)
    and the saved state of every widget they show (followed through IPY_MODEL_ references)."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    outputs = json.dumps(nb.cells[index].outputs, indent=1)
    todo = re.findall(r'"model_id": "([0-9a-f]+)"', outputs)
    seen: set[str] = set()
    while todo:
        mid = todo.pop()
        if mid in seen or mid not in state:
            continue
        seen.add(mid)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[mid]))
    return len(outputs.encode()) + sum(len(json.dumps(state[m], indent=1).encode()) for m in seen)


def run_notebook(url: str, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in (
            (f"import json, os, time\nimport wan_nb as wan\n"
             f"wan.connect(api_key='bench', base_url={url!r}, home='runs', quiet=True)"),
            f"sw = wan.sweep('bench notebook', seed=list(range(1, {n + 1})), resolution='2K', quiet=True)\nsw",
            ("sw.wait()\ntime.sleep(1.0)  # the last update\n"
             "ended = {c.result.images[0].sha256: c.ended for c in sw.cells if c.result}\n"
             "thumbs = sum(os.path.getsize(i.thumb_path) for c in sw.cells if c.result for i in c.result.images)\n"
             f"print({REPORT!r} + json.dumps({{'ended': ended, 'thumbs': thumbs}}))"),
            (f"done = wan.sweep('bench notebook, shown when done', seed=list(range(1, {n + 1})), resolution='2K', "
             "quiet=True)\ndone.wait()\ndone"),
        )]
        client = TimedClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp}})
        client.execute()
        report = json.loads(nb.cells[2].outputs[-1]["text"].split(REPORT, 1)[1])
        if len(report["ended"]) != n:
            raise RuntimeError(f"the notebook's sweep completed {len(report['ended'])} of {n}")
        live_saved = _saved_bytes(nb, 1) / n
        done_saved = _saved_bytes(nb, 3) / n
    sent = client.widget_messages
    lat = []
    for sha, ended in report["ended"].items():
        first = next((t for t, _, text in sent if sha in text), None)
        if first is not None:
            lat.append(max(0.0, first - ended))
    if len(lat) != n:
        raise RuntimeError(f"only {len(lat)} of {n} cells ever reached the front-end")
    lat.sort()
    return {"bytes": sum(s for _, s, _ in sent), "messages": len(sent), "thumb_bytes": report["thumbs"],
            "median": statistics.median(lat), "p90": lat[min(len(lat) - 1, int(0.9 * len(lat)))],
            "live_saved": live_saved, "done_saved": done_saved}


def measure(short: bool) -> list[tuple[str, float, str, bool]]:
    n = 4 if short else 16
    with simulator(0.6, 8) as url:
        r = run_notebook(url, n)
    ratio = r["bytes"] / r["thumb_bytes"]
    return [
        (f"notebook bytes per displayed image ({n}-image 2K sweep shown live, saved)", r["live_saved"],
         "<= 10240", r["live_saved"] <= 10240),
        (f"notebook bytes per displayed image ({n}-image 2K sweep shown when done, saved)", r["done_saved"],
         "<= 10240", r["done_saved"] <= 10240),
        ("live grid: task end -> cell received by the front-end, median (s)", r["median"], "(p90 below)", True),
        ("live grid: task end -> cell received by the front-end, p90 (s)", r["p90"], "<= 0.15", r["p90"] <= 0.15),
        ((f"live grid: bytes sent for a {n}-cell sweep / its thumbnails' bytes "
          f"[{r['bytes'] / 1e6:.2f} MB in {r['messages']} messages]"), ratio, "<= 2.0", ratio <= 2.0),
    ]
