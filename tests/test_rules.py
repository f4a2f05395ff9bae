"""Every rule of the user's document, table-driven.

Each row is a bad request. The client must reject it before sending (the field and
the rule named, the simulator's ledger shows no submit), and the same body sent raw
over HTTP must get a 400 from the simulator naming the same field.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import loopback
import pytest
from PIL import Image

import wan_nb as wan
from wan_nb import _spec
from wan_nb._request import build_request
from wan_nb.sim import Simulator

URL = "https://cdn.example.com/a.jpg"
URLS = [f"https://cdn.example.com/{i}.jpg" for i in range(10)]
P3 = [{"hex": "#0A2540", "ratio": 50}, {"hex": "#F5F5F0", "ratio": 35}, {"hex": "#E04B3A", "ratio": 15}]

# (id, request fields as JSON, field named, rule)
CASES = [
    ("model unknown", {"model": "wan2.6-image"}, "model", "one_of"),
    ("action unknown", {"action": "paint"}, "action", "one_of"),
    ("prompt missing", {"prompt": None}, "prompt", "required"),
    ("prompt blank", {"prompt": "   "}, "prompt", "required"),
    ("prompt not text", {"prompt": 5}, "prompt", "type"),
    ("prompt lone surrogate", {"prompt": "a fox \ud83e in snow"}, "prompt", "unicode"),
    (
        "image url lone surrogate",
        {"action": "edit", "image_urls": ["https://cdn.example.com/\udc00.jpg"]},
        "image_urls[0]",
        "unicode",
    ),
    ("callback lone surrogate", {"callback_url": "https://hooks.example.com/\ud800"}, "callback_url", "unicode"),
    ("n zero", {"n": 0}, "n", "min"),
    ("n above standard cap", {"n": 5}, "n", "max_standard"),
    ("n above group cap", {"action": "group", "enable_sequential": True, "n": 13}, "n", "max_group"),
    ("n not integer", {"n": "2"}, "n", "type"),
    ("seed below -1", {"seed": -2}, "seed", "range"),
    ("seed above int32", {"seed": 2**31}, "seed", "range"),
    ("seed not integer", {"seed": 1.5}, "seed", "type"),
    ("aspect ratio unknown", {"aspect_ratio": "5:4"}, "aspect_ratio", "one_of"),
    ("resolution unknown", {"resolution": "8K"}, "resolution", "one_of"),
    ("group 4K", {"action": "group", "enable_sequential": True, "resolution": "4K"}, "resolution", "mode_cap"),
    ("image2image 4K", {"action": "image2image", "image_urls": [URL], "resolution": "4K"}, "resolution", "mode_cap"),
    ("edit 4K", {"action": "edit", "image_urls": [URL], "resolution": "4K"}, "resolution", "mode_cap"),
    ("generate with image", {"action": "generate", "image_urls": [URL]}, "image_urls", "count"),
    ("group with image", {"action": "group", "image_urls": [URL]}, "image_urls", "count"),
    ("image2image no image", {"action": "image2image"}, "image_urls", "count"),
    ("image2image two images", {"action": "image2image", "image_urls": URLS[:2]}, "image_urls", "count"),
    ("edit two images", {"action": "edit", "image_urls": URLS[:2]}, "image_urls", "count"),
    ("reference one image", {"action": "reference", "image_urls": [URL]}, "image_urls", "count"),
    ("reference ten images", {"action": "reference", "image_urls": URLS}, "image_urls", "count"),
    (
        "interactive ten images",
        {"action": "interactive_edit", "image_urls": URLS, "bbox_list": [[[0, 0, 10, 10]]] * 10},
        "image_urls",
        "count",
    ),
    ("image_urls not a list", {"action": "image2image", "image_urls": URL}, "image_urls", "type"),
    ("image url not http", {"action": "image2image", "image_urls": ["ftp://x/a.jpg"]}, "image_urls[0]", "url"),
    ("enable_sequential not bool", {"enable_sequential": "yes"}, "enable_sequential", "type"),
    (
        "group without sequential",
        {"action": "group", "enable_sequential": False},
        "enable_sequential",
        "group_requires",
    ),
    ("sequential outside group", {"action": "generate", "enable_sequential": True}, "enable_sequential", "group_only"),
    ("watermark not bool", {"watermark": "no"}, "watermark", "type"),
    ("thinking_mode not bool", {"thinking_mode": 1}, "thinking_mode", "type"),
    ("palette two items", {"color_palette": P3[:2]}, "color_palette", "items"),
    (
        "palette eleven items",
        {"color_palette": [{"hex": "#000000", "ratio": 10}] * 9 + [{"hex": "#FFFFFF", "ratio": 5}] * 2},
        "color_palette",
        "items",
    ),
    ("palette bad hex", {"color_palette": [{"hex": "0A2540", "ratio": 50}, *P3[1:]]}, "color_palette[0].hex", "hex"),
    (
        "palette fractional ratio",
        {
            "color_palette": [
                {"hex": "#000000", "ratio": 33.5},
                {"hex": "#111111", "ratio": 33.5},
                {"hex": "#222222", "ratio": 33},
            ]
        },
        "color_palette[0].ratio",
        "integer",
    ),
    (
        "palette zero ratio",
        {"color_palette": [{"hex": "#000000", "ratio": 0}, *P3[:2], {"hex": "#FFFFFF", "ratio": 15}]},
        "color_palette[0].ratio",
        "range",
    ),
    ("palette sum not 100", {"color_palette": [*P3[:2], {"hex": "#E04B3A", "ratio": 5}]}, "color_palette", "ratio_sum"),
    ("palette extra key", {"color_palette": [{**P3[0], "name": "navy"}, *P3[1:]]}, "color_palette[0]", "keys"),
    ("palette not a list", {"color_palette": "#0A2540"}, "color_palette", "type"),
    (
        "bbox outside interactive",
        {"action": "edit", "image_urls": [URL], "bbox_list": [[[0, 0, 5, 5]]]},
        "bbox_list",
        "interactive_only",
    ),
    ("interactive without bbox", {"action": "interactive_edit", "image_urls": [URL]}, "bbox_list", "required"),
    (
        "bbox lists != images",
        {"action": "interactive_edit", "image_urls": URLS[:2], "bbox_list": [[[0, 0, 5, 5]]]},
        "bbox_list",
        "one_per_image",
    ),
    (
        "three boxes on one image",
        {"action": "interactive_edit", "image_urls": [URL], "bbox_list": [[[0, 0, 5, 5], [6, 6, 9, 9], [1, 1, 2, 2]]]},
        "bbox_list[0]",
        "max_boxes",
    ),
    (
        "box of three numbers",
        {"action": "interactive_edit", "image_urls": [URL], "bbox_list": [[[0, 0, 5]]]},
        "bbox_list[0][0]",
        "shape",
    ),
    (
        "box corners swapped",
        {"action": "interactive_edit", "image_urls": [URL], "bbox_list": [[[50, 50, 10, 10]]]},
        "bbox_list[0][0]",
        "corners",
    ),
    (
        "box negative",
        {"action": "interactive_edit", "image_urls": [URL], "bbox_list": [[[-5, 0, 10, 10]]]},
        "bbox_list[0][0]",
        "non_negative",
    ),
    ("callback not http", {"callback_url": "ftp://hooks.example.com/x"}, "callback_url", "url"),
    ("callback not a url", {"callback_url": "not a url"}, "callback_url", "url"),
    (
        "callback events not a list",
        {"callback_url": "https://hooks.example.com/x", "callback_events": "completed"},
        "callback_events",
        "type",
    ),
    ("unknown field", {"aspect": "16:9"}, "aspect", "unknown_field"),
]


def _body(fields: dict) -> dict:
    body = {"model": _spec.MODEL, "prompt": "a red fox in snow"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture(scope="module")
def sim():
    with Simulator(latency=0.05, concurrency=4) as s:
        yield s


@pytest.fixture(scope="module")
def client(sim, tmp_path_factory):
    c = wan.Client("test-key", sim.base_url, store=wan.Store(tmp_path_factory.mktemp("runs")))
    yield c
    c.close()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_client_rejects_before_sending(case, sim, client):
    _, fields, field, rule = case
    before = sim.ledger()["requests"].get("submit", 0)
    with pytest.raises(wan.RequestError) as info:
        client.submit(_body(fields))
    hits = [p for p in info.value.problems if p.field == field and p.rule == rule]
    assert hits, f"expected {field}/{rule}, got {info.value.problems}"
    assert field in str(info.value)
    assert sim.ledger()["requests"].get("submit", 0) == before, "a rejected request reached the server"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_simulator_answers_400_naming_the_field(case, sim):
    _, fields, field, _rule = case
    # ASCII-escaped JSON, as most clients send it: a lone surrogate arrives as "\\ud800"
    r = loopback.post(
        sim.base_url + "/tasks",
        content=json.dumps(_body(fields)).encode(),
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter"
    assert field in err["message"]
    ledger = sim.ledger()
    assert ledger["submitted"] == 0 and ledger["held_quota"] == 0 and ledger["by_status"]["processing"] == 0


def test_all_problems_reported_at_once():
    with pytest.raises(wan.RequestError) as info:
        build_request(
            prompt="",
            n=0,
            seed=-7,
            aspect_ratio="5:4",
            resolution="8K",
            color_palette=[{"hex": "#000000", "ratio": 50}],
        )
    fields = {p.field for p in info.value.problems}
    assert {"prompt", "n", "seed", "aspect_ratio", "resolution", "color_palette"} <= fields
    assert len(info.value.problems) >= 6


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_box_inside_known_image_size_local_and_raw(sim, tmp_path):
    data = _png(320, 200)
    with pytest.raises(wan.RequestError) as info:
        build_request(prompt="x", action="interactive_edit", image_urls=[data], bbox_list=[[[10, 10, 330, 100]]])
    assert [(p.field, p.rule) for p in info.value.problems] == [("bbox_list[0][0]", "inside_image")]
    up = loopback.post(sim.url + "/sim/uploads", content=data, headers={"Authorization": "Bearer k"}).json()
    body = _body({"action": "interactive_edit", "image_urls": [up["url"]], "bbox_list": [[[10, 10, 330, 100]]]})
    r = loopback.post(sim.base_url + "/tasks", json=body, headers={"Authorization": "Bearer k"})
    assert r.status_code == 400 and "bbox_list[0][0]" in r.json()["error"]["message"]


def test_local_image_rules(tmp_path, sim):
    big = tmp_path / "big.png"
    big.write_bytes(_png(8, 8) + b"\0" * (_spec.MAX_IMAGE_BYTES + 1))
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    with pytest.raises(wan.RequestError) as info:
        build_request(prompt="x", action="reference", image_urls=[big, gif.getvalue(), tmp_path / "missing.png"])
    got = {(p.field, p.rule) for p in info.value.problems}
    assert {("image_urls[0]", "max_size"), ("image_urls[1]", "format"), ("image_urls[2]", "file")} <= got
    # the same images sent raw to the simulator's upload endpoint are refused, naming image_urls
    for data in (big.read_bytes(), gif.getvalue()):
        r = loopback.post(sim.url + "/sim/uploads", content=data, headers={"Authorization": "Bearer k"})
        assert r.status_code == 400 and "image_urls" in r.json()["error"]["message"]


def _png_header(w: int, h: int) -> bytes:
    """A PNG whose header says w×h, over an empty image stream: 60 bytes that claim any size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_an_image_over_the_decode_limit_is_refused_with_its_size_and_the_limit(tmp_path, sim):
    """A 400-megapixel PNG was "not a readable PNG image": its size is read from the header
    (never decoded) and said, with the limit it is over."""
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(20000, 20000))
    limit = f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"  # where Pillow refuses to decode: 179
    with pytest.raises(wan.RequestError) as info:
        build_request(prompt="x", action="edit", image_urls=[huge])
    [problem] = info.value.problems
    assert (problem.field, problem.rule) == ("image_urls[0]", "max_pixels")
    assert f"is 20000×20000 (400 megapixels), over the decode limit of {limit}" in problem.message
    assert "not a readable" not in problem.message
    # the simulator's upload endpoint says the same
    r = loopback.post(sim.url + "/sim/uploads", content=huge.read_bytes(), headers={"Authorization": "Bearer k"})
    assert r.status_code == 400 and "20000×20000 (400 megapixels)" in r.json()["error"]["message"]
    # under the limit, the size is known from the header as before
    assert wan.build_request(prompt="x", action="edit", image_urls=[_png_header(12000, 12000)]).images[0].size == (
        12000, 12000)


def test_ignored_fields_warn_and_are_not_sent():
    req = build_request(prompt="x", image_urls=[URL], thinking_mode=True)
    assert req.action == "image2image" and "thinking_mode" in req.ignored and req.warnings
    assert "thinking_mode" not in wan._wire.to_body(req)
    req = build_request(prompt="x", enable_sequential=True, n=4, color_palette=P3)
    assert req.action == "group" and req.color_palette is None and "color_palette" in req.ignored
    assert "color_palette" not in wan._wire.to_body(req)
    # the default thinking_mode=true is not the user's choice: no warning for it
    assert build_request(prompt="x", image_urls=[URL]).warnings == ()
    with pytest.warns(wan.WanWarning, match="thinking_mode"):
        wan._session.emit_warnings(build_request(prompt="x", image_urls=[URL], thinking_mode=True))


@pytest.mark.parametrize(
    ("fields", "action"),
    [
        ({}, "generate"),
        ({"image_urls": [URL]}, "image2image"),
        ({"image_urls": URLS[:3]}, "reference"),
        ({"enable_sequential": True, "n": 6}, "group"),
        ({"image_urls": [URL], "bbox_list": [[[1, 2, 30, 40]]]}, "interactive_edit"),
    ],
)
def test_mode_is_inferred_like_the_quick_reference(fields, action):
    req = build_request(prompt="x", **fields)
    assert req.action == action


def test_numbers_computed_with_numpy_are_taken_and_sent_as_plain_numbers():
    """Users compute boxes, ratios and seeds with numpy: np.int64 is a whole number."""
    import numpy as np

    data = _png(320, 200)
    req = build_request(
        prompt="x", image_urls=[data], bbox_list=np.array([[[10, 20, 300, 190]]]), seed=np.int64(7), n=np.int32(2)
    )
    plain = build_request(prompt="x", image_urls=[data], bbox_list=[[[10, 20, 300, 190]]], seed=7, n=2)
    assert req == plain and req.canonical_json() == plain.canonical_json()
    assert type(req.seed) is int and type(req.n) is int and type(req.bbox_list[0][0][0]) is int
    palette = build_request(
        prompt="x",
        color_palette=[
            ("#000000", np.int64(50)),
            ("#FFFFFF", np.float32(30)),
            {"hex": "#FF0000", "ratio": np.uint8(20)},
        ],
    ).color_palette
    assert palette == (("#000000", 50), ("#FFFFFF", 30), ("#FF0000", 20))
    with pytest.raises(wan.RequestError) as info:
        build_request(prompt="x", image_urls=[data], bbox_list=[[np.array([10, 20, 300.5, 190])]])
    assert info.value.fields == ["bbox_list[0][0]"] and info.value.problems[0].rule == "shape"


def test_random_seed_is_resolved_and_recorded():
    a, b = build_request(prompt="x"), build_request(prompt="x")
    assert a.seed_random and 0 <= a.seed <= _spec.SEED_MAX
    assert a.seed != b.seed and a.idempotency_key() != b.idempotency_key()
    fixed = build_request(prompt="x", seed=7)
    assert not fixed.seed_random and fixed.canonical()["seed"] == 7
    assert fixed.idempotency_key() == build_request(prompt="x", seed=7).idempotency_key()


def test_cost_is_known_before_sending():
    assert build_request(prompt="x", n=3).cost_quota == 3 * 11_475
    assert build_request(prompt="x", action="group", n=12).cost_usd == pytest.approx(12 * 0.02295)


def test_defaults_of_the_document():
    req = build_request(prompt="x")
    assert (req.model, req.action, req.n, req.aspect_ratio, req.resolution) == (
        "wan2.7-image",
        "generate",
        1,
        "1:1",
        "2K",
    )
    assert (req.watermark, req.thinking_mode, req.enable_sequential) == (False, True, False)


def test_wire_images_must_be_urls_never_server_paths(sim):
    body = _body({"action": "image2image", "image_urls": ["/etc/passwd"]})
    r = loopback.post(sim.base_url + "/tasks", json=body, headers={"Authorization": "Bearer k"})
    assert r.status_code == 400
    problems = r.json()["error"]["problems"]
    assert [(p["field"], p["rule"]) for p in problems] == [("image_urls[0]", "url")]
    assert "no such file" not in r.text  # nothing about the server's disk leaks


def test_unknown_field_does_not_hide_other_problems(sim, client):
    body = _body({"aspect": "16:9", "n": 0, "resolution": "8K"})
    with pytest.raises(wan.RequestError) as info:
        client.submit(body)
    assert {p.field for p in info.value.problems} == {"aspect", "n", "resolution"}
    r = loopback.post(sim.base_url + "/tasks", json=body, headers={"Authorization": "Bearer k"})
    assert {p["field"] for p in r.json()["error"]["problems"]} == {"aspect", "n", "resolution"}
