"""Attachments decode exactly as the stdlib decodes them, through the faster decoder where it
agrees (relay/mail/parse.py ``_base64``), whatever a sender's mail program wrote."""

from __future__ import annotations

import base64
import binascii
import random

import pytest

from relay.mail.parse import _base64

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
NOISE = [b"\r\n", b" ", b"=", b"==", b"\x00", b"-", b"_", b"\xff", b"A", b"\n", b"\t"]


def _outcome(decode, body: bytes) -> tuple[str, bytes | str]:  # noqa: ANN001
    try:
        return "decoded", decode(body)
    except binascii.Error as exc:
        return "refused", type(exc).__name__


def _bodies(count: int) -> list[bytes]:
    rng = random.Random(17)
    bodies = []
    for _ in range(count):
        if rng.random() < 0.5:  # a real encoding, then bytes a broken mailer might add
            body = bytearray(base64.b64encode(rng.randbytes(rng.randint(0, 90))))
            for _ in range(rng.randint(0, 4)):
                at = rng.randint(0, len(body))
                body[at:at] = rng.choice(NOISE)
            bodies.append(bytes(body))
        else:  # anything at all from the alphabet, padding and line breaks
            pool = ALPHABET + b"=\r\n -_\x80\t"
            bodies.append(bytes(rng.choice(pool) for _ in range(rng.randint(0, 30))))
    return bodies


def test_every_body_decodes_as_the_stdlib_decodes_it() -> None:
    for body in _bodies(20_000):
        assert _outcome(_base64, body) == _outcome(binascii.a2b_base64, body), body


@pytest.mark.parametrize(
    "body",
    [
        b"QUJD\r\nREVG\r\n",  # lines as mail programs write them
        b"QUI=\r\n",  # padded at the end
        b"QUI=Q0Q=\r\n",  # two encodings run together: the stdlib stops at the first padding
        b"QUJD==REVG",  # padding in the middle
    ],
)
def test_bodies_with_and_without_padding_inside(body: bytes) -> None:
    assert _base64(body) == binascii.a2b_base64(body)


def test_a_phone_photo_decodes_to_its_bytes() -> None:
    photo = random.Random(3).randbytes(3_000_000)
    encoded = base64.encodebytes(photo).replace(b"\n", b"\r\n")
    assert _base64(encoded) == photo
