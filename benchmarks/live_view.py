"""The live grid and the saved notebook: what a sweep sends to the browser and keeps.

Live grid: the sweep is shown as a notebook shows it (``_repr_mimebundle_``) in this
process, with every widget message recorded where it leaves the kernel (a recording
``comm``). Bytes sent count the JSON of each message and its binary buffers; the
thumbnails' own bytes are the JPEG bytes shown. Latency is from the moment a cell's
run ends (images on disk) to the message that carries its thumbnail.

Saved notebook: a 16-cell 2K sweep shown live and saved by nbclient (widget state
stored, as JupyterLab's "save widget state" does): bytes of that cell's output and
the widget state, per image.
"""

from __future__ import annotations

import base64
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import comm
import nbformat
from comm.base_comm import BaseComm
from nbclient import NotebookClient

import wan_nb as wan
from wan_nb._html_parts import thumb_data_uri

from ._sims import simulator


class RecordingComm(BaseComm):
    """A comm that keeps (time, bytes, text) of every message instead of sending it."""

    sent: list[tuple[float, int, str]] = []
    lock = threading.Lock()

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        text = json.dumps(data, default=str)
        size = len(text) + sum(len(memoryview(b).cast("B")) for b in buffers or [])
        blob = text + "".join(base64.b64encode(bytes(b)).decode() for b in buffers or [])
        with self.lock:
            RecordingComm.sent.append((time.time(), size, blob))


def _thumb_bytes(images: list[Any]) -> int:
    total = 0
    for im in images:
        uri = thumb_data_uri(im.thumb_path, im.path)
        total += len(base64.b64decode(uri.split(",", 1)[1])) if uri else 0
    return total


def live_grid(url: str, n: int) -> dict[str, float]:
    original = comm.create_comm
    comm.create_comm = lambda *a, **k: RecordingComm(*a, **k)
    RecordingComm.sent = []
    try:
        with tempfile.TemporaryDirectory() as home:
            wan.connect(api_key="bench", base_url=url, home=home, quiet=True)
            sw = wan.sweep("bench live grid", seed=list(range(1, n + 1)), resolution="2K", quiet=True, start=False)
            sw._repr_mimebundle_()  # what the notebook does when the cell shows `sw`
            sw.start().wait()
            time.sleep(1.0)  # the last redraw
            sent = list(RecordingComm.sent)
            cells = list(sw.cells)
            thumbs = _thumb_bytes([im for c in cells if c.result for im in c.result.images])
            lat = []
            for c in cells:
                sha = c.result.images[0].sha256 if c.result else None
                first = next((t for t, _, blob in sent if sha and sha in blob), None)
                if first is not None and c.ended is not None:
                    lat.append(max(0.0, first - c.ended))
            wan.session().close()
    finally:
        comm.create_comm = original
    if len(lat) != n:
        raise RuntimeError(f"only {len(lat)} of {n} cells were ever sent to the view")
    lat.sort()
    return {"bytes": sum(s for _, s, _ in sent), "frames": len(sent), "thumb_bytes": thumbs,
            "median": statistics.median(lat), "p90": lat[min(len(lat) - 1, int(0.9 * len(lat)))]}


def saved_notebook(url: str, n: int) -> float:
    """Bytes per image of a saved notebook that showed an ``n``-cell 2K sweep live."""
    with tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell(
                f"import wan_nb as wan\nwan.connect(api_key='bench', base_url={url!r}, home='runs', quiet=True)"),
            nbformat.v4.new_code_cell(
                f"sw = wan.sweep('bench saved notebook', seed=list(range(1, {n + 1})), resolution='2K', quiet=True)\nsw"),
            nbformat.v4.new_code_cell("sw.wait()\nimport time; time.sleep(1.0)\nsw.counts()['completed']"),
        ]
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        done = nb.cells[2].outputs[0]["data"]["text/plain"]
        if done.strip() != str(n):
            raise RuntimeError(f"the notebook's sweep completed {done} of {n}")
        path = Path(tmp, "saved.ipynb")
        nbformat.write(nb, path)
        full = path.stat().st_size
        nb.cells[1].outputs = []
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)
        bare = path.stat().st_size
    return (full - bare) / n


def measure(short: bool) -> list[tuple[str, float, str, bool]]:
    n = 4 if short else 16
    out = []
    with simulator(0.6, 8) as url:
        per_image = saved_notebook(url, n)
        out.append((f"notebook bytes per displayed image ({n}-image 2K sweep shown live, saved)", per_image,
                    "<= 10240", per_image <= 10240))
        live = live_grid(url, n)
    out.append(("live grid: task end -> cell sent to the browser, median (s)", live["median"], "(p90 below)", True))
    out.append(("live grid: task end -> cell sent to the browser, p90 (s)", live["p90"], "<= 0.15", live["p90"] <= 0.15))
    ratio = live["bytes"] / live["thumb_bytes"]
    out.append((f"live grid: bytes sent for a {n}-cell sweep / its thumbnails' bytes "
                f"[{live['bytes'] / 1e6:.2f} MB in {live['frames']} messages]", ratio, "<= 2.0", ratio <= 2.0))
    return out
