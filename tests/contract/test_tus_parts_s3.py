"""``TusParts`` (relay/intake/tus_s3.py) against moto's S3 server over HTTP: what the tus door
relies on after a crash (completing, aborting or removing twice is harmless) and that a tail
read back is the bytes stored, from memory on the node that stored it or from the bucket on
any other."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config import Settings
from relay.errors import StorageError
from relay.intake.tus_s3 import PART_SIZE, TusParts
from relay.storage.s3 import S3Store
from tests.contract.s3server import AWS_ENV, MotoS3, moto_s3


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        yield server


@pytest.fixture
def store(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    opened = S3Store.from_url(f"s3://{bucket}/site", Settings(s3_endpoint_url=s3.endpoint))
    yield opened
    opened.close()


def _buffer(data: bytes) -> io.BytesIO:
    buffer = io.BytesIO()
    buffer.write(data)
    return buffer


def test_completing_again_after_a_crash_keeps_the_object(
    store: S3Store, s3: MotoS3, tmp_path: Path
) -> None:
    first, last = os.urandom(PART_SIZE), os.urandom(1000)

    async def run() -> bytes:
        parts = TusParts(store)
        try:
            multipart = await parts.begin("u1")
            done = [
                await parts.upload_part("u1", multipart, 1, _buffer(first)),
                await parts.upload_part("u1", multipart, 2, _buffer(last)),
            ]
            await parts.complete("u1", multipart, done)
            await parts.complete("u1", multipart, done)  # the crash came before the post
            await parts.fetch("u1", tmp_path / "u1")
            return (tmp_path / "u1").read_bytes()
        finally:
            parts.close()

    assert asyncio.run(run()) == first + last
    assert s3.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_completing_an_aborted_upload_is_an_error(store: S3Store) -> None:
    """Not a silent success: only a completed object makes a repeated completion harmless."""

    async def run() -> None:
        parts = TusParts(store)
        try:
            multipart = await parts.begin("u2")
            part = await parts.upload_part("u2", multipart, 1, _buffer(b"x" * 10))
            await parts.abort("u2", multipart)
            await parts.abort("u2", multipart)  # again: the sweep on two nodes
            with pytest.raises(StorageError):
                await parts.complete("u2", multipart, [part])
        finally:
            parts.close()

    asyncio.run(run())


def test_a_tail_reads_back_the_same_here_and_on_another_node(store: S3Store, s3: MotoS3) -> None:
    data = os.urandom(3 * 1024 * 1024)

    async def run() -> None:
        here, there = TusParts(store), TusParts(store)
        try:
            key = await here.put_tail("u3", 2, _buffer(data))
            assert key.startswith("tus/u3-tail-2-")
            from_bucket, from_memory = io.BytesIO(), _buffer(b"head")
            await there.read_tail(key, from_bucket)
            await here.read_tail(key, from_memory)
            assert from_bucket.getvalue() == data
            assert from_memory.getvalue() == b"head" + data
            await here.discard("u3", None, key)
            await here.discard("u3", None, key)  # removing twice is harmless
            assert not [k for k in s3.list(store.bucket) if "/tus/" in k]
        finally:
            here.close()
            there.close()

    asyncio.run(run())
