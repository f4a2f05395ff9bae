"""The examples of the user's document, run as written against the simulator.

``tests/data/doc_curl_example.sh`` is the document's curl example, copied verbatim
(a test below checks it still matches the document when ../shared is present). Only
the base URL is changed. The composite-field examples (color_palette, bbox_list) are
sent as the bodies the document shows.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import loopback
import numpy as np
import pytest
from PIL import Image

from wan_nb.sim import Simulator

DATA = Path(__file__).parent / "data"
DOC = Path(__file__).resolve().parents[2] / "shared" / "reference" / "wan-image-series.md"
HOSTED = "https://www.qingbo.dev/v1"


@pytest.fixture(scope="module")
def sim():
    with Simulator(latency=0.2) as s:
        yield s


def _curl_text(base_url: str) -> str:
    return (DATA / "doc_curl_example.sh").read_text().replace(HOSTED, base_url)


def _parse_curl(text: str) -> tuple[str, str, dict, str]:
    argv = shlex.split(text.replace("\\\n", " "))
    method, url, headers, data = "GET", "", {}, ""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-X", "--request"):
            method, i = argv[i + 1], i + 2
        elif arg in ("-H", "--header"):
            name, _, value = argv[i + 1].partition(":")
            headers[name.strip()] = os.path.expandvars(value.strip())
            i += 2
        elif arg in ("-d", "--data"):
            data, i = argv[i + 1], i + 2
        else:
            url, i = arg, i + 1
    return method, url, headers, data


def _wait(sim, task_id: str) -> dict:
    deadline = time.time() + 30
    while time.time() < deadline:
        body = loopback.get(f"{sim.base_url}/tasks/{task_id}", headers={"Authorization": "Bearer k"}).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError("task did not finish")


def _image(body: dict, i: int = 0) -> Image.Image:
    data = loopback.get(body["result"]["images"][i]["url"][0]).content
    return Image.open(io.BytesIO(data))


def test_vendored_example_matches_the_document():
    if not DOC.is_file():
        pytest.skip("the shared reference document is not beside this checkout")
    assert (DATA / "doc_curl_example.sh").read_text().strip() in DOC.read_text()


def test_curl_example_as_written(sim, monkeypatch):
    monkeypatch.setenv("WAVE_API_KEY", "any-key-works-on-the-simulator")
    method, url, headers, data = _parse_curl(_curl_text(sim.base_url))
    answer = loopback.request(method, url, headers=headers, content=data.encode())
    assert answer.status_code == 200, answer.text
    submitted = answer.json()
    assert submitted["status"] == "queued" and submitted["model"] == "wan2.7-image"
    assert submitted["action"] == "generate" and submitted["pre_consumed_cost"] == 11475
    done = _wait(sim, submitted["task_id"])
    assert done["status"] == "completed" and done["cost"] == 11475
    img = _image(done)
    assert img.format == "JPEG" and img.size == (5456, 3072)  # 4K at 16:9


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_example_through_real_curl(sim):
    env = {**os.environ, "WAVE_API_KEY": "any-key"}
    out = subprocess.run(["bash", "-c", _curl_text(sim.base_url)], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["task_id"].startswith("task-") and _wait(sim, body["task_id"])["status"] == "completed"


def _submit(sim, body: dict) -> dict:
    r = loopback.post(f"{sim.base_url}/tasks", json=body, headers={"Authorization": "Bearer k"})
    assert r.status_code == 200, r.text
    return _wait(sim, r.json()["task_id"])


def test_color_palette_example_colours_the_image(sim):
    """The document's palette, over a few fixed seeds (one image's shapes overlap its
    areas, so the ratios show in the average): mostly palette colours, in their order."""
    palette = [{"hex": "#0A2540", "ratio": 50}, {"hex": "#F5F5F0", "ratio": 35}, {"hex": "#E04B3A", "ratio": 15}]
    targets = np.array([[int(p["hex"][i:i + 2], 16) for i in (1, 3, 5)] for p in palette])
    shares = []
    for seed in range(4):
        done = _submit(sim, {"model": "wan2.7-image", "prompt": "poster", "resolution": "1K",
                             "color_palette": palette, "seed": seed})
        img = np.asarray(_image(done).convert("RGB").resize((128, 128)), dtype=np.int32).reshape(-1, 3)
        dists = ((img[:, None, :] - targets[None, :, :]) ** 2).sum(axis=2)
        nearest = dists.argmin(axis=1)[dists.min(axis=1) < 60 ** 2]
        share = np.bincount(nearest, minlength=3) / len(img)
        assert share.sum() > 0.6 and share.min() > 0.03, share  # palette colours dominate, all present
        shares.append(share)
    mean = np.mean(shares, axis=0)
    assert mean[0] > mean[1] > mean[2], mean  # 50 / 35 / 15


BBOX_EXAMPLES = [
    (["https://cdn.example.com/cat.jpg"], [[[120, 80, 540, 460]]]),
    (["https://cdn.example.com/scene.jpg"], [[[100, 100, 400, 400], [500, 200, 800, 500]]]),
    (["https://cdn.example.com/img-a.jpg", "https://cdn.example.com/img-b.jpg"],
     [[[120, 80, 540, 460]], [[200, 150, 600, 500]]]),
]


@pytest.mark.parametrize(("urls", "boxes"), BBOX_EXAMPLES, ids=["one box", "two boxes", "two images"])
def test_bbox_examples_are_accepted_and_stay_inside_the_boxes(sim, urls, boxes):
    done = _submit(sim, {"model": "wan2.7-image", "action": "interactive_edit", "prompt": "replace with a lamp",
                         "image_urls": urls, "bbox_list": boxes})
    assert done["status"] == "completed"
    assert any("placeholder" in note for note in done.get("sim", {}).get("notes", []))
    # the simulator stood in a deterministic placeholder for the URL: compare against it
    from wan_nb.sim import _inputs, _render

    before = np.asarray(_render.placeholder(urls[0], _inputs._placeholder_size(urls[0], boxes[0])).convert("L"),
                        dtype=np.int32)
    after = np.asarray(_image(done).convert("L"), dtype=np.int32)
    assert after.shape == before.shape
    inside = np.zeros(before.shape, dtype=bool)
    for x1, y1, x2, y2 in boxes[0]:
        inside[y1:y2, x1:x2] = True
    diff = np.abs(after - before)
    assert diff[~inside].mean() < 2.0, "pixels outside the boxes changed"
    assert diff[inside].mean() > 10.0, "nothing was edited inside the boxes"
