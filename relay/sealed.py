"""Secrets sealed at rest: AES-256-GCM under a key derived from ``RELAY_SECRET_KEY``.

A sealed value is text, ``v1:`` + base64url(nonce + ciphertext + tag), so it fits the text
columns the clear value lived in. Each is sealed to a context (which row, which field), given as
associated data: a sealed token copied into another row, or into another field, does not open.
A value without the prefix is clear text from before sealing (relay/db/destinations.py seals
those at start).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relay.config import Settings, derive_key, secret_key

PREFIX = "v1:"
_NONCE_BYTES = 12  # GCM's standard nonce; random per seal (2^32 seals per key stay safe)
_TAG_BYTES = 16


class Unreadable(Exception):
    """A sealed value that does not open: another key, another row, or altered."""


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


class Sealer:
    PURPOSE = "channel-secrets"

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a sealing key is 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    @classmethod
    def from_master(cls, master: bytes) -> Sealer:
        return cls(derive_key(master, cls.PURPOSE))

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer:
        """The relay's sealer: every process that opens the database makes the same one."""
        return cls.from_master(secret_key(settings))

    def seal(self, value: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, value: str, context: str) -> str:
        """The clear text of a sealed ``value``; raises ``Unreadable``, never says more (the
        reason is always one of the three in its docstring, and a value is never echoed)."""
        if not is_sealed(value):
            raise Unreadable("not a sealed value")
        try:
            encoded = value[len(PREFIX) :].encode("ascii")
            raw = base64.b64decode(encoded, altchars=b"-_", validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise Unreadable("damaged") from None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise Unreadable("damaged")
        try:
            clear = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise Unreadable("does not open with this key here") from None
        return clear.decode()
