"""The one "reconnect needed" notice: a real ``relay serve`` mailing posts to a Threads channel
whose token Meta declares expired tells its user once, in the user's language, by the reply's
path (an aiosmtpd sink as the outbound server), however many posts then fail on it."""

from __future__ import annotations

import time

from tests.dnsserver import DkimKey, FakeDns
from tests.e2e.test_reply import Sink, _relay, fake_dns, key, sink  # noqa: F401 - fixtures
from tests.fakes.meta import FakeMeta
from tests.smtpclient import deliver, mail, queued

NOTICE_SUBJECT = "Anslut Threads igen: @kommunen"


def test_three_posts_to_a_dead_channel_make_one_mail(
    start_relay,
    sink: tuple[Sink, int],  # noqa: F811
    fake_dns: FakeDns,  # noqa: F811
    key: DkimKey,  # noqa: F811
) -> None:
    outbound, port = sink
    server = _relay(start_relay, port, fake_dns)
    anna = server.anna  # type: ignore[attr-defined]
    server.cli("user", "language", "anna", "sv")
    with FakeMeta() as meta:
        server.add_destination(
            "threads",
            meta.threads_url,
            meta.threads_token,
            f"threads_user_id={meta.threads_user_id}",
            "account=@kommunen",
        )
        meta.expire(meta.threads_token)
        post_ids = [
            queued(
                deliver(
                    server,
                    anna["address"],
                    key.sign(
                        mail(subject=f"Post {n}", message_id=f"{n}@example.org"), "example.org"
                    ),
                )
            )
            for n in range(3)
        ]
        for post_id in post_ids:
            [delivery] = server.wait_settled(anna["token"], post_id, 90)["deliveries"]
            assert delivery["status"] == "failed"
            assert delivery["error"]["code"] == "destination.reconnect_needed"
        outbound.wait(4)  # the three replies and the notice
        time.sleep(1.5)  # room for a wrong second notice to arrive too
    notices = [m for _, _, m in outbound.messages if not m["Subject"].startswith("Re: ")]
    assert [m["Subject"] for m in notices] == [NOTICE_SUBJECT]
    [notice] = notices
    assert notice["To"] == "anna@example.org" and notice["Auto-Submitted"] == "auto-generated"
    body = notice.get_body().get_content()
    assert "Reläet kan inte längre posta till Threads som @kommunen" in body
    assert f"{server.url}/channels" in body
    assert len(outbound.messages) == 4
