"""The public functions in a plain Python script with no API key: the simulator starts
by itself, JPGs land on disk at the documented pixel sizes, and all six modes work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from wan_nb import _spec

pytestmark = pytest.mark.subprocess  # one script, run as a user runs it, read by every test

SCRIPT = textwrap.dedent("""
    import json, sys
    import wan_nb as wan
    from PIL import Image
    out = {}
    wan.connect(latency=0.05, concurrency=4)
    for ratio in wan._spec.ASPECT_RATIOS:
        for res in wan._spec.RESOLUTIONS:
            r = wan.generate(f"every size {ratio} {res}", aspect_ratio=ratio, resolution=res, seed=1)
            out[f"{ratio} {res}"] = [str(r.path), r.cost_usd]
    base = wan.generate("a harbour at dawn", resolution="1K", seed=2)
    other = wan.generate("a harbour at night", resolution="1K", seed=3)
    modes = {
        "image2image": wan.image2image("same harbour, oil painting", str(base.path), resolution="1K"),
        "edit": wan.edit("add a red boat", Image.open(base.path), resolution="1K"),
        "reference": wan.reference("fuse both", [base.path, other.path.read_bytes()], resolution="1K"),
        "group": wan.group("four-panel comic of the harbour", n=4, resolution="1K"),
        "interactive_edit": wan.interactive_edit("a lighthouse", base.path, [[100, 100, 400, 500]]),
    }
    out["modes"] = {k: [str(p) for p in r.paths] for k, r in modes.items()}
    out["actions"] = {k: r.request.action for k, r in modes.items()}
    out["base"] = str(base.path)
    out["ledger"] = wan.session().simulator.ledger()
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def script_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("script")
    env = {k: v for k, v in os.environ.items() if k not in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "using the built-in simulator" in done.stdout  # said in one line
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return folder, json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("ratio", _spec.ASPECT_RATIOS)
@pytest.mark.parametrize("res", _spec.RESOLUTIONS)
def test_generate_writes_jpg_of_documented_size(script_run, ratio, res):
    folder, out = script_run
    path, cost = out[f"{ratio} {res}"]
    assert path.startswith(str(folder / "wan_runs")) and cost == pytest.approx(0.02295)
    with Image.open(path) as img:
        assert img.format == "JPEG"
        assert img.size == _spec.output_size(ratio, res)
        w, h = img.size
        assert w % 16 == 0 and h % 16 == 0
        side = {"1K": 1024, "2K": 2048, "4K": 4096}[res]
        assert abs(w * h / side**2 - 1) < 0.02  # about side² pixels


def test_all_six_modes_from_python(script_run):
    _folder, out = script_run
    assert out["actions"] == {k: k for k in out["modes"]}
    assert len(out["modes"]["group"]) == 4
    for paths in out["modes"].values():
        for p in paths:
            with Image.open(p) as img:
                img.load()
    with Image.open(out["base"]) as base, Image.open(out["modes"]["interactive_edit"][0]) as edited:
        assert edited.size == base.size  # boxes are in the input's pixels, so the size is kept
    ledger = out["ledger"]
    assert ledger["submitted"] == 21 + 2 + 5
    assert ledger["billed_quota"] == (21 + 2 + 4 + 4) * _spec.UNIT_QUOTA
