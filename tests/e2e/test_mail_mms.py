"""Carrier gateway mail through a real ``relay serve``: the post shows only what the sender
sent (no gateway title, template lines, banners, logos or spacers), and the media work."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.server import RelayServer

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "mail"
# What each gateway's template says; none of it may reach the post's page.
TEMPLATE_WORDS = ("You have received", "received an MMS", "Vodafone", "graphical email",
                  "free to reply", "MMS from 3", "Vous avez", "multimedia message")  # fmt: skip


def ONE_IMAGE(name: str) -> list[tuple[str, str]]:  # noqa: N802 - reads as a table entry
    return [(name, "image")]


@pytest.mark.parametrize(
    ("name", "title", "text", "items"),
    [
        ("mms-three.eml", "", "Picnic by the river, everyone made it", [("26062025.jpg", "image")]),
        (
            "mms-vodafone.eml",
            "Kvällsdopp",
            "Vattnet var varmare än väntat!",
            [("Bad.jpg", "image")],
        ),
        ("mms-nokia.eml", "", "", ONE_IMAGE("jalwapam.gif")),
        ("mms-smil-html.eml", "", "Ferry to the islands", ONE_IMAGE("top.jpg")),
    ],
)
def test_gateway_mail_becomes_the_senders_post(
    relay: RelayServer, name: str, title: str, text: str, items: list[tuple[str, str]]
) -> None:
    anna = relay.anna
    raw = (CORPUS / name).read_bytes()
    post_id = relay.send_mail(anna["address"], raw, sender="4670123456@mms.example.net")
    post = relay.wait_post(anna["token"], post_id)
    assert (post["title"], post["text"]) == (title, text)
    assert [(i["filename"], i["kind"]) for i in post["items"]] == items
    for item in post["items"]:
        assert (item["status"], item["error"]) == ("ready", None)
        assert httpx.get(item["original"]["url"]).status_code == 200
    page = httpx.get(post["url"])
    assert page.status_code == 200
    assert not [words for words in TEMPLATE_WORDS if words.lower() in page.text.lower()]
