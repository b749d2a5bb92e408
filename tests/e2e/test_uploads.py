"""HTTP uploads: multipart and raw, ownership, errors, documents and plain files."""

from __future__ import annotations

import hashlib
import io

import httpx
from PIL import Image

from tests.media import pdf_bytes, phone_jpeg
from tests.server import RelayServer


def test_multipart_upload_gives_202_and_a_ready_post(relay: RelayServer) -> None:
    photo = phone_jpeg(1600, 1200, orientation=1)
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            files={"file": ("photo.jpg", photo, "image/jpeg")},
            data={"title": "Torget", "text": "Lördag"},
        )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["title"] == "Torget" and accepted["status"] == "processing"
    assert [i["status"] for i in accepted["items"]] == ["queued"]
    post = relay.wait_post(relay.anna["token"], accepted["id"])
    [item] = post["items"]
    assert item["kind"] == "image" and item["filename"] == "photo.jpg"
    sizes = {r["name"]: (r["width"], r["height"]) for r in item["renditions"]}
    assert sizes == {"large": (1600, 1200), "medium": (1024, 768), "small": (320, 240)}


def test_raw_body_with_content_disposition(relay: RelayServer) -> None:
    pdf = pdf_bytes()
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads?title=Protokoll",
            content=pdf,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": "attachment; filename*=UTF-8''m%C3%B6te.pdf",
            },
        )
    assert response.status_code == 202, response.text
    post = relay.wait_post(relay.anna["token"], response.json()["id"])
    [item] = post["items"]
    assert (item["kind"], item["filename"], post["title"]) == ("document", "möte.pdf", "Protokoll")
    assert item["original"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert item["original"]["bytes"] == len(pdf)
    original = httpx.get(item["original"]["url"])
    assert original.content == pdf
    assert original.headers["content-type"] == "application/pdf"
    preview = {r["name"]: r for r in item["renditions"]}["preview"]
    image = Image.open(io.BytesIO(httpx.get(preview["url"]).content))
    assert image.format == "JPEG" and max(image.size) <= 1024


def test_other_files_are_served_only_as_sandboxed_downloads(relay: RelayServer) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    html = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            files=[
                ("file", ("logo.svg", svg, "image/svg+xml")),
                ("file", ("page.html", html, "text/html")),
                ("file", ("data.bin", bytes(range(256)) * 10, "application/octet-stream")),
            ],
        )
    assert response.status_code == 202
    post = relay.wait_post(relay.anna["token"], response.json()["id"])
    assert [i["kind"] for i in post["items"]] == ["file", "file", "file"]
    for item, body in zip(post["items"], (svg, html, bytes(range(256)) * 10), strict=True):
        served = httpx.get(item["original"]["url"])
        assert served.content == body
        assert served.headers["content-disposition"].startswith("attachment")
        assert served.headers["content-security-policy"] == "sandbox"
        assert served.headers["x-content-type-options"] == "nosniff"


def test_the_type_is_sniffed_not_taken_from_the_client(relay: RelayServer) -> None:
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            files={
                "file": ("holiday.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg")
            },
        )
    post = relay.wait_post(relay.anna["token"], response.json()["id"])
    [item] = post["items"]
    assert item["kind"] == "file" and item["original"]["mime"] == "text/html"
    assert (
        httpx.get(item["original"]["url"]).headers["content-disposition"].startswith("attachment")
    )


def test_bad_tokens_get_401_with_a_json_error(relay: RelayServer) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        response = httpx.post(relay.url + "/api/v1/uploads", headers=headers, content=b"x")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "auth.invalid_token"


def test_posts_and_items_are_read_only_by_their_owner(relay: RelayServer) -> None:
    other = relay.add_user("bertil")
    with relay.client(relay.anna["token"]) as client:
        post = client.post(
            "/api/v1/uploads",
            data={"text": "private thoughts"},
            files={"file": ("a.txt", b"hello", "text/plain")},
        ).json()
    item_id = post["items"][0]["id"]
    with relay.client(other["token"]) as client:
        assert client.get(f"/api/v1/posts/{post['id']}").status_code == 404
        assert client.get(f"/api/v1/items/{item_id}").json()["error"]["code"] == "not_found"
        assert client.get("/api/v1/posts").json() == {"posts": []}
    with relay.client(relay.anna["token"]) as client:
        assert client.get(f"/api/v1/items/{item_id}").status_code == 200
        listed = [p["id"] for p in client.get("/api/v1/posts").json()["posts"]]
        assert listed[0] == post["id"]  # newest first


def test_upload_over_the_limit_is_refused_with_413(start_relay) -> None:
    server = start_relay(RELAY_MAX_UPLOAD_BYTES="100000")
    anna = server.add_user("anna")
    with server.client(anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            content=b"x" * 200_000,
            headers={"Content-Disposition": "attachment; filename=a.bin"},
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "upload.too_large"

        def chunks():  # no Content-Length: the limit is enforced while streaming
            for _ in range(50):
                yield b"y" * 10_000

        response = client.post(
            "/api/v1/uploads",
            content=chunks(),
            headers={"Content-Disposition": "attachment; filename=b.bin"},
        )
        assert response.status_code == 413
        assert client.get("/api/v1/posts").json() == {"posts": []}
    assert not list((server.data_dir / "spool" / "ready").iterdir())


def test_an_upload_without_a_file_is_refused(relay: RelayServer) -> None:
    with relay.client(relay.anna["token"]) as client:
        response = client.post("/api/v1/uploads", files={"other": (None, "x")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "upload.no_file"


def test_corrupt_and_hostile_images_fail_with_a_code_and_others_go_on(relay: RelayServer) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )
    truncated = phone_jpeg(800, 600)[:3000]
    good = phone_jpeg(800, 600, orientation=1)
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            files=[
                ("file", ("bomb.png", bomb)),
                ("file", ("half.jpg", truncated)),
                ("file", ("good.jpg", good)),
            ],
        )
    post = relay.wait_post(relay.anna["token"], response.json()["id"])
    outcome = [(i["status"], (i["error"] or {}).get("code")) for i in post["items"]]
    assert outcome == [
        ("failed", "media.too_many_pixels"),
        ("failed", "media.corrupt"),
        ("ready", None),
    ]
    for item in post["items"][:2]:
        assert item["original"]["url"] is None  # kept, but not served unchecked
