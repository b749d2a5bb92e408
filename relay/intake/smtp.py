"""The SMTP door (aiosmtpd).

RCPT takes only live secret addresses of the mail domain: the relay is never an open relay. The
message is spooled durably and committed as a post before ``250 … queued as POST_ID``; if that
fails the reply is a temporary ``451`` so the sending server keeps the message and tries again.
"""

from __future__ import annotations

import email.utils
import logging
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from relay import auth, metrics
from relay.db import Database, queries
from relay.errors import CATALOG
from relay.intake.accept import Acceptor
from relay.intake.smtpdata import CHUNK, DataReader
from relay.spool import Spool

log = logging.getLogger("relay.smtp")

UNKNOWN = CATALOG["smtp.unknown_recipient"].smtp_reply
TOO_MANY = CATALOG["smtp.too_many_recipients"].smtp_reply
TOO_LARGE = CATALOG["smtp.message_too_large"].smtp_reply
TEMPORARY = CATALOG["server.unavailable"].smtp_reply


class RelaySMTP(SMTP):
    """aiosmtpd's protocol with a DATA phase that streams into the spool in large chunks
    (``smtpdata.DataReader``), and size refusals said with the enhanced code ``5.3.4``."""

    event_handler: MailHandler

    async def push(self, status: str) -> None:
        if status.startswith("552 Error"):
            status = TOO_LARGE
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        writer = self.event_handler.spool.writer()
        writer.write(self._received_header())
        reader = DataReader(writer, self.data_size_limit)
        try:
            while not reader.done:
                chunk = await self._reader.read(CHUNK)
                if not chunk:  # the client went away mid-message: nothing was acknowledged
                    writer.abort()
                    return
                rest = reader.feed(chunk)
                if rest:
                    # A pipelining client's next commands: hand them back to the reader.
                    self._reader._buffer[:0] = rest  # noqa: SLF001
        except BaseException:
            writer.abort()
            raise
        if reader.too_large:
            writer.abort()
            self._set_post_data_state()
            await self.push(TOO_LARGE)
            return
        self.envelope.relay_writer = writer  # type: ignore[attr-defined]
        self.envelope.content = self.envelope.original_content = None
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _received_header(self) -> bytes:
        session = self.session
        helo = _header_safe(session.host_name or "unknown") if session else "unknown"
        peer = session.peer[0] if session and session.peer else "unknown"
        stamp = email.utils.format_datetime(datetime.now(UTC))
        return (
            f"Received: from {helo} ([{peer}])\r\n\tby {_header_safe(self.hostname)} (relay) "
            f"with ESMTP; {stamp}\r\n"
        ).encode("utf-8", "replace")


def _header_safe(value: str) -> str:
    return "".join(c for c in value if c.isprintable() and c not in "()[];\\")[:200]


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
        writer = getattr(envelope, "relay_writer", None)
        if writer is None:  # aiosmtpd's own DATA phase (not used by RelaySMTP)
            writer = self.spool.writer()
            writer.write(envelope.original_content or b"")
        try:
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
        metrics.accepted_bytes.labels("smtp").inc(writer.size)
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
