"""Cross-posting to LinkedIn: a real ``relay serve`` delivering to the strict LinkedIn fake
(tests/fakes/linkedin.py): a photo with its alt text, a PDF as a document post, an edit and a
delete on the post's own copy, a dead token turning the channel to "reconnect needed", and a
token near its end renewed with the refresh token before it is used."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from tests.fakes.life import delete, edit, wait_for
from tests.fakes.linkedin import ALL_SCOPES, FakeLinkedIn
from tests.media import blank_pdf
from tests.server import RelayServer, crossposting_relay


@pytest.fixture
def linkedin() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn() as fake:
        yield fake


def add_linkedin(server: RelayServer, fake: FakeLinkedIn, author: str, *extra: str) -> str:
    args = ["destination", "add", "--user", "anna", "--type", "linkedin", "--url", fake.url,
            "--token", fake.token, "--set", f"author={author}", *extra, "--json"]  # fmt: skip
    return str(json.loads(server.cli(*args).stdout)["id"])


def test_a_photo_with_alt_text_then_an_edit_then_a_delete(
    start_relay, linkedin: FakeLinkedIn
) -> None:
    server, token = crossposting_relay(start_relay)
    add_linkedin(server, linkedin, linkedin.person)
    post = server.upload(
        token, title="Torget (i dag)", text="Invigning kl. 10 #torget", alt="Två kor på torget"
    )
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert delivery["status"] == "delivered", delivery
    [copy] = linkedin.live()
    assert copy["shown"] == f"Torget (i dag)\n\nInvigning kl. 10 #torget\n\n{post['url']}"
    assert copy["kind"] == "image" and copy["author"] == linkedin.person
    [image] = copy["media"]
    assert image["altText"] == "Två kor på torget" and image["data"][:3] == b"\xff\xd8\xff"
    assert delivery["remote_url"] == f"https://www.linkedin.com/feed/update/{copy['id']}/"

    edit(server, token, post["id"], title="Torget [rättat]")
    wait_for(lambda: copy["revisions"] == 1, "the edit on LinkedIn")
    assert copy["shown"].startswith("Torget [rättat]\n\n")

    delete(server, token, post["id"])
    wait_for(lambda: linkedin.live() == [], "the post deleted on LinkedIn")
    assert len(linkedin.calls("posts.delete")) == 1


def test_a_mailed_pdf_becomes_a_document_post_on_a_page(
    start_relay, linkedin: FakeLinkedIn
) -> None:
    server = start_relay(RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
    anna = server.add_user("anna")
    add_linkedin(server, linkedin, linkedin.organization)
    pdf = blank_pdf(3)
    message = EmailMessage()
    message["From"] = "anna@example.se"
    message["To"] = anna["address"]
    message["Subject"] = "Protokoll från fullmäktige"
    message.set_content("Här är protokollet.")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="protokoll.pdf")
    post_id = server.send_mail(anna["address"], message.as_bytes())
    delivery = server.wait_delivery(anna["token"], post_id, timeout=90)
    assert delivery["status"] == "delivered", delivery
    [copy] = linkedin.live()
    assert copy["author"] == linkedin.organization and copy["kind"] == "document"
    assert copy["media"][0]["title"] == "Protokoll från fullmäktige"
    assert copy["media"][0]["data"] == pdf  # the PDF itself, not its preview picture
    assert copy["shown"].startswith("Protokoll från fullmäktige\n\nHär är protokollet.")


def test_a_pdf_over_300_pages_is_left_out_before_any_upload(
    start_relay, linkedin: FakeLinkedIn
) -> None:
    server, token = crossposting_relay(start_relay)
    add_linkedin(server, linkedin, linkedin.person)
    post = server.upload(
        token, file=("rapport.pdf", blank_pdf(301), "application/pdf"), title="Årsrapporten"
    )
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert delivery["status"] == "delivered", delivery
    [preview] = server.wait_settled(token, post["id"])["items"][0]["renditions"]
    assert (preview["name"], preview["pages"]) == ("preview", 301)
    [copy] = linkedin.live()
    assert copy["kind"] != "document" and post["url"] in copy["shown"]  # the page link instead
    assert linkedin.calls("documents.action") == [] and linkedin.calls("upload") == []


def test_an_expired_token_marks_the_channel_and_later_posts_fail_at_once(
    start_relay, linkedin: FakeLinkedIn
) -> None:
    server, token = crossposting_relay(start_relay)
    add_linkedin(server, linkedin, linkedin.person)
    linkedin.expire(linkedin.token)
    first = server.wait_delivery(token, server.upload(token, title="Torget")["id"], timeout=90)
    assert (first["status"], first["attempts"]) == ("failed", 1)
    assert first["error"]["code"] == "destination.reconnect_needed"
    assert "has expired" in first["error"]["message"]
    asked = len(linkedin.seen)

    second = server.upload(token, file=False, title="Igen")
    again = server.wait_delivery(token, second["id"], timeout=90)
    assert (again["status"], again["error"]["code"]) == ("failed", "destination.reconnect_needed")
    assert "choose Connect again" in again["error"]["message"]
    assert len(linkedin.seen) == asked and linkedin.live() == []


def test_a_token_near_its_end_is_renewed_with_the_refresh_token(
    start_relay, linkedin: FakeLinkedIn
) -> None:
    server = start_relay(
        RELAY_ALLOW_PRIVATE_DESTINATIONS="true",
        RELAY_LINKEDIN_CLIENT_ID=linkedin.client_id,
        RELAY_LINKEDIN_CLIENT_SECRET=linkedin.client_secret,
        RELAY_LINKEDIN_OAUTH_URL=linkedin.url,
    )
    token = server.add_user("anna")["token"]
    linkedin.refresh["AQXrefresh"] = set(ALL_SCOPES)
    ends_soon = int(time.time()) + 3 * 86400
    add_linkedin(
        server, linkedin, linkedin.person, "--secret", "AQXrefresh",
        "--set", f"token_expires_at={ends_soon}",
    )  # fmt: skip
    post = server.upload(token, file=False, title="Förnyat")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert delivery["status"] == "delivered", delivery
    [renewal] = linkedin.calls("oauth.token")
    assert "AQXrefresh" not in renewal.path
    [create] = linkedin.calls("posts.create")
    assert create.headers["Authorization"] != f"Bearer {linkedin.token}"
    assert create.headers["Authorization"][7:] in linkedin.tokens

    # renewed for 60 days: the next post does not renew again
    second = server.upload(token, file=False, title="Igen")
    assert server.wait_delivery(token, second["id"], timeout=90)["status"] == "delivered"
    assert len(linkedin.calls("oauth.token")) == 1
