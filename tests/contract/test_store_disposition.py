"""Both stores keep a ``Content-Disposition`` decided by type when the caller gives none (the
pipeline stores renditions so): a browser shows a ``large.jpg``; active content downloads. On S3
the bucket itself answers with it, so it has to be right when the object is stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relay.config import Settings
from relay.storage import open_store
from tests.contract.s3server import AWS_ENV, MotoS3, moto_s3

CASES = [
    ("p/i/large.jpg", "image/jpeg", "inline"),
    ("p/i/mp4.mp4", "video/mp4", "inline"),
    ("p/i/preview.png", "image/png", "inline"),
    ("p/i/original.svg", "image/svg+xml", "attachment"),
    ("p/i/original.html", "text/html", "attachment"),
    ("p/i/original.bin", "application/octet-stream", "attachment"),
]


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoS3]:
    with moto_s3() as s3:
        yield s3


def _put_all(settings: Settings, tmp_path: Path) -> object:
    store = open_store(settings.storage_url, settings)
    source = tmp_path / "src"
    source.write_bytes(b"bytes")

    async def put() -> None:
        for key, mime, _ in CASES:
            await store.put_file(key, source, mime, cache_control="public, max-age=60")

    asyncio.run(put())
    return store


def test_local_store_keeps_a_disposition_by_type(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", storage_url=f"file://{tmp_path / 'media'}")
    store = _put_all(settings, tmp_path)
    for key, _, expected in CASES:
        info = asyncio.run(store.stat(key))  # type: ignore[attr-defined]
        assert info is not None and info.content_disposition == expected, key


def test_s3_store_sets_a_disposition_by_type(
    moto_server: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    moto_server.create_bucket(bucket)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        data_dir=tmp_path / "data",
        storage_url=f"s3://{bucket}/m",
        s3_endpoint_url=moto_server.endpoint,
    )
    store = _put_all(settings, tmp_path)
    try:
        objects = moto_server.list(bucket)
        for key, _, expected in CASES:
            assert objects[f"m/{key}"].get("ContentDisposition") == expected, key
            # and the bucket answers a browser with it
            url = store.url(key)  # type: ignore[attr-defined]
            response = httpx.get(url, timeout=30)
            assert response.headers["content-disposition"] == expected, key
    finally:
        getattr(store, "close", lambda: None)()
