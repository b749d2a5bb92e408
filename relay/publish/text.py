"""Fitting a post's title, text and link into a network's length limit.

Every network counts differently: Mastodon counts grapheme clusters with each URL it recognises
as ``characters_reserved_per_url``; Bluesky counts grapheme clusters (at most 300) and UTF-8 bytes
(at most 3000) of the text as written. What they share is the shape of what the relay posts:
``title``, ``text`` and, last, the link to the post's page. The link is what the post is for, so
it is never cut: the words before it are, at a word boundary when one is near, with an ellipsis.

Grapheme clusters come from the ``regex`` module's ``\\X`` (Unicode extended grapheme clusters,
UAX #29): a family emoji joined by ZWJ, a flag, or a letter with combining accents is one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import regex

ELLIPSIS = "…"
SEPARATOR = "\n\n"

_GRAPHEME = regex.compile(r"\X")
# What a reader would take for a link: a scheme, then anything up to white space or an
# angle bracket or quote. Trailing punctuation is trimmed afterwards, as twitter-text (which
# Mastodon uses) leaves a sentence's full stop or closing bracket outside the link.
_URL = regex.compile(r"https?://[^\s<>\"']+", regex.IGNORECASE)
_TRAILING = ".,;:!?)]}'\"…"
# How far back from the cut a word boundary may be before the cut goes mid-word instead.
_WORD_WINDOW = 30


def graphemes(text: str) -> list[str]:
    return _GRAPHEME.findall(text)


def grapheme_len(text: str) -> int:
    return len(_GRAPHEME.findall(text))


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) code-point offsets of the URLs in ``text``, trailing punctuation left out."""
    spans = []
    for match in _URL.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in _TRAILING:
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def _shortened_by_mastodon(url: str) -> bool:
    """Whether Mastodon (twitter-text) sees ``url`` as a URL and counts it at the reserved
    length. twitter-text only extracts URLs whose host ends in a top-level domain: an address
    like ``http://127.0.0.1:8080/…`` or ``http://localhost/…`` counts letter by letter."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    labels = host.rstrip(".").split(".")
    if len(labels) < 2:
        return False
    tld = labels[-1]
    return len(tld) >= 2 and (tld.isalpha() or tld.startswith("xn--"))


def mastodon_length(text: str, url_chars: int = 23) -> int:
    """The length Mastodon's StatusLengthValidator gives ``text``: grapheme clusters, with every
    URL it recognises counted as ``url_chars``. Mentions of remote accounts (``@a@b``) are
    counted in full, which is more than Mastodon counts: never too little."""
    length = 0
    position = 0
    for start, end in url_spans(text):
        length += grapheme_len(text[position:start])
        url = text[start:end]
        length += url_chars if _shortened_by_mastodon(url) else grapheme_len(url)
        position = end
    return length + grapheme_len(text[position:])


def bluesky_fits(text: str, max_graphemes: int = 300, max_bytes: int = 3000) -> bool:
    """app.bsky.feed.post#text: ``maxGraphemes`` 300 and ``maxLength`` 3000 (UTF-8 bytes)."""
    return len(text.encode()) <= max_bytes and grapheme_len(text) <= max_graphemes


@dataclass(frozen=True, slots=True)
class Fitted:
    text: str
    link_start: int
    """Code-point offset of the link in ``text`` (``len(text)`` when there is no link)."""
    cut: bool

    @property
    def link_bytes(self) -> tuple[int, int]:
        """The link's UTF-8 byte range in ``text``, as Bluesky facets want it."""
        start = len(self.text[: self.link_start].encode())
        return start, len(self.text.encode())


def _join(parts: Sequence[str]) -> str:
    return SEPARATOR.join(p.strip() for p in parts if p and p.strip())


def _with_link(body: str, link: str) -> str:
    if not link:
        return body
    return f"{body}{SEPARATOR}{link}" if body else link


def _cut_point(body: str, clusters: list[str], count: int) -> int:
    """Code-point offset after ``count`` clusters, moved back to the start of a URL it would
    split (a cut link is a broken one) or to a nearby word boundary."""
    offset = sum(len(c) for c in clusters[:count])
    for start, end in url_spans(body):
        if start < offset < end:
            offset = start
            break
    else:
        window_start = max(0, offset - _WORD_WINDOW)
        space = max(body.rfind(" ", window_start, offset), body.rfind("\n", window_start, offset))
        if offset < len(body) and not body[offset].isspace() and space > 0:
            offset = space
    return offset


def fit(parts: Sequence[str], link: str, fits: Callable[[str], bool]) -> Fitted:
    """``parts`` (title, text…) joined by blank lines, then ``link``, cut so that ``fits``
    holds. ``fits`` must be monotonic: a shorter body never stops fitting. When not even the
    link alone fits, the link alone is returned: the network's refusal then says why."""
    body = _join(parts)
    whole = _with_link(body, link)
    if fits(whole):
        return Fitted(whole, len(whole) - len(link), cut=False)
    clusters = graphemes(body)

    def attempt(count: int) -> str:
        kept = body[: _cut_point(body, clusters, count)].rstrip()
        return _with_link(kept + ELLIPSIS, link) if kept else _with_link("", link)

    # The largest number of clusters that still fits, by bisection: O(log n) measurements.
    low, high = 0, len(clusters)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(attempt(middle)):
            low = middle
        else:
            high = middle - 1
    text = attempt(low)
    return Fitted(text, len(text) - len(link), cut=True)


def cut(text: str, max_graphemes: int) -> str:
    """``text`` cut to ``max_graphemes`` clusters (ellipsis included) at a word boundary near
    the cut; for fields without a link, such as a link card's description."""
    return fit([text], "", lambda s: grapheme_len(s) <= max_graphemes).text
