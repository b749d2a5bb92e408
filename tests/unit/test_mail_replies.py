"""The signed reply address and the reading of a reply (relay/mail/replies.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.mail.replies import address, new_text, post_of, read_reply

KEY = b"k" * 32
DOMAIN = "relay.localhost"


def test_the_address_names_its_post_and_nothing_else() -> None:
    signed = address(KEY, "abc234", DOMAIN)
    assert signed.startswith("reply+abc234.") and len(signed.split("@")[0]) == 13 + 16
    assert post_of(signed, KEY, DOMAIN) == "abc234"
    assert post_of(f"<{signed.upper()}>", KEY, DOMAIN) == "abc234"  # case folded on the way
    local, _, _ = signed.partition("@")
    sig = local.rsplit(".", 1)[1]
    for forged in (
        f"reply+abc235.{sig}@{DOMAIN}",  # another post, same signature
        f"reply+abc234.{sig[:-1]}@{DOMAIN}",  # cut short
        f"reply+abc234@{DOMAIN}",
        f"reply+abc234.{sig}@other.example",
        f"reply+ab.c234.{sig}@{DOMAIN}",
    ):
        assert post_of(forged, KEY, DOMAIN) is None, forged
    assert post_of(signed, b"x" * 32, DOMAIN) is None  # another relay's key


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("New words.\n\n> Your post is online\n> [delete]", "New words."),
        (
            "Top.\n\nOn Mon, 2 Jun 2025 at 10:05, Relay <posts@relay.localhost>\nwrote:\n> x",
            "Top.",
        ),
        ("Ny text.\n\nDen 2 juni 2025 10:05 skrev Relay <posts@relay.localhost>:\n> x", "Ny text."),
        ("Neu.\n\nAm 02.06.2025 um 10:05 schrieb Relay:\n> x", "Neu."),
        ("Fixed.\n\n-----Original Message-----\nFrom: Relay\nSent: today\n\nold", "Fixed."),
        ("Fixed.\n\n________________________________\nFrom: Relay\nSent: today\nold", "Fixed."),
        ("Fixed.\n\nFrom: Relay <posts@relay.localhost>\nSent: Monday\nTo: Anna\nold", "Fixed."),
        ("Line one\nline two\n\n-- \nAnna\n\nOn Mon, Relay wrote:\n> x", "Line one\nline two"),
        ("Only words.\n\nSent from my iPhone", "Only words."),
        ("On the square today.\nIt rained.", "On the square today.\nIt rained."),
    ],
)
def test_the_reply_s_own_words(body: str, expected: str) -> None:
    assert new_text(body) == expected


def test_commands_in_subject_or_text(tmp_path: Path) -> None:
    raw = (
        b"From: Anna <anna@example.org>\r\nSubject: SV: Re: [edit] Better title\r\n\r\n"
        b"Corrected.\r\n\r\nOn Mon, Relay wrote:\r\n> [delete]\r\n"
    )
    path = tmp_path / "m"
    path.write_bytes(raw)
    reply = read_reply(str(path))
    assert reply is not None
    assert (reply.sender, reply.title, reply.text) == (
        "anna@example.org",
        "Better title",
        "Corrected.",
    )
    assert reply.edit and not reply.delete  # a [delete] in the quote is not the sender's word
    path.write_bytes(raw.replace(b"Corrected.", b"[ Delete ]"))
    reply = read_reply(str(path))
    assert reply is not None and reply.delete and reply.text == ""
