"""The one-post page's logic without a browser: each channel's preview comes from its adapter's
own text (cut where the channel has a limit), times typed in the user's zone, and the edit
form held to the API's limits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from multidict import MultiDict
from pydantic import ValidationError

from relay.publish import Destination, Media, Outgoing
from relay.publish.net import Http
from relay.publish.text import bluesky_fits, mastodon_length
from relay.web.app import post, preview

PAGE = "https://relay.example.org/p/abc"
LONG = " ".join(f"ord{n}" for n in range(400))


async def _nothing():  # pragma: no cover - media are never read by a preview
    yield b""


def _medium(item_id: str, kind: str = "image") -> Media:
    return Media(
        item_id, kind, "image/jpeg", 1000, f"{PAGE}/{item_id}.jpg", 640, 480, None, "", _nothing
    )


def _outgoing(text: str = LONG, media: list[Media] | None = None) -> Outgoing:
    return Outgoing("preview", "preview", 1, {}, PAGE, "Torget", text, media or [])


def _preview(kind: str, outgoing: Outgoing, url: str | None = None) -> preview.ChannelPreview:
    destination = Destination("d1", "u1", kind, url=url, token="t")

    async def run() -> preview.ChannelPreview:
        http = Http(allow_private=False)
        try:
            return await preview.channel_preview(destination, http, outgoing)
        finally:
            await http.close()

    return asyncio.run(run())


def test_mastodon_preview_is_cut_with_the_defaults_when_the_instance_does_not_answer() -> None:
    # 127.0.0.1 is refused (a private address): the limits cannot be read, the defaults stand.
    shown = _preview("mastodon", _outgoing(), "http://127.0.0.1:9")
    assert shown.defaults and shown.cut and shown.limit == 500
    assert shown.text.startswith("Torget\n\nord0 ord1")
    assert shown.text.endswith("…\n\n" + PAGE)
    assert mastodon_length(shown.text) <= 500


def test_short_text_goes_whole_and_media_are_chosen_by_the_adapter() -> None:
    media = [_medium(f"i{n}") for n in range(6)]
    shown = _preview("mastodon", _outgoing("Kort.", media), "http://127.0.0.1:9")
    assert not shown.cut
    assert shown.text == f"Torget\n\nKort.\n\n{PAGE}"
    assert shown.media == ["i0", "i1", "i2", "i3"]  # Mastodon takes four images


def test_bluesky_preview_fits_300_graphemes_and_falls_back_to_a_link_card() -> None:
    shown = _preview("bluesky", _outgoing())
    assert shown.cut and bluesky_fits(shown.text) and shown.text.endswith(PAGE)
    assert shown.link_card and shown.media == []
    with_photo = _preview("bluesky", _outgoing("Kort.", [_medium("i0")]))
    assert not with_photo.cut and not with_photo.link_card and with_photo.media == ["i0"]


def test_wordpress_micropub_and_webhook_get_the_whole_text() -> None:
    for kind in ("wordpress", "micropub", "webhook"):
        shown = _preview(kind, _outgoing(media=[_medium("i0")]), "https://example.org/")
        assert not shown.cut, kind
        assert LONG in shown.text and shown.text.endswith(PAGE), kind
        assert shown.media == ["i0"], kind


def test_a_time_typed_in_the_users_zone() -> None:
    zone = ZoneInfo("Europe/Stockholm")
    when = post.parse_local("2026-12-24T09:00", zone)
    assert when == datetime(2026, 12, 24, 8, 0, tzinfo=UTC).timestamp()
    summer = post.parse_local("2026-07-01T09:00", zone)
    assert summer == datetime(2026, 7, 1, 7, 0, tzinfo=UTC).timestamp()
    assert post.parse_local("tomorrow", zone) is None
    assert post.local_time(datetime(2026, 12, 24, 8, 0, tzinfo=UTC), zone) == "2026-12-24T09:00"
    assert post.zone_of("Not/AZone") == ZoneInfo("UTC")


def test_the_edit_form_becomes_a_lifecycle_change() -> None:
    form = MultiDict(
        title="  Torget ",
        text="Rad ett\r\nrad två",
        tags="torget, , invigning ",
        **{"alt-i1": " Folk på torget ", "alt-i2": ""},
    )
    change = post.edit_change(form, ["i1", "i2", "i3"])
    assert (change.title, change.text) == ("Torget", "Rad ett\nrad två")
    assert change.tags == ["torget", "invigning"]
    assert change.items == [("i1", "Folk på torget"), ("i2", None)]  # i3 was not in the form
    with pytest.raises(ValidationError):
        post.edit_change(MultiDict(title="x" * 1001), [])


def test_what_the_page_watches_for() -> None:
    pending = {"status": "ready", "deliveries": [{"status": "pending"}]}
    sent = {"status": "ready", "deliveries": [{"status": "delivered"}]}
    assert post._waiting({"status": "processing", "deliveries": []}, None) == "yes"
    assert post._waiting(pending, None) == "yes"
    assert post._waiting(sent, None) == "no"
    assert post._waiting(sent, "saved") == "settle"
    assert post._waiting({"status": "ready", "deliveries": []}, "saved") == "no"


def test_every_failure_has_plain_words_and_something_to_do() -> None:
    for code in (None, "media.unsupported", "media.corrupt", "media.too_long", "x"):
        problem, advice = post.item_problem(code, str)
        assert problem and advice
    codes = (None, "publish.unauthorized", "publish.rejected", "publish.cannot_retract")
    for code in codes:
        problem, advice = post.delivery_problem(code, str)
        assert problem and advice
