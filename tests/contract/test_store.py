"""The conformance suite every ``Store`` backend passes (add a backend to ``backend``).

The S3 backend runs against moto's server mode on 127.0.0.1: real HTTP, real SigV4 signing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from relay.config import Settings
from relay.errors import StorageError
from relay.storage import LocalPaths, Store, open_store, put_done_file, valid_key
from relay.storage.s3 import S3Store
from tests.contract.s3server import AWS_ENV, MotoS3, moto_s3

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
BIG = 200 * MiB
MAX_GROWTH = 64 * MiB


@dataclass
class Backend:
    name: str
    storage_url: str
    env: dict[str, str]  # RELAY_* and AWS_* as a user would set them
    s3: MotoS3 | None = None
    bucket: str | None = None
    stores: list[Store] = field(default_factory=list)

    def settings(self, **overrides: object) -> Settings:
        values = {
            k.removeprefix("RELAY_").lower(): v for k, v in self.env.items() if k[:6] == "RELAY_"
        }
        return Settings(**{**values, **overrides})  # type: ignore[arg-type]

    def open(self, **overrides: object) -> Store:
        settings = self.settings(**overrides)
        store = open_store(settings.storage_url, settings)
        self.stores.append(store)
        return store

    def open_s3(self, **overrides: object) -> S3Store:
        store = self.open(**overrides)
        assert isinstance(store, S3Store)
        return store


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoS3]:
    with moto_s3() as s3:
        yield s3


def _local(tmp_path: Path) -> Backend:
    url = f"file://{tmp_path / 'media'}"
    return Backend(
        "local", url, {"RELAY_DATA_DIR": str(tmp_path / "data"), "RELAY_STORAGE_URL": url}
    )


def _s3(s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    url = f"s3://{bucket}/tenant/media"
    env = {
        "RELAY_DATA_DIR": str(tmp_path / "data"),
        **AWS_ENV,
        "RELAY_STORAGE_URL": url,
        "RELAY_S3_ENDPOINT_URL": s3.endpoint,
    }
    return Backend("s3", url, env, s3, bucket)


def _close(backend: Backend) -> None:
    for store in backend.stores:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture(params=["local", "s3"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    if request.param == "local":
        chosen = _local(tmp_path)
    else:
        chosen = _s3(request.getfixturevalue("moto_server"), tmp_path, monkeypatch)
    yield chosen
    _close(chosen)


@pytest.fixture
def s3_backend(
    moto_server: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    chosen = _s3(moto_server, tmp_path, monkeypatch)
    yield chosen
    _close(chosen)


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


async def _read(store: Store, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, start, end)])


def _file(tmp_path: Path, data: bytes, name: str = "src") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_stat_read(store: Store, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, several read chunks
    src = _file(tmp_path, data)

    async def scenario() -> None:
        await store.check()
        assert await store.stat("p/i/original.jpg") is None
        await store.put_file(
            "p/i/original.jpg",
            src,
            "image/jpeg",
            content_disposition='inline; filename="a.jpg"',
            cache_control="public, max-age=60",
        )
        info = await store.stat("p/i/original.jpg")
        assert info is not None
        assert (info.size, info.content_type) == (len(data), "image/jpeg")
        assert info.content_disposition == 'inline; filename="a.jpg"'
        assert info.cache_control == "public, max-age=60"
        assert await _read(store, "p/i/original.jpg") == data
        assert await _read(store, "p/i/original.jpg", 1000, 300_000) == data[1000:300_000]
        assert await _read(store, "p/i/original.jpg", len(data) - 5) == data[-5:]
        # Ranges behave like slices at the edges.
        assert await _read(store, "p/i/original.jpg", 0, 1) == data[:1]
        assert await _read(store, "p/i/original.jpg", 10, 10) == b""
        assert await _read(store, "p/i/original.jpg", len(data) - 3, len(data) + 100) == data[-3:]
        assert await _read(store, "p/i/original.jpg", len(data) + 10) == b""
        assert await store.stat("p/i/other.jpg") is None

    asyncio.run(scenario())
    assert src.read_bytes() == data  # the source is left alone


def test_overwrite_and_delete(store: Store, tmp_path: Path) -> None:
    async def scenario() -> None:
        await store.put_file("k/a.txt", _file(tmp_path, b"one", "1"), "text/plain")
        await store.put_file("k/a.txt", _file(tmp_path, b"second", "2"), "application/pdf")
        info = await store.stat("k/a.txt")
        assert info is not None
        assert (info.size, info.content_type) == (6, "application/pdf")
        assert await _read(store, "k/a.txt") == b"second"
        await store.delete("k/a.txt")
        assert await store.stat("k/a.txt") is None
        await store.delete("k/a.txt")  # deleting twice is fine

    asyncio.run(scenario())


def test_overwrite_replaces_the_headers_too(store: Store, tmp_path: Path) -> None:
    async def scenario() -> None:
        await store.put_file(
            "k/h.bin",
            _file(tmp_path, b"one", "1"),
            "image/png",
            content_disposition="attachment",
            cache_control="no-store",
        )
        await store.put_file("k/h.bin", _file(tmp_path, b"two", "2"), "text/plain")
        info = await store.stat("k/h.bin")
        assert info is not None
        assert (info.content_type, info.content_disposition, info.cache_control) == (
            "text/plain",
            None,
            None,
        )

    asyncio.run(scenario())


def test_a_file_handed_over_stays_whole_after_its_source_goes(store: Store, tmp_path: Path) -> None:
    """``put_done_file``: the pipeline hands over what it made and removes its work folder; the
    object is the bytes as they were, under the headers given, whatever the source does next
    (LocalStore keeps the very file, other stores a copy)."""
    data = os.urandom(300_000)
    src = _file(tmp_path, data, "made")

    async def scenario() -> None:
        await put_done_file(
            store, "p/i/large.jpg", src, "image/jpeg", cache_control="public, max-age=60"
        )
        src.unlink()  # the work folder goes
        info = await store.stat("p/i/large.jpg")
        assert info is not None
        assert (info.size, info.content_type, info.cache_control) == (
            len(data),
            "image/jpeg",
            "public, max-age=60",
        )
        assert await _read(store, "p/i/large.jpg") == data
        # A second hand-over to the same key (a job run again) replaces the first.
        await put_done_file(store, "p/i/large.jpg", _file(tmp_path, b"again", "again"), "a/b")
        assert await _read(store, "p/i/large.jpg") == b"again"

    asyncio.run(scenario())


def test_local_store_links_what_it_is_handed_and_copies_across_filesystems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one filesystem (the relay's defaults) a handed-over file is linked, not copied, and
    gets a new file's permissions rather than the spool's 0600; where a link cannot be made
    (another filesystem), it is copied. ``put_file`` always copies: a live playlist is
    rewritten in place after each put."""
    import errno

    from relay.storage import local

    store = local.LocalStore(tmp_path / "media")
    src = _file(tmp_path, b"photo", "spooled")
    src.chmod(0o600)
    asyncio.run(store.adopt_file("p/i/original.jpg", src, "image/jpeg"))
    stored = store.local_path("p/i/original.jpg")
    assert stored.stat().st_ino == src.stat().st_ino
    assert stored.stat().st_mode & 0o777 == local._NEW_FILE_MODE
    asyncio.run(store.put_file("p/i/copy.jpg", src, "image/jpeg"))
    assert store.local_path("p/i/copy.jpg").stat().st_ino != src.stat().st_ino

    def cross_device(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(local.os, "link", cross_device)
    asyncio.run(store.adopt_file("p/i/other.jpg", src, "image/jpeg"))
    other = store.local_path("p/i/other.jpg")
    assert other.read_bytes() == b"photo" and other.stat().st_ino != src.stat().st_ino


def test_empty_object(store: Store, tmp_path: Path) -> None:
    async def scenario() -> None:
        await store.put_file("k/empty", _file(tmp_path, b""), "application/octet-stream")
        info = await store.stat("k/empty")
        assert info is not None and info.size == 0
        assert await _read(store, "k/empty") == b""

    asyncio.run(scenario())


def test_reading_a_missing_object_fails(store: Store) -> None:
    async def scenario() -> None:
        with pytest.raises(FileNotFoundError):
            await _read(store, "k/never-stored")

    asyncio.run(scenario())


def test_url_is_absolute_or_served_by_the_relay(store: Store, tmp_path: Path) -> None:
    for private in (False, True):
        url = store.url("p/i/small.jpg", private=private)
        assert url is None or url.startswith(("http://", "https://"))


def test_url_is_fetchable_with_plain_http(store: Store, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    disposition = "attachment; filename=\"r.pdf\"; filename*=UTF-8''r%C3%A4.pdf"

    async def put() -> None:
        await store.put_file(
            "p/i/original.pdf",
            _file(tmp_path, data),
            "application/pdf",
            content_disposition=disposition,
            cache_control="public, max-age=31536000, immutable",
        )

    asyncio.run(put())
    url = store.url("p/i/original.pdf")
    if url is None:
        # The relay serves it itself (its /media route) from the file on disk.
        assert isinstance(store, LocalPaths)
        assert store.local_path("p/i/original.pdf").read_bytes() == data
        return
    response = httpx.get(url, timeout=30)  # no credentials, no SDK: what a browser does
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == disposition
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_presigned_urls_are_signed_afresh(s3_backend: Backend) -> None:
    store = s3_backend.open_s3(s3_presign_seconds=120)
    first = urlparse(store.url("p/i/x.jpg") or "")
    assert "X-Amz-Signature=" in first.query and "X-Amz-Expires=120" in first.query
    assert first.path.endswith("/tenant/media/p/i/x.jpg")
    time.sleep(1.1)  # SigV4 dates have whole seconds
    again = urlparse(store.url("p/i/x.jpg") or "")
    assert again.query != first.query  # a new date, a new signature: never a stale link


def test_public_url_is_plain_and_fetchable(s3_backend: Backend, tmp_path: Path) -> None:
    assert s3_backend.s3 is not None and s3_backend.bucket is not None
    s3_backend.s3.client().put_bucket_policy(
        Bucket=s3_backend.bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{s3_backend.bucket}/*",
                    }
                ],
            }
        ),
    )
    base = f"{s3_backend.s3.endpoint}/{s3_backend.bucket}/"  # a trailing slash is fine
    store = s3_backend.open_s3(s3_public_url=base)
    asyncio.run(store.put_file("p/i/a b.jpg", _file(tmp_path, b"jpeg bytes"), "image/jpeg"))
    url = store.url("p/i/a b.jpg")
    assert url == f"{base}tenant/media/p/i/a%20b.jpg"
    response = httpx.get(url, timeout=30)
    assert (response.status_code, response.content) == (200, b"jpeg bytes")
    assert response.headers["content-type"] == "image/jpeg"
    # Private media never get a guessable public link.
    private = store.url("p/i/a b.jpg", private=True)
    assert private is not None and "X-Amz-Signature=" in private


def test_s3_keys_live_under_the_prefix(s3_backend: Backend, tmp_path: Path) -> None:
    assert s3_backend.s3 is not None and s3_backend.bucket is not None
    store = s3_backend.open_s3()
    asyncio.run(store.put_file("post/item/original.jpg", _file(tmp_path, b"x"), "image/jpeg"))
    assert list(s3_backend.s3.list(s3_backend.bucket)) == ["tenant/media/post/item/original.jpg"]


@pytest.mark.parametrize("checksum", ["when_required", "when_supported"])
def test_s3_checksum_setting(s3_backend: Backend, tmp_path: Path, checksum: str) -> None:
    store = s3_backend.open_s3(s3_checksum=checksum, s3_part_size_bytes=5 * MiB)
    config = store.client.meta.config
    assert config.request_checksum_calculation == checksum
    assert config.response_checksum_validation == checksum
    data = os.urandom(11 * MiB)  # three parts

    async def scenario() -> None:
        await store.put_file("k/multi.bin", _file(tmp_path, data), "video/mp4")
        assert await _read(store, "k/multi.bin") == data
        edge = 5 * MiB
        assert await _read(store, "k/multi.bin", edge - 7, edge + 7) == data[edge - 7 : edge + 7]

    asyncio.run(scenario())


@pytest.mark.parametrize("style", ["path", "auto"])
def test_s3_addressing_style(s3_backend: Backend, style: str) -> None:
    store = s3_backend.open_s3(s3_addressing_style=style)
    assert store.client.meta.config.s3["addressing_style"] == style
    asyncio.run(store.check())  # an IP endpoint: botocore falls back to path style for "auto"


def test_s3_check_says_what_to_fix(s3_backend: Backend, tmp_path: Path) -> None:
    async def failure(store: Store) -> str:
        with pytest.raises(StorageError) as caught:
            await store.check()
        assert caught.value.code == "storage.unavailable"
        return caught.value.detail

    missing = s3_backend.open(storage_url="s3://no-such-bucket-here/x")
    detail = asyncio.run(failure(missing))
    assert "bucket no-such-bucket-here does not exist" in detail
    assert "RELAY_STORAGE_URL" in detail

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = s3_backend.open(s3_endpoint_url=closed)
    detail = asyncio.run(failure(unreachable))
    assert f"cannot reach endpoint {closed}" in detail and "RELAY_S3_ENDPOINT_URL" in detail
    # A transient failure on the job path is a StorageError too, which the job queue retries.
    with pytest.raises(StorageError):
        asyncio.run(unreachable.put_file("k/x", _file(tmp_path, b"x"), "text/plain"))


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [
        (403, "403", "credentials rejected"),
        (403, "InvalidAccessKeyId", "AWS_ACCESS_KEY_ID"),
        (301, "301", "RELAY_S3_REGION"),
        (400, "XAmzContentSHA256Mismatch", "RELAY_S3_CHECKSUM=when_required"),
    ],
)
def test_s3_errors_say_what_to_fix(s3_backend: Backend, status: int, code: str, says: str) -> None:
    from botocore.stub import Stubber

    store = s3_backend.open_s3()
    with Stubber(store.client) as stub:
        stub.add_client_error("head_bucket", service_error_code=code, http_status_code=status)
        with pytest.raises(StorageError) as caught:
            asyncio.run(store.check())
    assert says in caught.value.detail


def test_bad_storage_urls() -> None:
    with pytest.raises(ValueError, match="BUCKET"):
        open_store("s3:///prefix-only", Settings())
    with pytest.raises(ValueError, match="scheme"):
        open_store("ftp://host/x", Settings())
    with pytest.raises(ValueError):
        open_store("s3://bucket/a/../b", Settings())


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", "a/../b", ".meta/x", ""])
def test_keys_cannot_escape(key: str) -> None:
    with pytest.raises(ValueError):
        valid_key(key)


# --- a large object, in bounded memory -------------------------------------------------------


def _probe(env: dict[str, str], source: Path, key: str, *extra: str) -> dict[str, int | str]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.contract.stream_probe", str(source), key, *extra],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_memory_probe_sees_growth(tmp_path: Path) -> None:
    """The memory check below can fail: the same probe sees a 100 MB allocation."""
    url = f"file://{tmp_path / 'media'}"
    env = {"RELAY_STORAGE_URL": url, "RELAY_DATA_DIR": str(tmp_path)}
    result = _probe(env, _file(tmp_path, b"x"), "k/hog", "--hog", str(100 * MiB))
    assert int(result["growth"]) >= 95 * MiB, result


def test_200_mb_streams_in_and_out_in_bounded_memory(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(source, "wb") as f:
        for _ in range(BIG // MiB):
            # Every MiB differs, so parts stored or read out of order would show.
            block = os.urandom(MiB)
            digest.update(block)
            f.write(block)

    result = _probe(backend.env, source, "big/original.mp4")
    assert (result["size"], result["sha256"]) == (BIG, digest.hexdigest())
    assert int(result["growth"]) < MAX_GROWTH, (
        f"{backend.name}: grew {int(result['growth']) / MiB:.1f} MiB while streaming 200 MB "
        f"({result})"
    )

    store = backend.open()

    async def check_from_here() -> None:
        info = await store.stat("big/original.mp4")
        assert info is not None and info.size == BIG
        edge = 16 * MiB  # the default part size: a range across two parts
        with open(source, "rb") as f:
            f.seek(edge - 100)
            expected = f.read(200)
        assert await _read(store, "big/original.mp4", edge - 100, edge + 100) == expected
        await store.delete("big/original.mp4")
        assert await store.stat("big/original.mp4") is None

    asyncio.run(check_from_here())
