"""A mailed ``[delay …]`` or ``[publish …]`` holds the post in the user's time zone; a time past
publishes at once; the record says the mail did it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tests.e2e.test_mail_commands import command_mail
from tests.e2e.test_post_life import delivered, events, wait_for
from tests.receivers import webhook_receiver
from tests.server import RelayServer


def test_delay_and_publish_in_the_users_zone(start_relay) -> None:
    server: RelayServer = start_relay(
        RELAY_ALLOW_PRIVATE_DESTINATIONS="true", RELAY_TIMEZONE="America/New_York"
    )
    anna = server.add_user("anna")
    server.add_user("berit")
    server.cli("user", "timezone", "anna", "Europe/Stockholm")
    assert server.cli("user", "timezone", "anna", "Mars/Olympus", check=False).returncode != 0
    with webhook_receiver() as receiver:
        server.add_destination("webhook", receiver.url)
        to = anna["address"]
        delayed = server.send_mail(to, command_mail(to, "Sen [delay 2h]", "Text"))
        dated = server.send_mail(to, command_mail(to, "Jul", "[publish 2030-12-24 09:00]\nGod jul"))
        past = server.send_mail(to, command_mail(to, "Redan", "[publish 2020-01-01 09:00]\nNu"))

        post = server.wait_post(anna["token"], delayed)
        assert post["state"] == "scheduled" and post["text"] == "Text"
        held_for = datetime.fromisoformat(post["publish_at"]).timestamp()
        created = datetime.fromisoformat(post["created_at"]).timestamp()
        assert abs(held_for - created - 7200) < 1
        assert post["deliveries"] == []

        post = server.wait_post(anna["token"], dated)
        at = datetime.fromisoformat(post["publish_at"])
        assert at == datetime(2030, 12, 24, 9, 0, tzinfo=ZoneInfo("Europe/Stockholm"))
        assert at.astimezone(UTC).hour == 8
        record = events(server, anna["token"], dated)
        assert [(e["kind"], e["door"]) for e in record] == [
            ("created", "mail"),
            ("scheduled", "mail"),
        ]
        assert record[1]["detail"]["zone"] == "Europe/Stockholm"

        wait_for(lambda: delivered(server, anna["token"], past), "the past time publishes now")
        assert server.wait_post(anna["token"], past)["state"] == "published"
        assert len(receiver.requests) == 1
