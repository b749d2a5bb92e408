"""The conformance suite of the spool's two backends: the local folder (fsync, the embedded
defaults) and the object store (``spool/`` in the bucket, when nodes share S3). The S3 backend
runs against moto's server mode on 127.0.0.1: real HTTP, real SigV4.

What both promise: ``commit`` returns only when the bytes are durable; until then, and after
``abort``, nothing is left for anyone to find; a spooled file reads back byte for byte. The
object store also promises what the local folder cannot: another node, with a folder of its
own (or none left), reads the same file.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.config import Settings
from relay.errors import StorageError, TooLarge
from relay.spool import Spool, SpoolBackend, open_spool
from relay.spool_s3 import PART, S3Spool
from relay.storage import open_store
from relay.storage.s3 import S3Store
from tests.contract.s3server import AWS_ENV, MotoS3, moto_s3
from tests.tcpproxy import TcpProxy

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoS3]:
    with moto_s3() as s3:
        yield s3


@dataclass
class Backend:
    name: str
    settings: Settings
    s3: MotoS3 | None = None
    bucket: str | None = None

    def open(self, data_dir: Path | None = None, endpoint: str | None = None) -> SpoolBackend:
        """A node's spool: ``data_dir`` makes another node on the same store."""
        changes: dict[str, object] = {}
        if data_dir is not None:
            changes["data_dir"] = data_dir
        if endpoint is not None:
            changes["s3_endpoint_url"] = endpoint
        settings = self.settings.model_copy(update=changes)
        return open_spool(settings, open_store(settings.storage_url, settings))

    def stored(self) -> list[str]:
        """The names under spool/ in the bucket (S3) or in ready/ (local)."""
        if self.s3 is None:
            return sorted(p.name for p in (self.settings.spool_dir / "ready").iterdir())
        return sorted(
            key.rsplit("/", 1)[1] for key in self.s3.list(self.bucket or "") if "/spool/" in key
        )

    def unfinished_uploads(self) -> int:
        if self.s3 is None:
            return len(list((self.settings.spool_dir / "tmp").iterdir()))
        answer = self.s3.client().list_multipart_uploads(Bucket=self.bucket)
        return len(answer.get("Uploads", []))


@pytest.fixture(params=["local", "s3"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    if request.param == "local":
        return Backend("local", Settings(data_dir=tmp_path / "data"))  # type: ignore[call-arg]
    s3: MotoS3 = request.getfixturevalue("moto_server")
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        storage_url=f"s3://{bucket}/tenant",
        s3_endpoint_url=s3.endpoint,
    )
    return Backend("s3", settings, s3, bucket)


@pytest.fixture
def spool(backend: Backend) -> Iterator[SpoolBackend]:
    opened = backend.open()
    yield opened
    opened.close()


def _spool_in_pieces(spool: SpoolBackend, data: bytes, piece: int = 256 * 1024) -> str:
    async def scenario() -> str:
        writer = spool.writer()
        for start in range(0, len(data), piece):
            writer.write(data[start : start + piece])
        return await writer.commit()

    return asyncio.run(scenario())


@pytest.mark.parametrize("size", [0, 1000, 3 * MiB, 2 * PART + 12345])
def test_a_committed_file_reads_back_byte_for_byte(
    backend: Backend, spool: SpoolBackend, size: int
) -> None:
    data = os.urandom(size)
    name = _spool_in_pieces(spool, data)
    assert backend.stored() == [name]
    assert asyncio.run(spool.local(name)).read_bytes() == data
    assert backend.unfinished_uploads() == 0


@pytest.mark.parametrize("size", [1000, PART + 1])
def test_bytes_no_door_reads_back_are_read_back_by_a_worker(spool: SpoolBackend, size: int) -> None:
    data = os.urandom(size)

    async def scenario() -> bytes:
        writer = spool.writer(reread=False)  # an HTTP upload: no local copy needed
        writer.write(data)
        name = await writer.commit()
        return (await spool.local(name)).read_bytes()

    assert asyncio.run(scenario()) == data


def test_nothing_is_there_before_commit_nor_after_abort(
    backend: Backend, spool: SpoolBackend
) -> None:
    for size in (1000, 2 * PART + 1):
        writer = spool.writer()
        writer.write(os.urandom(size))
        assert backend.stored() == []
        writer.abort()
    spool.close()  # the aborts of multipart uploads run on the spool's threads
    assert backend.stored() == []
    assert backend.unfinished_uploads() == 0


def test_past_the_limit_the_writer_refuses_and_keeps_nothing(
    backend: Backend, spool: SpoolBackend
) -> None:
    writer = spool.writer(limit=PART + 10, code="upload.too_large")
    writer.write(os.urandom(PART))
    with pytest.raises(TooLarge):
        writer.write(os.urandom(11))
    spool.close()
    assert backend.stored() == [] and backend.unfinished_uploads() == 0


def test_put_bytes_adopt_and_remove(backend: Backend, spool: SpoolBackend) -> None:
    small = spool.put_bytes(b"meta")
    source = spool.scratch / "part"
    source.write_bytes(b"a part of a mail")
    adopted = asyncio.run(spool.adopt_async(source, "adopted-part"))
    assert adopted == "adopted-part" and not source.exists()
    assert backend.stored() == sorted([small, adopted])
    assert spool.local_sync(adopted).read_bytes() == b"a part of a mail"
    spool.remove(small)
    spool.remove(adopted)
    spool.close()
    assert backend.stored() == []


def test_recover_removes_only_what_no_row_names(backend: Backend, spool: SpoolBackend) -> None:
    kept = spool.put_bytes(b"a post names me")
    orphan = spool.put_bytes(b"my door died before its commit")
    young = spool.put_bytes(b"another node is committing me now")
    assert spool.recover({kept, young}, grace=3600) == []  # all too young to judge
    assert sorted(spool.recover({kept}, grace=0)) == sorted([orphan, young])
    assert backend.stored() == [kept]


def test_names_cannot_escape_the_spool(spool: SpoolBackend) -> None:
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            spool.path(bad)


# --- what only the object store gives: every node sees every spooled file ------------------------


@pytest.fixture
def s3_backend(backend: Backend) -> Backend:
    if backend.s3 is None:
        pytest.skip("a local spool is one node's")
    return backend


def test_another_node_reads_what_one_node_spooled(
    s3_backend: Backend, spool: SpoolBackend, tmp_path: Path
) -> None:
    data = os.urandom(PART + 5)
    name = _spool_in_pieces(spool, data)
    elsewhere = s3_backend.open(data_dir=tmp_path / "other-node")
    assert isinstance(elsewhere, S3Spool)
    assert not elsewhere.path(name).exists()
    assert asyncio.run(elsewhere.local(name)).read_bytes() == data
    elsewhere.remove(name)  # that node processed it: gone for every node
    elsewhere.close()
    assert s3_backend.stored() == []
    with pytest.raises(FileNotFoundError):
        (tmp_path / "third").mkdir()
        s3_backend.open(data_dir=tmp_path / "third").local_sync(name)


def test_a_node_whose_folder_is_gone_loses_nothing(
    s3_backend: Backend, spool: SpoolBackend
) -> None:
    name = _spool_in_pieces(spool, b"acknowledged")
    for leftover in spool.path(name).parent.parent.rglob("*"):
        if leftover.is_file():
            leftover.unlink()
    assert spool.local_sync(name).read_bytes() == b"acknowledged"


def test_copies_nobody_used_are_trimmed_and_fetched_again(
    s3_backend: Backend, spool: SpoolBackend
) -> None:
    old, fresh = spool.put_bytes(b"processed on another node"), spool.put_bytes(b"in use")
    long_ago = time.time() - 7200
    os.utime(spool.path(old), (long_ago, long_ago))
    assert spool.trim_cache(3600) == 1
    assert not spool.path(old).exists() and spool.path(fresh).exists()
    assert spool.local_sync(old).read_bytes() == b"processed on another node"


def test_a_store_out_of_reach_fails_the_commit_and_keeps_nothing(
    s3_backend: Backend, tmp_path: Path
) -> None:
    assert s3_backend.s3 is not None
    with TcpProxy(("127.0.0.1", s3_backend.s3.port)) as proxy:
        spool = s3_backend.open(endpoint=f"http://127.0.0.1:{proxy.port}")
        proxy.cut()

        async def scenario(size: int) -> None:
            writer = spool.writer()
            writer.write(os.urandom(size))
            await writer.commit()

        for size in (1000, PART + 1):
            with pytest.raises(StorageError) as failed:
                asyncio.run(scenario(size))
            assert failed.value.code == "storage.unavailable"
        proxy.restore()
        spool.close()
        assert s3_backend.stored() == []


def test_the_local_backend_is_the_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    opened = open_spool(settings, open_store(settings.storage_url, settings))
    assert isinstance(opened, Spool) and not isinstance(opened, S3Store)
