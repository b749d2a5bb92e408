"""Commands written in a mail reach the post: tags, private, draft, alt text, [end]."""

from __future__ import annotations

import json
import time
from email.message import EmailMessage
from email.policy import SMTP

from tests.media import phone_jpeg
from tests.receivers import webhook_receiver
from tests.server import RelayServer


def command_mail(to: str, subject: str, text: str, photos: int = 1) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Anna Andersson <anna@example.se>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    for number in range(1, photos + 1):
        msg.add_attachment(
            phone_jpeg(640, 480),
            maintype="image",
            subtype="jpeg",
            filename=f"IMG_{number:04d}.jpeg",
        )
    return msg.as_bytes(policy=SMTP)


def test_commands_set_tags_private_and_alt_and_end_cuts_the_text(start_relay) -> None:
    server: RelayServer = start_relay(RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
    anna = server.add_user("anna")
    with webhook_receiver() as receiver:
        server.add_destination("webhook", receiver.url)
        text = (
            "#sommar ((tag: torget, musik)) [alt 1: Scenen] [private]\n"
            "Konserten på torget i kväll.\n"
            "[end]\n"
            "Det här är inte till för någon annan.\n"
        )
        post_id = server.send_mail(anna["address"], command_mail(anna["address"], "Konsert", text))
        post = server.wait_post(anna["token"], post_id)

        assert post["title"] == "Konsert"
        assert post["text"] == "#sommar\nKonserten på torget i kväll."
        assert "inte till för" not in json.dumps(post)
        assert post["tags"] == ["sommar", "torget", "musik"]
        assert (post["private"], post["draft"]) == (True, False)
        [item] = post["items"]
        assert (item["filename"], item["alt"], item["status"]) == (
            "IMG_0001.jpeg",
            "Scenen",
            "ready",
        )
        with server.client(anna["token"]) as client:
            fetched = client.get(f"/api/v1/items/{item['id']}").json()
        assert fetched["alt"] == "Scenen"

        # A public post with no commands is delivered; the private one above never was.
        public_id = server.send_mail(
            anna["address"], command_mail(anna["address"], "Öppen", "Hej", photos=0)
        )
        deadline = time.monotonic() + 30
        while not receiver.requests:
            assert time.monotonic() < deadline, "the public post was never delivered"
            time.sleep(0.1)
        delivered = [json.loads(r.body)["post"]["id"] for r in receiver.requests]
        assert delivered == [public_id]
        assert server.wait_post(anna["token"], post_id)["deliveries"] == []


def test_draft_in_the_subject_and_alt_texts_in_order(relay: RelayServer) -> None:
    anna = relay.anna
    raw = command_mail(
        anna["address"],
        "[draft] Fwd: Två bilder #Kväll",
        "[alt 2: Publiken] [alt: Scenen]\nTvå bilder från kvällen.",
        photos=2,
    )
    post = relay.wait_post(anna["token"], relay.send_mail(anna["address"], raw))
    assert post["title"] == "Två bilder #Kväll"
    assert post["text"] == "Två bilder från kvällen."
    assert (post["draft"], post["private"], post["tags"]) == (True, False, ["kväll"])
    assert [(i["filename"], i["alt"]) for i in post["items"]] == [
        ("IMG_0001.jpeg", "Scenen"),
        ("IMG_0002.jpeg", "Publiken"),
    ]


def test_a_private_address_stays_private_whatever_the_mail_says(relay: RelayServer) -> None:
    anna = relay.anna
    secret, domain = anna["address"].split("@")
    to = f"{secret}+private@{domain}"
    post_id = relay.send_mail(to, command_mail(to, "Bara text", "Inga kommandon #alls", photos=0))
    post = relay.wait_post(anna["token"], post_id)
    assert (post["private"], post["tags"], post["text"]) == (True, ["alls"], "Inga kommandon #alls")
