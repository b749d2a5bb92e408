"""The relay's secret key (RELAY_SECRET_KEY or a key file made once) and the media links signed
with a key derived from it."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from relay.config import Settings, derive_key, secret_key
from relay.storage.media import MediaSigner, content_disposition, served_disposition


def _make_key(
    data_dir: str, start: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue
) -> None:
    start.wait()
    out.put(secret_key(Settings(data_dir=Path(data_dir))))


def test_key_file_is_made_once_private_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = secret_key(settings)
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and secret_key(settings) == first
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary left


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    count = 6
    start, out = ctx.Barrier(count), ctx.Queue()
    workers = [
        ctx.Process(target=_make_key, args=(str(tmp_path), start, out)) for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    keys = {out.get(timeout=60) for _ in workers}
    for worker in workers:
        worker.join(60)
    assert len(keys) == 1
    assert keys == {(tmp_path / "secret.key").read_bytes().strip()}


def test_the_setting_beats_the_file_and_must_be_long(tmp_path: Path) -> None:
    chosen = "x" * 40
    assert secret_key(Settings(data_dir=tmp_path, secret_key=chosen)) == chosen.encode()
    assert not (tmp_path / "secret.key").exists()
    with pytest.raises(ValueError, match="at least 16"):
        secret_key(Settings(data_dir=tmp_path, secret_key="short"))
    # an empty line in an env file means unset
    assert secret_key(Settings(data_dir=tmp_path, secret_key="")) == secret_key(
        Settings(data_dir=tmp_path)
    )


def test_subkeys_differ_by_purpose() -> None:
    assert derive_key(b"k" * 32, "media-url") != derive_key(b"k" * 32, "session")


def test_signed_links_check_key_expiry_and_signature() -> None:
    now = [1_000_000.0]
    signer = MediaSigner(lambda: b"k" * 32, 3600, clock=lambda: now[0])
    signed = signer.sign("post/item/large.jpg")
    left = signer.check("post/item/large.jpg", signed["expires"], signed["signature"])
    assert left is not None and 3600 <= left < 3600 + signer.step
    # stable for a while, so a browser can cache it
    now[0] += 10
    assert signer.sign("post/item/large.jpg") == signed
    assert signer.check("post/item/small.jpg", signed["expires"], signed["signature"]) is None
    assert signer.check("post/item/large.jpg", signed["expires"], "A" * 43) is None
    assert signer.check("post/item/large.jpg", None, signed["signature"]) is None
    assert signer.check("post/item/large.jpg", "-1", signed["signature"]) is None
    later = str(int(signed["expires"]) + 3600)
    assert signer.check("post/item/large.jpg", later, signed["signature"]) is None
    other = MediaSigner(lambda: b"j" * 32, 3600, clock=lambda: now[0])
    assert other.check("post/item/large.jpg", signed["expires"], signed["signature"]) is None
    now[0] += 3600 + signer.step
    assert signer.check("post/item/large.jpg", signed["expires"], signed["signature"]) is None


@pytest.mark.parametrize(
    ("mime", "expected"),
    [
        ("image/jpeg", "inline"),
        ("video/mp4", "inline"),
        ("audio/mp4", "inline"),
        ("application/pdf", "inline"),
        ("image/svg+xml", "attachment"),
        ("text/html", "attachment"),
        ("application/xml", "attachment"),
        ("application/octet-stream", "attachment"),
    ],
)
def test_disposition_by_type(mime: str, expected: str) -> None:
    assert content_disposition(mime) == expected
    assert content_disposition(mime, "a b.x").startswith(f'{expected}; filename="a b.x"')
    # whatever was stored, active content never goes out inline
    assert served_disposition(mime, 'inline; filename="x"') == f'{expected}; filename="x"'
    assert served_disposition(mime, None) == expected


def test_an_unusable_key_file_stops_the_store_check_with_what_to_fix(tmp_path: Path) -> None:
    import asyncio

    from relay.errors import StorageError
    from relay.storage import open_store

    (tmp_path / "secret.key").write_text("short\n")
    settings = Settings(data_dir=tmp_path, storage_url=f"file://{tmp_path / 'media'}")
    with pytest.raises(StorageError, match="RELAY_SECRET_KEY"):
        asyncio.run(open_store(settings.storage_url, settings).check())
