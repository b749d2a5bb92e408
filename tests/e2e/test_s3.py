"""``relay serve`` on an S3 bucket (moto's server mode over real HTTP and SigV4), configured only
through environment variables, as a user would."""

from __future__ import annotations

import hashlib
import html
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.contract.s3server import AWS_ENV, MotoS3
from tests.media import pdf_bytes, phone_jpeg
from tests.server import RelayServer, free_port

PREFIX = "site/media"
IMMUTABLE = "public, max-age=31536000, immutable"

StartRelay = Callable[..., RelayServer]


def _env(s3: MotoS3, bucket: str) -> dict[str, str]:
    return {
        **AWS_ENV,
        "RELAY_STORAGE_URL": f"s3://{bucket}/{PREFIX}",
        "RELAY_S3_ENDPOINT_URL": s3.endpoint,
    }


def _urls(item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("original", item["original"])] + [(r["name"], r) for r in item["renditions"]]


def test_photo_and_pdf_are_hosted_in_the_bucket(
    s3: MotoS3, bucket: str, start_relay: StartRelay
) -> None:
    relay = start_relay(**_env(s3, bucket))
    token = relay.add_user("anna")["token"]
    photo, pdf = phone_jpeg(1600, 1200), pdf_bytes()
    with relay.client(token) as client:
        response = client.post(
            "/api/v1/uploads",
            files=[
                ("file", ("IMG_0042.jpg", photo, "image/jpeg")),
                ("file", ("protokoll.pdf", pdf, "application/pdf")),
            ],
            data={"title": "Torget"},
        )
    assert response.status_code == 202, response.text
    post = relay.wait_post(token, response.json()["id"])
    items = {item["kind"]: item for item in post["items"]}
    assert set(items) == {"image", "document"}
    assert all(item["status"] == "ready" for item in items.values()), post

    # Every object is under the prefix, with the type and caching the API reports.
    objects = s3.list(bucket)
    expected: dict[str, dict[str, Any]] = {}
    for item in items.values():
        for _, obj in _urls(item):
            path = httpx.URL(obj["url"]).path
            assert path.startswith(f"/{bucket}/{PREFIX}/{post['id']}/{item['id']}/"), obj["url"]
            expected[path.removeprefix(f"/{bucket}/")] = obj
    assert set(objects) == set(expected)
    for key, obj in expected.items():
        assert objects[key]["ContentType"] == obj["mime"], key
        assert objects[key]["CacheControl"] == IMMUTABLE, key
        assert objects[key]["ContentLength"] == obj["bytes"], key
    assert objects[next(k for k in expected if "/original" in k and k.endswith(".pdf"))][
        "ContentDisposition"
    ].startswith("inline; filename=")

    # Every URL the API hands out is fetchable as it is, and gives the bytes the API describes.
    for item in items.values():
        for name, obj in _urls(item):
            assert "X-Amz-Signature=" in obj["url"]  # a private bucket: presigned links
            fetched = httpx.get(obj["url"], timeout=30)
            assert fetched.status_code == 200, (name, fetched.text)
            assert fetched.headers["content-type"] == obj["mime"]
            assert len(fetched.content) == obj["bytes"]
            if name == "original":
                assert hashlib.sha256(fetched.content).hexdigest() == obj["sha256"]
    assert items["document"]["original"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert httpx.get(items["document"]["original"]["url"]).content == pdf

    # The page links into the bucket; the relay's own /media route serves only a local store.
    page = httpx.get(post["url"]).text
    assert f"{s3.endpoint}/{bucket}/{PREFIX}/" in html.unescape(page)
    original_key = httpx.URL(items["image"]["original"]["url"]).path.split(f"/{PREFIX}/", 1)[1]
    assert httpx.get(f"{relay.url}/media/{original_key}").status_code == 404


def test_presigned_links_are_signed_afresh_on_each_read(
    s3: MotoS3, bucket: str, start_relay: StartRelay
) -> None:
    relay = start_relay(**_env(s3, bucket), RELAY_S3_PRESIGN_SECONDS="90")
    token = relay.add_user("anna")["token"]
    with relay.client(token) as client:
        accepted = client.post(
            "/api/v1/uploads", files={"file": ("a.pdf", pdf_bytes(), "application/pdf")}
        ).json()
        relay.wait_post(token, accepted["id"])
        first = client.get(f"/api/v1/posts/{accepted['id']}").json()
        url = first["items"][0]["original"]["url"]
        assert "X-Amz-Expires=90" in url
        time.sleep(1.1)  # SigV4 dates have whole seconds
        again = client.get(f"/api/v1/posts/{accepted['id']}").json()
    assert again["items"][0]["original"]["url"] != url


def test_public_url_setting_gives_plain_links(
    s3: MotoS3, bucket: str, start_relay: StartRelay
) -> None:
    cdn = "https://cdn.example.org/media"
    relay = start_relay(**_env(s3, bucket), RELAY_S3_PUBLIC_URL=cdn)
    token = relay.add_user("anna")["token"]
    with relay.client(token) as client:
        accepted = client.post(
            "/api/v1/uploads", files={"file": ("a.pdf", pdf_bytes(), "application/pdf")}
        ).json()
    post = relay.wait_post(token, accepted["id"])
    [item] = post["items"]
    for _, obj in _urls(item):
        assert obj["url"].startswith(f"{cdn}/{PREFIX}/{post['id']}/{item['id']}/")
        assert "?" not in obj["url"]

    # A private post's links are signed even with a public base, from the post and the item.
    with relay.client(token) as client:
        accepted = client.post(
            "/api/v1/uploads",
            files={"file": ("b.pdf", pdf_bytes(), "application/pdf")},
            data={"private": "true"},
        ).json()
        post = relay.wait_post(token, accepted["id"])
        [item] = post["items"]
        alone = client.get(f"/api/v1/items/{item['id']}").json()
    for found in (item, alone):
        for _, obj in _urls(found):
            assert "X-Amz-Signature=" in obj["url"] and not obj["url"].startswith(cdn)


def test_missing_bucket_stops_serve_at_start_up(s3: MotoS3, start_relay: StartRelay) -> None:
    with pytest.raises(RuntimeError) as exited:
        start_relay(**_env(s3, "no-such-bucket"))
    message = str(exited.value)
    assert "relay serve exited" in message
    assert "bucket no-such-bucket does not exist: create it or fix RELAY_STORAGE_URL" in message
    assert "Traceback" not in message


def test_unreachable_endpoint_stops_serve_at_start_up(start_relay: StartRelay) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError) as exited:
        start_relay(**AWS_ENV, RELAY_STORAGE_URL="s3://relay-media", RELAY_S3_ENDPOINT_URL=closed)
    assert f"cannot reach endpoint {closed}" in str(exited.value)
    assert "RELAY_S3_ENDPOINT_URL" in str(exited.value)


def test_readyz_follows_the_bucket(s3: MotoS3, bucket: str, start_relay: StartRelay) -> None:
    relay = start_relay(**_env(s3, bucket))
    ready = httpx.get(f"{relay.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["storage"] == "ok"
    s3.delete_bucket(bucket)
    gone = httpx.get(f"{relay.url}/readyz", timeout=30)
    assert gone.status_code == 503
    assert "does not exist" in gone.json()["checks"]["storage"]
    s3.create_bucket(bucket)
    assert httpx.get(f"{relay.url}/readyz").status_code == 200
