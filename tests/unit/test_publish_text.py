"""Text fitting for the networks: Mastodon's URL counting, Bluesky's graphemes and byte facets,
and Bluesky's record keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import regex

from relay.publish.bluesky import record_key, tid
from relay.publish.text import (
    ELLIPSIS,
    bluesky_fits,
    cut,
    fit,
    grapheme_len,
    graphemes,
    mastodon_length,
    url_spans,
)

FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # four people joined by ZWJ: one grapheme, 25 bytes
FLAGS = "🇸🇪🇫🇮"  # two regional-indicator pairs: two graphemes
LINK = "https://relay.example.org/p/k3zq7x2m4n5b6v7c8x9z"


def mastodon_fits(text: str) -> bool:
    return mastodon_length(text) <= 500


@pytest.mark.parametrize(
    ("text", "clusters"),
    [
        (FAMILY, 1),
        (FLAGS, 2),
        ("e\u0301", 1),  # e + combining acute
        ("👍🏽", 1),  # skin tone modifier
        ("❤️", 1),  # heart + variation selector 16
        ("åäö", 3),
        ("", 0),
    ],
)
def test_graphemes_are_user_perceived_characters(text: str, clusters: int) -> None:
    assert grapheme_len(text) == clusters


def test_mastodon_counts_each_url_as_23() -> None:
    long_url = "https://example.org/" + "a" * 80
    assert mastodon_length(f"se {long_url}") == 3 + 23
    assert mastodon_length("https://a.se") == 23  # shorter links count as 23 too
    assert mastodon_length(f"{long_url} och {long_url}") == 23 + 5 + 23
    # A sentence's full stop or a closing bracket is not part of the link.
    assert mastodon_length(f"({long_url}).") == 1 + 23 + 2
    # twitter-text knows no URL without a top-level domain: those count letter by letter.
    assert mastodon_length("http://127.0.0.1:8080/p/x") == len("http://127.0.0.1:8080/p/x")
    assert mastodon_length("http://localhost/p/x") == len("http://localhost/p/x")
    assert mastodon_length(f"{FAMILY} {FLAGS}") == 4


def test_url_spans_leave_trailing_punctuation_out() -> None:
    text = "Se https://example.org/a, och (http://x.se/b)."
    assert [text[s:e] for s, e in url_spans(text)] == ["https://example.org/a", "http://x.se/b"]


def test_short_text_is_kept_whole_with_the_link_last() -> None:
    fitted = fit(["Torget", "Invigningen i dag."], LINK, mastodon_fits)
    assert fitted.text == f"Torget\n\nInvigningen i dag.\n\n{LINK}"
    assert not fitted.cut and fitted.text[fitted.link_start :] == LINK


def test_empty_title_and_text_leave_the_link_alone() -> None:
    assert fit(["", "  "], LINK, mastodon_fits).text == LINK


def test_mastodon_text_is_cut_before_the_link_never_through_it() -> None:
    words = " ".join(f"ord{n}" for n in range(300))
    fitted = fit(["Rubrik", words], LINK, mastodon_fits)
    assert fitted.cut
    assert fitted.text.endswith(f"{ELLIPSIS}\n\n{LINK}")
    assert 490 <= mastodon_length(fitted.text) <= 500
    body = fitted.text[: -len(LINK) - 3]
    assert regex.fullmatch(r"Rubrik\n\n(ord\d+ )*ord\d+", body), "cut at a word boundary"


def test_mastodon_limit_uses_the_reserved_url_length_for_the_link() -> None:
    # The link is 52 characters but counts as 23: the body may use the difference.
    fitted = fit(["x" * 1000], LINK, mastodon_fits)
    assert mastodon_length(fitted.text) == 500
    assert len(fitted.text) == 500 - 23 + len(LINK)


def test_a_link_in_the_text_is_not_cut_in_two() -> None:
    inner = "https://example.org/" + "b" * 60
    text = "a " * 230 + inner + " slut"
    fitted = fit([text], LINK, lambda s: mastodon_length(s) <= 480)
    assert inner not in fitted.text and "https://example.org" not in fitted.text
    assert fitted.text.endswith(f"a{ELLIPSIS}\n\n{LINK}")


def test_bluesky_counts_graphemes_and_bytes() -> None:
    assert bluesky_fits("å" * 300) and not bluesky_fits("å" * 301)
    assert bluesky_fits(FAMILY * 120)  # 120 graphemes, 3000 bytes
    assert not bluesky_fits(FAMILY * 121)  # within 300 graphemes but over 3000 bytes


def test_bluesky_cut_keeps_emoji_whole_and_fits() -> None:
    fitted = fit(["Fest " + FAMILY * 150 + FLAGS * 100], LINK, bluesky_fits)
    assert bluesky_fits(fitted.text) and fitted.cut
    assert fitted.text.endswith(f"{ELLIPSIS}\n\n{LINK}")
    body = fitted.text[: fitted.link_start].removesuffix(f"{ELLIPSIS}\n\n")
    # Only whole ZWJ sequences are left: no dangling joiner, no half family.
    assert regex.fullmatch(rf"Fest (?:{FAMILY})*", body)


def test_bluesky_flags_are_never_split_into_single_indicators() -> None:
    fitted = fit([FLAGS * 200], LINK, bluesky_fits)
    body = fitted.text[: fitted.link_start].removesuffix(f"{ELLIPSIS}\n\n")
    assert (FLAGS * 200).startswith(body) and len(body) % 2 == 0
    assert all(len(flag) == 2 for flag in graphemes(body))  # two indicators each
    assert grapheme_len(fitted.text) <= 300


def test_facet_offsets_are_utf8_bytes_after_non_ascii_text() -> None:
    title = f"Bild från invigningen – åäö {FAMILY} {FLAGS}"
    fitted = fit([title, "Torget är öppet."], LINK, bluesky_fits)
    start, end = fitted.link_bytes
    encoded = fitted.text.encode()
    assert encoded[start:end] == LINK.encode() and end == len(encoded)
    assert start == len(f"{title}\n\nTorget är öppet.\n\n".encode())
    assert start > fitted.link_start  # bytes, not code points


def test_facet_offsets_after_a_cut_still_cover_the_link() -> None:
    fitted = fit(["Åäö " * 200 + FAMILY], LINK, bluesky_fits)
    start, end = fitted.link_bytes
    assert fitted.text.encode()[start:end].decode() == LINK


def test_cut_without_a_link() -> None:
    assert cut("kort", 300) == "kort"
    description = cut("ord " * 200, 50)
    assert description.endswith(ELLIPSIS) and grapheme_len(description) <= 50


def test_tid_encoding_matches_the_spec() -> None:
    assert tid(0, 0) == "2222222222222"
    assert tid(1724171495793000, 512) == "3l25zusnsfck2"  # @atcute/tid's example


def test_record_key_is_a_stable_tid_near_the_post_time() -> None:
    created = datetime(2026, 11, 25, 1, 0, 0, tzinfo=UTC)
    key = record_key("msg_abc", created)
    assert key == record_key("msg_abc", created)
    assert record_key("msg_abd", created) != key
    assert regex.fullmatch(r"[234567abcdefghij][234567a-z]{12}", key)
    value = 0
    for char in key:
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
    micros = value >> 10
    assert 0 <= micros - int(created.timestamp()) * 1_000_000 < 1_000_000
