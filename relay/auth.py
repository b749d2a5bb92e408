"""Ids, API tokens and secret addresses.

Tokens and secret addresses carry 160 random bits; the database keeps only their SHA-256, so a
leaked database does not leak a way in. A lookup goes by hash (a keyed index cannot leak the
secret through timing) and the found hash is compared again in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_PREFIX = "rly_"


def new_id() -> str:
    """A short, URL-safe, unguessable id (100 bits, lowercase base32)."""
    return base64.b32encode(secrets.token_bytes(15)).decode().lower().rstrip("=")[:20]


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(20)


def new_address_secret() -> str:
    # Lowercase base32 survives mail clients that fold the local part's case.
    return base64.b32encode(secrets.token_bytes(20)).decode().lower()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hint(secret: str) -> str:
    return secret[:8] if not secret.startswith(TOKEN_PREFIX) else secret[: len(TOKEN_PREFIX) + 4]


def split_address(address: str, domain: str) -> tuple[str, str | None] | None:
    """``SECRET[+MODE]@DOMAIN`` → (secret, mode), or None when it is not one of ours."""
    local, at, dom = address.strip().strip("<>").rpartition("@")
    if not at or dom.lower().rstrip(".") != domain or not local:
        return None
    secret, plus, mode = local.lower().partition("+")
    return secret, (mode or None) if plus else None
