"""The reply: a user who turns it on (``relay user reply NAME --on``) gets an answer to each
mailed post, once the post is ready and each of its deliveries has an outcome, with the page link
and what each destination did.

Replies go only to a proven sender: SMTP AUTH as the address's owner, or a DKIM or SPF pass
aligned with the From domain (see ``relay.mail.sender``). Anyone can write any From line, so a
reply to an unproven one would be backscatter to whoever was forged. Bounces (a null envelope
sender) and automatic mail (Auto-Submitted, Precedence bulk/junk/list) are never answered, and
the reply says ``Auto-Submitted: auto-replied`` so another robot does not answer it.

Whether a message is to be answered is known only at the door, so the SMTP door enqueues a
``reply`` job with the post, held ``HOLD_SECONDS`` in the future; :func:`release` makes it due
once no delivery is pending (called where a post becomes ready and where a delivery's outcome is
recorded). If that is missed, the held job runs at its time anyway and waits for the deliveries
by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import Connection, select

from relay import jobs
from relay.config import Settings
from relay.db import Database
from relay.db.schema import deliveries, destinations, posts, users

# The held reply is part of the post's life: relay/lifecycle.py holds and releases it; the
# names stay importable from here.
from relay.lifecycle import HOLD_SECONDS, REPLY, hold, release

__all__ = ["HOLD_SECONDS", "REPLY", "Replier", "build_reply", "hold", "release", "reply_address"]
from relay.mail.replies import address
from relay.model import DeliveryStatus, PostState, PostStatus

log = logging.getLogger("relay.reply")

WAIT_SECONDS = 3600.0
"""When the held job finds deliveries still pending, it looks again this much later."""
SEND_SECONDS = 60.0


def reply_address(sender: str | None, auth_results: str | None, owner: str) -> str | None:
    """Where the reply goes, if the stored verdict proves ``sender``; else None."""
    from relay.mail.sender import aligned, domain_of, proven_by

    if not sender:
        return None
    users_ok, domains = proven_by(auth_results)
    if owner in users_ok:
        return sender
    from_domain = domain_of(sender)
    if any(aligned(domain, from_domain) for domain in domains):
        return sender
    return None


def reply_key(settings: Settings) -> bytes:
    """The key that signs the confirmation's ``Reply-To`` (``relay.mail.replies``)."""
    from relay.config import derive_key, secret_key
    from relay.mail.replies import PURPOSE

    return derive_key(secret_key(settings), PURPOSE)


def one_line(value: str, limit: int = 200) -> str:
    """Text from a message, fit for a header: controls (CR and LF among them) become spaces."""
    cleaned = "".join(" " if not ch.isprintable() else ch for ch in value)
    return " ".join(cleaned.split())[:limit]


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    kept = "".join(ch for ch in value if 33 <= ord(ch) <= 126 and ch not in "<>")[:250]
    return f"<{kept}>" if "@" in kept else None


def _delivery_status(_: Callable[[str], str], status: str) -> str:
    """A delivery's status in the reader's words (the codes are English words already)."""
    words = {
        "pending": _("pending"),
        "delivered": _("delivered"),
        "failed": _("failed"),
        "cancelled": _("cancelled"),
        "retracted": _("retracted"),
    }
    return words.get(str(status), str(status))


def build_reply(
    *,
    sender: str,
    to: str,
    title: str,
    message_id: str | None,
    page_url: str,
    outcomes: list[dict[str, Any]],
    domain: str,
    reply_to: str | None = None,
    draft: bool = False,
    lang: str = "en",
) -> EmailMessage:
    """The reply, its words in ``lang`` (the user's language, else the operator's default)."""
    # Imported here: the catalogues live with the web app, which imports much of the relay.
    from relay.web.app.i18n import translations

    _ = translations(lang).gettext
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address(addr_spec=sender)
    message["To"] = Address(addr_spec=to)
    title = one_line(title)
    message["Subject"] = "Re: " + (title or _("your post"))
    original = _message_id(message_id)
    if original:
        message["In-Reply-To"] = original
        message["References"] = original
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("reply", domain=domain)
    message["Auto-Submitted"] = "auto-replied"
    if reply_to:
        message["Reply-To"] = Address(addr_spec=reply_to)
    if draft:  # its page answers 404 to everyone until it is published
        lines = [_("Your post is saved as a draft: it is not public yet."), ""]
    else:
        lines = [_("Your post is online: {url}").format(url=page_url), ""]
    if outcomes:
        lines.append(_("Destinations:"))
        for outcome in outcomes:
            result = _delivery_status(_, outcome["status"])
            if outcome.get("remote_url"):
                result += f" {outcome['remote_url']}"
            elif outcome.get("error"):
                result += f" ({outcome['error']})"
            lines.append(f"- {outcome['type']} {outcome['id']}: {one_line(result, 500)}")
    else:
        lines.append(_("It goes to no destination (private, draft, or none set up)."))
    if reply_to:
        lines += [
            "",
            _(
                "Reply to this mail to change the post: your new text replaces its text\n"
                "([edit] in the subject replaces the title too); [delete] takes it down."
            ),
        ]
    message.set_content("\n".join(lines) + "\n")
    return message


def _load(conn: Connection, post_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(
            posts.c.id,
            posts.c.title,
            posts.c.status,
            posts.c.state,
            posts.c.sender,
            posts.c.message_id,
            posts.c.auth_results,
            users.c.name,
            users.c.reply_to_sender,
            users.c.language,
        )
        .join(users, users.c.id == posts.c.user_id)
        .where(posts.c.id == post_id)
    ).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["deliveries"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                deliveries.c.status,
                deliveries.c.remote_url,
                deliveries.c.error_message,
                deliveries.c.created_at,
                destinations.c.id,
                destinations.c.type,
            )
            .join(destinations, destinations.c.id == deliveries.c.destination_id)
            .where(deliveries.c.post_id == post_id)
            .order_by(deliveries.c.created_at)
        )
    ]
    return found


class Replier:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        page_url: Callable[[str], str],
        signing_key: bytes,
    ) -> None:
        self.db = db
        self.settings = settings
        self.page_url = page_url
        self.signing_key = signing_key  # reply_key(settings): read once, not per reply

    @property
    def sender(self) -> str:
        return sender_address(self.settings)

    async def run(self, job: jobs.Job) -> None:
        found = await self.db.read(_load, job.ref)
        if found is None:
            await self.db.run(jobs.complete, job)
            return
        # A scheduled post is answered once it went out, with what each channel did.
        waiting = (
            found["status"] != PostStatus.READY
            or found["state"] == "scheduled"
            or any(d["status"] == DeliveryStatus.PENDING for d in found["deliveries"])
        )
        if waiting:
            await self.db.run(jobs.postpone, job, WAIT_SECONDS)
            return
        if found["state"] == PostState.DELETED:  # taken down before we answered: nothing to say
            await self.db.run(jobs.complete, job)
            return
        to = reply_address(found["sender"], found["auth_results"], found["name"])
        if not found["reply_to_sender"] or to is None or not self.settings.outbound_smtp_host:
            if found["reply_to_sender"] and not self.settings.outbound_smtp_host:
                log.warning("post %s: no reply: RELAY_OUTBOUND_SMTP_HOST is not set", job.ref)
            await self.db.run(jobs.complete, job)
            return
        outcomes = [
            {
                "id": d["id"],
                "type": d["type"],
                "status": d["status"],
                "remote_url": d["remote_url"],
                "error": d["error_message"],
            }
            for d in found["deliveries"]
        ]
        try:
            message = build_reply(
                sender=self.sender,
                to=to,
                title=found["title"] or "",
                message_id=found["message_id"],
                page_url=self.page_url(found["id"]),
                outcomes=outcomes,
                domain=self.settings.mail_domain,
                reply_to=address(self.signing_key, found["id"], self.settings.mail_domain),
                draft=found["state"] == PostState.DRAFT,
                lang=found["language"] or self.settings.default_language,
            )
        except (ValueError, TypeError, IndexError) as exc:
            # An address the stdlib will not put in a header: nothing to retry.
            log.warning("post %s: no reply to %r: %s", job.ref, to, exc)
            await self.db.run(jobs.complete, job)
            return
        try:
            await self._send(message, to)
        except Exception as exc:
            if not permanent_refusal(exc):
                raise  # the queue retries with backoff
            log.warning("post %s: the outbound server refused the reply: %s", job.ref, exc)
        else:
            log.info("post %s: replied to the sender", job.ref)
        await self.db.run(jobs.complete, job)

    async def _send(self, message: EmailMessage, to: str) -> None:
        await send(self.settings, message, self.sender, to)

    def give_up(self, conn: Connection, job: jobs.Job, code: str, detail: str) -> None:
        # Nothing to record on the post: a reply is a courtesy, its loss only logged.
        log.warning("post %s: the reply could not be sent: %s", job.ref, detail[:300])


def sender_address(settings: Settings) -> str:
    """The From of the relay's own mail (replies, notices)."""
    return settings.reply_from or f"relay@{settings.mail_domain}"


async def send(settings: Settings, message: EmailMessage, sender: str, to: str) -> None:
    """One message through the outbound SMTP server (``RELAY_OUTBOUND_SMTP_*``)."""
    import aiosmtplib

    implicit = settings.outbound_smtp_port == 465
    await aiosmtplib.send(
        message,
        sender=sender,
        recipients=[to],
        hostname=settings.outbound_smtp_host,
        port=settings.outbound_smtp_port,
        username=settings.outbound_smtp_username or None,
        password=settings.outbound_smtp_password or None,
        use_tls=implicit,
        start_tls=False if implicit else settings.outbound_smtp_starttls,
        timeout=SEND_SECONDS,
    )


def permanent_refusal(exc: Exception) -> bool:
    """A 5xx from the outbound server: sending again gets the same answer."""
    import aiosmtplib

    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= r.code < 600 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 500 <= exc.code < 600
    return False
