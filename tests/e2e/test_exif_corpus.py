"""Every photo of the EXIF orientation corpus comes out upright, at the right size, without GPS."""

from __future__ import annotations

import io

import httpx
from PIL import Image, ImageChops, ImageStat

from tests.server import RelayServer


def test_exif_orientation_corpus_is_upright(relay: RelayServer, corpora) -> None:
    folder = corpora / "exif-orientation"
    names = [f"{shape}_{n}.jpg" for shape in ("Landscape", "Portrait") for n in range(9)]
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            files=[("file", (name, (folder / name).read_bytes(), "image/jpeg")) for name in names],
        )
    post = relay.wait_post(relay.anna["token"], response.json()["id"], timeout=180)
    references: dict[str, Image.Image] = {}
    for name, item in zip(names, post["items"], strict=True):
        assert item["status"] == "ready", item
        shape = name.split("_")[0]
        large = {r["name"]: r for r in item["renditions"]}["large"]
        expected = (1800, 1200) if shape == "Landscape" else (1200, 1800)
        assert (large["width"], large["height"]) == expected, name
        data = httpx.get(large["url"]).content
        image = Image.open(io.BytesIO(data))
        assert image.size == expected
        assert not image.getexif().get_ifd(0x8825)
        if name.endswith("_1.jpg"):
            references[shape] = image.convert("L").resize((expected[0] // 20, expected[1] // 20))
    for name, item in zip(names, post["items"], strict=True):
        shape = name.split("_")[0]
        large = {r["name"]: r for r in item["renditions"]}["large"]
        image = Image.open(io.BytesIO(httpx.get(large["url"]).content)).convert("L")
        small = image.resize(references[shape].size)
        diff = ImageStat.Stat(ImageChops.difference(small, references[shape])).mean[0]
        assert diff < 8, f"{name} differs from its upright reference by {diff:.1f}"
