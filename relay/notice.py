"""The one "reconnect needed" notice: when a channel's service first declares its sign-in dead
(an expired or revoked token, relay/publish/graph.py), the delivery that saw it flags the
destination and queues one ``notice.reconnect`` job in the same transaction
(``destinations.mark_reconnect_needed`` lets only the first flagging through). Later deliveries
to the flagged channel fail at once and queue nothing: the user hears of it once, not per post.

The mail goes by the reply's path (relay/reply.py): to the address the user last mailed a post
from, only when that sender was proven (SMTP AUTH, or DKIM/SPF aligned with its domain), the user
has replies on, and an outbound SMTP server is set. Otherwise the channels page, which shows
"Reconnect needed" with its button, is where the user learns of it. Its words are in the user's
language.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import Connection

from relay import jobs
from relay.config import Settings
from relay.db import Database, destinations, queries
from relay.reply import one_line, permanent_refusal, reply_address, send, sender_address

log = logging.getLogger("relay.notice")

RECONNECT_NOTICE = "notice.reconnect"
SENDERS_LOOKED_AT = 20
"""The user's newest mailed posts searched for a proven sender."""

SERVICES = {"facebook": "Facebook", "instagram": "Instagram", "threads": "Threads"}


def flag_and_notify(conn: Connection, destination_id: str, max_attempts: int = 5) -> bool:
    """Flag the destination "reconnect needed"; the first flagging queues the one notice."""
    if not destinations.mark_reconnect_needed(conn, destination_id):
        return False
    row = destinations.destination_row(conn, destination_id)
    owner = row["user_id"] if row is not None else None
    jobs.enqueue(conn, RECONNECT_NOTICE, destination_id, max_attempts, owner=owner)
    return True


def _load(conn: Connection, destination_id: str) -> dict[str, Any] | None:
    row = destinations.destination_row(conn, destination_id)
    if row is None:
        return None
    user = queries.reply_settings(conn, row["user_id"])
    if user is None:
        return None
    senders = queries.recent_senders(conn, row["user_id"], SENDERS_LOOKED_AT)
    to = next(
        (a for a in (reply_address(s, r, user.name) for s, r in senders) if a is not None), None
    )
    config = json.loads(row["config"] or "{}")
    return {
        "type": row["type"],
        "account": str(config.get("account") or row["id"]),
        "still_flagged": bool(row["active"]) and destinations.needs_reconnect(row),
        "reply_to_sender": user.reply_to_sender,
        "language": user.language,
        "to": to,
    }


def build_notice(
    *, sender: str, to: str, service: str, account: str, channels_url: str, domain: str, lang: str
) -> EmailMessage:
    from relay.web.app.i18n import translations

    _ = translations(lang).gettext
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address(addr_spec=sender)
    message["To"] = Address(addr_spec=to)
    names = {"service": service, "account": one_line(account)}
    message["Subject"] = _("Connect %(service)s again: %(account)s") % names
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("notice", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    lines = [
        _(
            "The relay can no longer post to %(service)s as %(account)s: %(service)s says the"
            " sign-in expired or was withdrawn."
        )
        % names,
        "",
        _("Until then, posts are not sent to this channel."),
        _("Open Channels in the relay and choose Connect again: %(url)s") % {"url": channels_url},
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


class Notices:
    """Runs ``notice.reconnect`` jobs; sends through the reply's outbound SMTP."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def reconnect(self, job: jobs.Job) -> None:
        found = await self.db.read(_load, job.ref)
        if found is None or not found["still_flagged"]:
            await self.db.run(jobs.complete, job)  # removed, or connected again meanwhile
            return
        to = found["to"]
        if not found["reply_to_sender"] or to is None or not self.settings.outbound_smtp_host:
            log.info("destination %s: reconnect needed; no proven address to tell", job.ref)
            await self.db.run(jobs.complete, job)
            return
        try:
            message = build_notice(
                sender=sender_address(self.settings),
                to=to,
                service=SERVICES.get(found["type"], found["type"]),
                account=found["account"],
                channels_url=self.settings.public_url.rstrip("/") + "/channels",
                domain=self.settings.mail_domain,
                lang=found["language"] or self.settings.default_language,
            )
        except (ValueError, TypeError, IndexError) as exc:
            log.warning("destination %s: no notice to %r: %s", job.ref, to, exc)
            await self.db.run(jobs.complete, job)
            return
        try:
            await send(self.settings, message, sender_address(self.settings), to)
        except Exception as exc:
            if not permanent_refusal(exc):
                raise  # the queue retries with backoff, then buries (give_up logs it)
            log.warning("destination %s: the outbound server refused the notice: %s", job.ref, exc)
        else:
            log.info("destination %s: told the user it needs connecting again", job.ref)
        await self.db.run(jobs.complete, job)

    def give_up(self, conn: Connection, job: jobs.Job, code: str, detail: str) -> None:
        log.warning("destination %s: the reconnect notice could not be sent: %s", job.ref, detail)
