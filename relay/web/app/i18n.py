"""The web app's languages: English (the source strings) and Swedish, from Babel catalogues.

The ``.po`` files under ``relay/web/locale/`` are the only form kept in git: they are compiled
to ``.mo`` in memory when the relay starts (a few milliseconds), so no build step can forget to
compile them and no stale binary catalogue can be committed. A language's catalogue is every
``.po`` file in its folder (``messages.po`` and one per room of the web app, such as
``upload.po``), read in name order into one; a message translated two ways in two files is
an error at start.
"""

from __future__ import annotations

import io
from functools import cache
from gettext import NullTranslations
from pathlib import Path

from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent.parent / "locale"
LANGUAGES = {"en": "English", "sv": "Svenska"}
LANG_COOKIE = "relay_lang"


@cache
def translations(lang: str) -> NullTranslations:
    files = sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po"))
    if lang == "en" or not files:
        return NullTranslations()
    catalog = None
    for po in files:
        with po.open("rb") as f:
            part = read_po(f, locale=lang)
        if catalog is None:
            catalog = part
            continue
        for message in part:
            if not message.id:
                continue  # the header
            known = catalog.get(message.id)
            if known is not None and known.string != message.string:
                # Two rooms translating one English string two ways: which one the reader
                # sees would depend on file order, so neither wins.
                raise ValueError(f"{po.name}: {message.id!r} is translated otherwise elsewhere")
            catalog[message.id] = message
    assert catalog is not None
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def _accepted(header: str) -> list[str]:
    """Languages of an Accept-Language header, most wanted first (q=0 means "not this")."""
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, n, tag.strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(request: web.Request, default: str) -> str:
    """The remembered choice (cookie), else the browser's first language we speak, else the
    operator's default."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    for tag in _accepted(request.headers.get("Accept-Language", "")):
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
        if primary in ("nb", "nn", "no", "da"):
            continue  # Scandinavian readers may prefer Swedish, but they did not ask for it
    return default


def load_all() -> None:
    """Compile every catalogue at start, so a broken ``.po`` stops the relay there."""
    for lang in LANGUAGES:
        translations(lang)
