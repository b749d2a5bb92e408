"""The reply to a sender: who gets one, and nothing from the message breaks out of its header."""

from __future__ import annotations

from email import message_from_bytes, policy

from relay.reply import build_reply, reply_address

VERDICT = "relay.example; dkim=pass header.d=example.org header.s=sel"


def test_only_a_proven_sender_is_answered() -> None:
    assert reply_address("anna@example.org", VERDICT, "anna") == "anna@example.org"
    assert reply_address("anna@mail.example.org", VERDICT, "anna") == "anna@mail.example.org"
    assert reply_address("victim@elsewhere.example", VERDICT, "anna") is None
    failed = "relay.example; dkim=fail header.d=example.org"
    assert reply_address("anna@example.org", failed, "anna") is None
    assert reply_address("anna@example.org", "relay.example; none", "anna") is None
    assert reply_address("x@y.example", "relay.example; auth=pass smtp.auth=anna", "anna")
    assert reply_address("x@y.example", "relay.example; auth=pass smtp.auth=bob", "anna") is None
    assert reply_address(None, VERDICT, "anna") is None


def test_a_hostile_subject_and_message_id_stay_in_their_headers() -> None:
    message = build_reply(
        sender="relay@relay.example",
        to="anna@example.org",
        title="Hi\r\nBcc: victim@example.org\r\n\r\nInjected body",
        message_id="abc@example.org>\r\nBcc: victim2@example.org",
        page_url="http://relay.example/p/abc",
        outcomes=[
            {
                "id": "d1",
                "type": "webhook",
                "status": "failed",
                "remote_url": None,
                "error": "refused\r\nBcc: x@example.org",
            }
        ],
        domain="relay.example",
    )
    raw = message.as_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Re: Hi Bcc: victim@example.org Injected body"
    assert parsed["In-Reply-To"] == "<abc@example.orgBcc:victim2@example.org>"
    assert parsed["References"] == parsed["In-Reply-To"]
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert [str(a.addr_spec) for a in parsed["To"].addresses] == ["anna@example.org"]
    body = parsed.get_body().get_content()
    assert "http://relay.example/p/abc" in body
    assert "webhook d1: failed (refused Bcc: x@example.org)" in body
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(not line.lower().startswith(b"bcc") for line in head.split(b"\r\n"))


def test_a_post_without_title_or_destinations() -> None:
    message = build_reply(
        sender="relay@relay.example",
        to="anna@example.org",
        title="",
        message_id=None,
        page_url="http://relay.example/p/abc",
        outcomes=[],
        domain="relay.example",
    )
    assert message["Subject"] == "Re: your post"
    assert message["In-Reply-To"] is None
    assert "no destination" in message.get_content()


def test_a_draft_is_not_called_online() -> None:
    """A draft's page answers 404 to everyone: the reply must not send its sender there."""
    message = build_reply(
        sender="relay@relay.example",
        to="anna@example.org",
        title="Plans",
        message_id=None,
        page_url="http://relay.example/p/abc",
        outcomes=[],
        domain="relay.example",
        draft=True,
    )
    body = message.get_content()
    assert "draft" in body and "not public" in body
    assert "online" not in body and "http://relay.example/p/abc" not in body


def test_the_reply_speaks_the_users_language() -> None:
    """A user whose language is Swedish reads the reply in Swedish; the codes and links stay."""
    outcomes = [
        {"id": "d1", "type": "mastodon", "status": "delivered", "remote_url": "https://m/1"},
        {"id": "d2", "type": "webhook", "status": "failed", "remote_url": None, "error": "503"},
    ]
    common = {
        "sender": "relay@relay.example",
        "to": "anna@example.org",
        "message_id": None,
        "page_url": "http://relay.example/p/abc",
        "outcomes": outcomes,
        "domain": "relay.example",
        "reply_to": "reply+abc.sig@relay.example",
    }
    swedish = build_reply(title="", lang="sv", **common)
    assert swedish["Subject"] == "Re: ditt inlägg"
    body = swedish.get_content()
    assert "Ditt inlägg är publicerat: http://relay.example/p/abc" in body
    assert "- mastodon d1: levererat https://m/1" in body
    assert "- webhook d2: misslyckades (503)" in body
    assert "Svara på det här mejlet" in body and "[delete]" in body
    assert "Your post" not in body

    english = build_reply(title="", **common).get_content()
    assert "Your post is online: http://relay.example/p/abc" in english
    assert "- webhook d2: failed (503)" in english
