"""The conformance suite every ``Store`` backend passes (add a backend to ``stores``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.storage import Store, valid_key
from relay.storage.local import LocalStore


@pytest.fixture(params=["local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield LocalStore(tmp_path / "media")


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
        assert (info.size, info.content_type) == (len(data), "image/jpeg")
        assert info.content_disposition == 'inline; filename="a.jpg"'
        assert info.cache_control == "public, max-age=60"
        assert await _read(store, "p/i/original.jpg") == data
        assert await _read(store, "p/i/original.jpg", 1000, 300_000) == data[1000:300_000]
        assert await _read(store, "p/i/original.jpg", len(data) - 5) == data[-5:]

    asyncio.run(scenario())
    assert src.read_bytes() == data  # the source is left alone


def test_overwrite_and_delete(store: Store, tmp_path: Path) -> None:
    async def scenario() -> None:
        await store.put_file("k/a.txt", _file(tmp_path, b"one", "1"), "text/plain")
        await store.put_file("k/a.txt", _file(tmp_path, b"second", "2"), "application/pdf")
        info = await store.stat("k/a.txt")
        assert (info.size, info.content_type) == (6, "application/pdf")
        assert await _read(store, "k/a.txt") == b"second"
        await store.delete("k/a.txt")
        assert await store.stat("k/a.txt") is None
        await store.delete("k/a.txt")  # deleting twice is fine

    asyncio.run(scenario())


def test_url_is_absolute_or_served_by_the_relay(store: Store, tmp_path: Path) -> None:
    url = store.url("p/i/small.jpg")
    assert url is None or url.startswith(("http://", "https://"))


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", "a/../b", ".meta/x", ""])
def test_keys_cannot_escape(key: str) -> None:
    with pytest.raises(ValueError):
        valid_key(key)
