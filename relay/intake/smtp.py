"""The SMTP door (aiosmtpd).

RCPT takes only live secret addresses of the mail domain: the relay is never an open relay. The
message is spooled durably and committed as a post before ``250 … queued as POST_ID``; if that
fails the reply is a temporary ``451`` so the sending server keeps the message and tries again.
"""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from relay import auth, metrics
from relay.db import Database, queries
from relay.errors import CATALOG
from relay.intake.accept import Acceptor
from relay.spool import Spool

log = logging.getLogger("relay.smtp")

UNKNOWN = CATALOG["smtp.unknown_recipient"].smtp_reply
TOO_MANY = CATALOG["smtp.too_many_recipients"].smtp_reply
TOO_LARGE = CATALOG["smtp.message_too_large"].smtp_reply
TEMPORARY = CATALOG["server.unavailable"].smtp_reply


class RelaySMTP(SMTP):
    """aiosmtpd's protocol, saying its size refusals with the enhanced code ``5.3.4``."""

    async def push(self, status: str) -> None:
        if status.startswith("552 Error"):
            status = TOO_LARGE
        await super().push(status)


class MailHandler:
    def __init__(self, db: Database, spool: Spool, acceptor: Acceptor, domain: str) -> None:
        self.db = db
        self.spool = spool
        self.acceptor = acceptor
        self.domain = domain

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        found = auth.split_address(address, self.domain)
        user_id = None
        if found is not None:
            try:
                user_id = await self.db.read(queries.user_for_address, found[0])
            except Exception:
                log.exception("address lookup failed")
                return TEMPORARY
        if user_id is None:
            metrics.smtp_recipients_refused.inc()
            return UNKNOWN
        owner = getattr(envelope, "relay_user", None)
        if owner is not None and owner != user_id:
            return TOO_MANY  # one message is one post of one user; the client sends again
        envelope.relay_user = user_id  # type: ignore[attr-defined]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        user_id: Any = getattr(envelope, "relay_user", None)
        content = envelope.original_content or b""
        writer = self.spool.writer()
        try:
            writer.write(content)
            name = await writer.commit()
        except Exception:
            writer.abort()
            log.exception("spooling a message failed")
            metrics.smtp_messages.labels("temporary_error").inc()
            return CATALOG["storage.unavailable"].smtp_reply
        try:
            post = await self.acceptor.accept(user_id, mail_spool_name=name, source="smtp")
        except Exception:
            self.spool.remove(name)
            log.exception("committing a message failed")
            metrics.smtp_messages.labels("temporary_error").inc()
            return TEMPORARY
        metrics.smtp_messages.labels("accepted").inc()
        metrics.accepted_bytes.labels("smtp").inc(len(content))
        return f"250 2.0.0 OK queued as {post.id}"


def smtp_factory(handler: MailHandler, max_bytes: int, hostname: str | None) -> RelaySMTP:
    return RelaySMTP(
        handler,
        data_size_limit=max_bytes,
        enable_SMTPUTF8=True,
        decode_data=False,
        hostname=hostname or None,
        ident="relay ESMTP",
    )
