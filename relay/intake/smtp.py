"""The SMTP door (aiosmtpd).

RCPT takes only live secret addresses of the mail domain: the relay is never an open relay. The
message is spooled durably and committed as a post before ``250 … queued as POST_ID``; if that
fails the reply is a temporary ``451`` so the sending server keeps the message and tries again.

At the end of DATA, in order: a message that passed more than ``MAX_HOPS`` servers is refused
(a loop); the address's sender policy is checked (``relay.mail.sender``); a message this user
already posted (same bytes, same Message-ID) answers with the existing post's id.

Guessing secret addresses is made slow: each unknown recipient (and each failed AUTH) is answered
after a delay that doubles with the client IP's recent failures, a connection ends with ``421``
after ``max_failures`` of them, and an IP with many failures in the last hour gets ``421`` at its
first one. The memory is per process: on several nodes, each keeps its own.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import functools
import hashlib
import logging
import re
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from relay import auth, metrics
from relay.db import Database, queries
from relay.db.destinations import list_destinations
from relay.errors import CATALOG, StorageError
from relay.intake.accept import Acceptor, AlreadyAccepted, MailMeta, mail_digest
from relay.intake.smtpdata import CHUNK, DataReader
from relay.mail import replies, sender
from relay.mail.facts import ADDR_SPEC, HeaderFacts, scan_headers
from relay.spool import SpoolBackend

log = logging.getLogger("relay.smtp")
AIOSMTPD_LOG = "mail.log"
"""aiosmtpd's logger: at INFO it writes every command line (``RCPT TO:<SECRET@…>``) and every
recipient, at DEBUG each line of an AUTH exchange (base64 of the user name and token)."""

UNKNOWN = CATALOG["smtp.unknown_recipient"].smtp_reply
TOO_MANY = CATALOG["smtp.too_many_recipients"].smtp_reply
TOO_LARGE = CATALOG["smtp.message_too_large"].smtp_reply
TEMPORARY = CATALOG["server.unavailable"].smtp_reply
SENDER_REFUSED = CATALOG["smtp.sender_refused"].smtp_reply
TOO_MANY_HOPS = CATALOG["smtp.too_many_hops"].smtp_reply
TOO_MANY_UNKNOWN = CATALOG["smtp.too_many_unknown_recipients"].smtp_reply
TOO_MANY_LOGINS = CATALOG["smtp.too_many_auth_failures"].smtp_reply
BAD_LOGIN = "535 5.7.8 Authentication credentials invalid"
NO_SPACE = CATALOG["storage.full"].smtp_reply
STORAGE_FAILED = CATALOG["storage.unavailable"].smtp_reply
CLOSING = CATALOG["smtp.closing"].smtp_reply
TOO_MANY_CONNECTIONS = CATALOG["smtp.too_many_connections"].smtp_reply

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Errors that say the disk (or the process's share of it) is full: space may come back."""


def spool_failure(error: BaseException) -> str:
    """The temporary answer to a message the spool could not take: ``452 4.3.1`` when the disk
    is full, ``451 4.3.0`` for any other failure. Never 5xx: the sender would bounce a message
    for a condition that passes."""
    if isinstance(error, OSError) and error.errno in _FULL:
        return NO_SPACE
    return STORAGE_FAILED


MAX_HOPS = 30
"""Received fields a message may carry; more is a loop (RFC 5321 6.3)."""
MAX_DELAY = 10.0
"""The longest wait before a failing answer."""
IP_FAILURES = 4
"""Times ``max_failures`` one IP may fail within ``FailureGuard.window`` before each of its
connections ends at its first failure."""

# Commands per connection (aiosmtpd answers ``421`` and closes past them). A server delivering
# a queue reuses one connection for many messages (Postfix up to 100, Exim 500), so the
# transaction commands get room for that; everything else (HELP, VRFY, STARTTLS, …) gets 20.
CALL_LIMITS = {
    "*": 20,
    "EHLO": 1000,
    "HELO": 1000,
    "MAIL": 1000,
    "RCPT": 1000,
    "DATA": 1000,
    "RSET": 1000,
    "NOOP": 100,
    "AUTH": 10,
}


class FailureGuard:
    """What the door remembers per client IP, in memory: failed RCPTs and logins over the last
    ``window`` seconds, and connections open now (at most ``max_connections`` each: the RCPT
    throttle counts per connection too, and many connections at once would go around it)."""

    def __init__(
        self, window: float = 3600.0, max_entries: int = 10_000, max_connections: int = 20
    ) -> None:
        self.window = window
        self.max_entries = max_entries
        self.max_connections = max_connections
        self._seen: dict[str, tuple[int, float]] = {}
        self._open: dict[str, int] = {}

    def connect(self, ip: str) -> bool:
        """Count a new connection from ``ip``; False (and not counted) past the limit."""
        count = self._open.get(ip, 0)
        if count >= self.max_connections:
            return False
        self._open[ip] = count + 1
        return True

    def disconnect(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)  # an IP with nothing open takes no memory

    def count(self, ip: str) -> int:
        count, last = self._seen.get(ip, (0, 0.0))
        return count if time.monotonic() - last < self.window else 0

    def add(self, ip: str) -> int:
        count = self.count(ip) + 1
        self._seen[ip] = (count, time.monotonic())
        if len(self._seen) > self.max_entries:
            self._trim()
        return count

    def _trim(self) -> None:
        # A flood of addresses must not grow the map without bound: forget the quietest tenth.
        by_age = sorted(self._seen.items(), key=lambda entry: entry[1][1])
        for ip, _ in by_age[: max(1, len(by_age) // 10)]:
            del self._seen[ip]


def _hidden(local: str) -> str:
    """A stand-in for an address's local part: a hash prefix, so lines about one address can
    still be told apart, and nothing that could be used to post."""
    return "#" + hashlib.sha256(local.encode("utf-8", "surrogateescape")).hexdigest()[:8]


_HIDDEN = re.compile(r"#[0-9a-f]{8}")
_RCPT_ARGUMENT = re.compile(r"(?i)(\bRCPT\s+TO:)(.*)")
_ADDRESS = re.compile(r"(\"[^\"]*\"|[^\s<>()\[\],;:'\"@\\]+)@")


def _mask_rcpt(match: re.Match[str]) -> str:
    # Everything before the last "@" of the argument, quoted local parts and all.
    argument = match.group(2)
    local, at, rest = argument.rpartition("@")
    if not at:
        bare = argument.strip()
        return match[0] if _HIDDEN.fullmatch(bare) else f"{match.group(1)}{_hidden(bare)}"
    bare = local.lstrip(" <")
    if _HIDDEN.fullmatch(bare):
        return match[0]  # masked already
    return f"{match.group(1)}{local[: len(local) - len(bare)]}{_hidden(bare)}@{rest}"


def mask_addresses(text: str) -> str:
    """``text`` with the local part of every address in it replaced by ``_hidden``: a secret
    address is the credential to post. Senders' addresses go the same way (personal data,
    and the one rule cannot miss a recipient whatever line aiosmtpd writes it in)."""
    text = _RCPT_ARGUMENT.sub(_mask_rcpt, text)
    return _ADDRESS.sub(
        lambda m: m[0] if _HIDDEN.fullmatch(m.group(1)) else f"{_hidden(m.group(1))}@", text
    )


class SecretFilter(logging.Filter):
    """Rewrites log records of the SMTP door so that no secret address and no AUTH credential
    reaches a log, at any level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.funcName == "challenge_auth" and record.levelno < logging.WARNING:
            # The client's answers to an AUTH challenge: the user name and the token, base64.
            record.msg, record.args = "AUTH exchange (credentials not logged)", ()
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the logging module's to report
            return True
        masked = mask_addresses(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


for _name in (AIOSMTPD_LOG, log.name):
    # Filters of a logger see the records made on it, whatever handlers the operator set up;
    # once per logger, however often this module is loaded.
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, SecretFilter) for f in _logger.filters):
        _logger.addFilter(SecretFilter())


@dataclass(slots=True)
class Recipient:
    """The secret address a message goes to, as RCPT found it."""

    address_id: str
    user_id: str
    user_name: str
    reply: bool
    rule: sender.AddressPolicy
    mode: str | None
    private: bool = False
    draft: bool = False
    only_destination: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedIn:
    user_id: str
    login: str


_PLAIN_PATH = re.compile(rf"\s*<({ADDR_SPEC})>[ \t]*(.*)", re.DOTALL)
"""``<address>`` and what follows: what the stdlib's parser answers for it, without it."""


class RelaySMTP(SMTP):
    """aiosmtpd's protocol with a DATA phase that streams into the spool in large chunks
    (``smtpdata.DataReader``, fed by a ``DataPhase`` that holds the transport meanwhile), size
    refusals said with the enhanced code ``5.3.4``, slowed and limited failures, and AUTH
    checked against the API tokens in the database."""

    event_handler: MailHandler

    def __init__(
        self,
        handler: MailHandler,
        *,
        guard: FailureGuard | None = None,
        max_failures: int = 5,
        failure_delay: float = 0.25,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.guard = guard or FailureGuard()
        self.max_failures = max_failures
        self.failure_delay = failure_delay
        self.failures = 0
        self._offered: LoginPassword | None = None
        self._counted: str | None = None
        """The client IP this connection is counted under in ``guard``, until it ends."""
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._counted is None and not self._refused:  # not again after STARTTLS
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            if not self.guard.connect(ip):
                # Refused before aiosmtpd sets up a session: no greeting, no handler task;
                # the answer goes out before the close (asyncio flushes what was written).
                self._refused = True
                log.warning("%s: too many connections; refused", ip)
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(TOO_MANY_CONNECTIONS.encode() + b"\r\n")
                transport.close()
                return
            self._counted = ip
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return  # aiosmtpd never saw this connection
        if self._counted is not None:
            self.guard.disconnect(self._counted)
            self._counted = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False  # close
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if not self._refused:  # bytes a refused client sent before the close: dropped
            super().data_received(data)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's own, without the ``typing.Protocol`` class it defines at every call, and
        with a fast path for a plain ``<address>`` that gives the stdlib parser's answer."""
        if not arg:
            return "", ""
        plain = _PLAIN_PATH.fullmatch(arg)
        if plain is not None and not plain.group(2).startswith("("):
            address, rest = plain.group(1), plain.group(2)
            if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
                return None, None
            return address, rest
        try:
            if arg.lstrip().startswith("<"):
                address, rest = get_angle_addr(arg)
            else:
                address, rest = get_addr_spec(arg)
        except HeaderParseError:
            return None, None
        addr = address.addr_spec
        localpart, _, _ = addr.rpartition("@")
        if self.local_part_limit and len(localpart) > self.local_part_limit:
            return None, None
        return addr, rest

    async def push(self, status: str | bytes) -> None:  # type: ignore[override]
        if isinstance(status, str) and status.startswith("552 Error"):
            status = TOO_LARGE
        await super().push(status)
        closing = status.startswith("421" if isinstance(status, str) else b"421")
        if closing and self.transport is not None:
            self.transport.close()  # 421 says the server is closing the connection: do so

    @property
    def peer_ip(self) -> str:
        peer = self.session.peer if self.session else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    async def failed(self, answer: str, last_answer: str) -> str:
        """Count a failure of this client and wait before saying ``answer``; past the limits,
        ``last_answer`` (a ``421``) instead, which ends the connection."""
        before = self.guard.count(self.peer_ip)
        count = self.guard.add(self.peer_ip)
        self.failures += 1
        await asyncio.sleep(min(MAX_DELAY, self.failure_delay * 2 ** min(count - 1, 20)))
        if self.failures > self.max_failures or before >= self.max_failures * IP_FAILURES:
            log.warning("%s: too many failures; closing", self.peer_ip)
            return last_answer
        return answer

    # --- AUTH: user name and an API token ----------------------------------------------------

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd calls this synchronously; checking a token needs the database, so keep the
        # credentials for _checked, which awaits the lookup.
        self._offered = auth_data if isinstance(auth_data, LoginPassword) else None
        return AuthResult(success=False, handled=False)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:  # noqa: N802
        return await self._checked(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:  # noqa: N802
        return await self._checked(await super().auth_LOGIN(_, args))

    async def _checked(self, result: AuthResult) -> AuthResult:
        offered, self._offered = self._offered, None
        if offered is None:
            return result  # malformed or cancelled: aiosmtpd has answered already
        user = await self.event_handler.login(offered.login, offered.password)
        if user is not None:
            return AuthResult(success=True, auth_data=user)
        answer = await self.failed(BAD_LOGIN, TOO_MANY_LOGINS)
        return AuthResult(success=False, handled=False, message=answer)

    # --- DATA ---------------------------------------------------------------------------------

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
        received = self._received_header()
        writer.write(received)
        reader = DataReader(writer, self.data_size_limit)
        try:
            rest = await self._read_data(reader)
        except asyncio.CancelledError:
            writer.abort()
            raise
        except Exception:
            # Where the message ends is unknown now: giving the connection back to aiosmtpd's
            # parser (its "500 Error" for an exception) would run the body's lines as
            # commands. Say so and close instead; the sender keeps the message.
            writer.abort()
            log.exception("%s: reading a message failed; closing", self.peer_ip)
            await self.push(CLOSING)
            return
        if rest is None:  # the client went away mid-message: nothing was acknowledged
            writer.abort()
            return
        if rest:
            # A pipelining client's next commands: hand them back to the reader.
            self._reader._buffer[:0] = rest  # noqa: SLF001
        if reader.too_large:
            writer.abort()
            self._set_post_data_state()
            await self.push(TOO_LARGE)
            return
        if reader.error is not None:
            # The spool failed mid-message (a full disk); the rest was read and dropped, so
            # the connection is at a command boundary again. A temporary answer: the sender
            # keeps the message and tries again later.
            writer.abort()
            self._set_post_data_state()
            metrics.smtp_messages.labels("temporary_error").inc()
            log.error("%s: spooling a message failed: %s", self.peer_ip, reader.error)
            await self.push(spool_failure(reader.error))
            return
        self.envelope.relay_writer = writer  # type: ignore[attr-defined]
        self.envelope.relay_reader = reader  # type: ignore[attr-defined]
        self.envelope.relay_skip = len(received)  # type: ignore[attr-defined]
        self.envelope.content = self.envelope.original_content = None
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self, reader: DataReader) -> bytes | None:
        """The message into ``reader``; what came after its end, or None if the connection
        ended first. What the stream already holds goes first; then the transport hands the
        bytes to a ``DataPhase`` until the terminator, and back to this protocol."""
        early = _take_buffered(self._reader)
        rest = reader.feed(early) if early else b""
        if reader.done:
            return rest
        if self._reader.at_eof() or self.transport is None:
            return None
        phase = DataPhase(self, reader)
        self.transport.set_protocol(phase)
        return await phase.ended

    def _received_header(self) -> bytes:
        session = self.session
        helo = _header_safe(session.host_name or "unknown") if session else "unknown"
        peer = _header_safe(self.peer_ip)
        stamp = email.utils.format_datetime(datetime.now(UTC))
        tls = " (TLS)" if self._tls_protocol is not None else ""
        return (
            f"Received: from {helo} ([{peer}])\r\n\tby {_header_safe(self.hostname)} (relay) "
            f"with ESMTP{tls}; {stamp}\r\n"
        ).encode("utf-8", "replace")


def _header_safe(value: str) -> str:
    return "".join(c for c in value if c.isprintable() and c not in "()[];\\")[:200]


class MailHandler:
    def __init__(
        self,
        db: Database,
        spool: SpoolBackend,
        acceptor: Acceptor,
        domain: str,
        *,
        resolver: sender.Dns | None = None,
        authserv_id: str = "",
        reply_key: bytes | None = None,
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.reply_key = reply_key
        """Signs the confirmation mail's ``Reply-To`` (``relay.mail.replies``); None: off."""
        self.max_attempts = max_attempts
        self.spool = spool
        self.acceptor = acceptor
        self.domain = domain
        self.resolver = resolver or sender.Dns()
        self.authserv_id = authserv_id or domain

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's answer to a command that raised: without this hook, ``500 Error: (TYPE)
        DETAIL``, a permanent failure (the sender bounces the mail) that shows internal detail
        (paths, errno). A failure of the relay is temporary and its detail is for the log."""
        log.error("SMTP command failed", exc_info=error)
        return CATALOG["server.internal"].smtp_reply

    async def login(self, login: bytes, password: bytes) -> LoggedIn | None:
        """A user name and one of that user's API tokens."""
        try:
            name = login.decode("utf-8")
            token = password.decode("utf-8")
        except UnicodeDecodeError:
            return None

        def check(conn: Any) -> str | None:
            owner = queries.user_for_token(conn, token)
            if owner is None or owner != queries.user_id_by_name(conn, name):
                return None
            return owner

        try:
            user_id = await self.db.read(check)
        except Exception:
            log.exception("login lookup failed")
            return None
        return LoggedIn(user_id, name) if user_id else None

    async def handle_RCPT(
        self,
        server: RelaySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if replies.is_reply_address(address):
            return await self._reply_rcpt(server, envelope, address)
        if getattr(envelope, "relay_command", None) is not None:
            return TOO_MANY  # a reply to the relay and a post are two messages
        found = auth.split_address(address, self.domain)
        row = None
        if found is not None:
            try:
                row = await self.db.read_by_key(queries.recipient, found[0])
            except Exception:
                log.exception("address lookup failed")
                return TEMPORARY
        if row is None:
            metrics.smtp_recipients_refused.inc()
            return await server.failed(UNKNOWN, TOO_MANY_UNKNOWN)
        assert found is not None
        current: Recipient | None = getattr(envelope, "relay_recipient", None)
        if current is not None:
            if current.address_id == row["id"] and current.mode == found[1]:
                return "250 2.1.5 OK"  # the same recipient again: still one post
            return TOO_MANY  # one message is one post at one address; the client sends again
        recipient = Recipient(
            address_id=row["id"],
            user_id=row["user_id"],
            user_name=row["name"],
            reply=bool(row["reply_to_sender"]),
            rule=sender.AddressPolicy(
                row["sender_policy"] or sender.ANYONE, tuple(row["allowed_senders"])
            ),
            mode=found[1],
        )
        try:
            await self._apply_modes(recipient)
        except Exception:
            log.exception("destination lookup failed")
            return TEMPORARY
        envelope.relay_recipient = recipient  # type: ignore[attr-defined]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def _reply_rcpt(self, server: RelaySMTP, envelope: Envelope, address: str) -> str:
        """``reply+POST.SIG@``: a reply to the confirmation mail, taken only with a valid
        signature; anything else is an unknown recipient like any other."""
        post_id = replies.post_of(address, self.reply_key, self.domain) if self.reply_key else None
        owner = None
        if post_id is not None:
            try:
                row = await self.db.read(queries.post_row, post_id)
            except Exception:
                log.exception("post lookup failed")
                return TEMPORARY
            owner = row["user_id"] if row is not None else None
        if post_id is None or owner is None:
            metrics.smtp_recipients_refused.inc()
            return await server.failed(UNKNOWN, TOO_MANY_UNKNOWN)
        current = getattr(envelope, "relay_command", None)
        if current is not None and current == (post_id, owner):
            return "250 2.1.5 OK"
        if current is not None or getattr(envelope, "relay_recipient", None) is not None:
            return TOO_MANY
        envelope.relay_command = (post_id, owner)  # type: ignore[attr-defined]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def _command_data(
        self,
        server: RelaySMTP,
        session: Session,
        envelope: Envelope,
        facts: HeaderFacts,
        name: str,
        skip: int,
    ) -> str:
        """A reply to the confirmation mail: spooled (done), its sender's proof taken now (the
        client and its envelope are known only here), then a ``mail_command`` job. Automatic
        mail (an out-of-office answering the confirmation) and bounces are dropped."""
        post_id, owner = envelope.relay_command  # type: ignore[attr-defined]
        mail_from = _envelope_sender(envelope)
        if not _answerable(mail_from, facts):
            self.spool.remove(name)
            log.info("post %s: automatic mail or a bounce to its reply address; dropped", post_id)
            metrics.smtp_messages.labels("dropped").inc()
            return f"250 2.0.0 OK queued as {post_id}"
        logged_in: LoggedIn | None = session.auth_data if session.authenticated else None
        incoming = sender.Incoming(
            client_ip=server.peer_ip,
            helo=session.host_name or "",
            mail_from=mail_from,
            facts=facts,
            read=lambda: _read_from(self.spool.path(name), skip),
            auth_user=logged_in.login if logged_in and logged_in.user_id == owner else None,
        )
        try:
            verdict = await asyncio.to_thread(
                sender.evaluate,
                sender.AddressPolicy(),
                incoming,
                authserv_id=self.authserv_id,
                resolver=self.resolver,
                identify=True,
            )
            meta = await asyncio.to_thread(
                self.spool.put_bytes, replies.meta_bytes(post_id, verdict.auth_results)
            )
        except Exception as exc:
            self.spool.remove(name)
            log.exception("taking a reply by mail failed")
            metrics.smtp_messages.labels("temporary_error").inc()
            return spool_failure(exc) if isinstance(exc, OSError) else TEMPORARY
        try:
            await self.db.run(replies.queue, name, meta, owner, self.max_attempts)
        except Exception:
            self.spool.remove(name)
            self.spool.remove(meta)
            log.exception("committing a reply by mail failed")
            metrics.smtp_messages.labels("temporary_error").inc()
            return TEMPORARY
        self.acceptor.wake()
        metrics.smtp_messages.labels("accepted").inc()
        return f"250 2.0.0 OK queued as {post_id}"

    async def _apply_modes(self, recipient: Recipient) -> None:
        """``SECRET+private@``, ``SECRET+draft@``, ``SECRET+DESTINATION@`` (a destination's id
        or type), joined with ``+``. A mode that names nothing is ignored: the mail still
        arrives, as if sent to the plain address."""
        if not recipient.mode:
            return
        wanted = [part for part in recipient.mode.split("+") if part]
        recipient.private = "private" in wanted
        recipient.draft = "draft" in wanted
        others = [part for part in wanted if part not in ("private", "draft")]
        if not others:
            return
        rows = await self.db.read(list_destinations, recipient.user_id)
        for part in others:
            for row in rows:
                by_id = part == row["id"].lower()
                if by_id or part == row["type"].lower():
                    # create_deliveries matches the stored value against an id or a type
                    recipient.only_destination = row["id"] if by_id else row["type"]
                    return

    async def handle_DATA(self, server: RelaySMTP, session: Session, envelope: Envelope) -> str:
        recipient: Recipient | None = getattr(envelope, "relay_recipient", None)
        writer = getattr(envelope, "relay_writer", None)
        reader: DataReader | None = getattr(envelope, "relay_reader", None)
        skip: int = getattr(envelope, "relay_skip", 0)
        if writer is None:  # aiosmtpd's own DATA phase (not used by RelaySMTP)
            writer = self.spool.writer()
            writer.write(envelope.original_content or b"")
        facts = scan_headers(bytes(reader.head) if reader is not None else b"")
        if facts.received > MAX_HOPS:
            writer.abort()
            metrics.smtp_messages.labels("refused").inc()
            return TOO_MANY_HOPS
        try:
            name = await writer.commit()
        except Exception as exc:
            writer.abort()
            if isinstance(exc, StorageError):  # the object store away: said, no traceback
                log.error("spooling a message failed: %s", exc.detail)
            else:
                log.exception("spooling a message failed")
            metrics.smtp_messages.labels("temporary_error").inc()
            return spool_failure(exc)
        if recipient is None:  # RCPT took only a reply address (relay.mail.replies)
            return await self._command_data(server, session, envelope, facts, name, skip)
        logged_in: LoggedIn | None = session.auth_data if session.authenticated else None
        try:
            verdict = await self._verdict(
                server, session, envelope, recipient, facts, self.spool.path(name), skip, logged_in
            )
        except Exception:
            self.spool.remove(name)
            log.exception("checking the sender failed")
            metrics.smtp_messages.labels("temporary_error").inc()
            return TEMPORARY
        if not verdict.passed:
            self.spool.remove(name)
            log.info("sender refused for address %s: %s", recipient.address_id, verdict.reason)
            metrics.smtp_messages.labels("refused").inc()
            return SENDER_REFUSED
        meta = MailMeta(
            message_id=facts.message_id,
            digest=functools.partial(mail_digest, self.spool.path(name)),
            sender=facts.sender,
            auth_results=verdict.auth_results,
            reply=recipient.reply
            and verdict.authenticated
            and _answerable(_envelope_sender(envelope), facts),
        )
        try:
            post = await self.acceptor.accept(
                recipient.user_id,
                mail_spool_name=name,
                source="smtp",
                private=recipient.private,
                draft=recipient.draft,
                only_destination=recipient.only_destination,
                mail=meta,
            )
        except AlreadyAccepted as already:
            self.spool.remove(name)
            metrics.smtp_messages.labels("duplicate").inc()
            return f"250 2.0.0 OK queued as {already.post_id}"
        except Exception:
            self.spool.remove(name)
            log.exception("committing a message failed")
            metrics.smtp_messages.labels("temporary_error").inc()
            return TEMPORARY
        metrics.smtp_messages.labels("accepted").inc()
        self.acceptor.took("smtp", writer.size)
        return f"250 2.0.0 OK queued as {post.id}"

    async def _verdict(
        self,
        server: RelaySMTP,
        session: Session,
        envelope: Envelope,
        recipient: Recipient,
        facts: HeaderFacts,
        path: Path,
        skip: int,
        logged_in: LoggedIn | None,
    ) -> sender.Verdict:
        mail_from = _envelope_sender(envelope)
        owner = logged_in is not None and logged_in.user_id == recipient.user_id
        incoming = sender.Incoming(
            client_ip=server.peer_ip,
            helo=session.host_name or "",
            mail_from=mail_from,
            facts=facts,
            read=lambda: _read_from(path, skip),
            auth_user=logged_in.login if owner and logged_in else None,
        )
        # Whether the sender is proven matters for a reply too; only then look it up under a
        # policy that does not need it (each check may cost DNS lookups).
        identify = recipient.reply and _answerable(mail_from, facts)
        if recipient.rule.policy in (sender.ANYONE, sender.ALLOWLIST) and not identify:
            return sender.evaluate(
                recipient.rule, incoming, authserv_id=self.authserv_id, resolver=self.resolver
            )  # no DNS, no reading: cheap enough for the event loop
        return await asyncio.to_thread(
            sender.evaluate,
            recipient.rule,
            incoming,
            authserv_id=self.authserv_id,
            resolver=self.resolver,
            identify=identify,
        )


def _take_buffered(stream: asyncio.StreamReader) -> bytes | bytearray:
    """What the stream holds now, without waiting: its buffer itself, the stream given a new
    one (and its transport resumed, should it have paused it)."""
    if (error := stream.exception()) is not None:
        raise error
    buffer = stream._buffer  # noqa: SLF001
    stream._buffer = bytearray()  # noqa: SLF001
    stream._maybe_resume_transport()  # noqa: SLF001
    return buffer


class DataPhase(asyncio.BufferedProtocol):
    """The transport's protocol for the rest of one DATA phase.

    aiosmtpd's protocol feeds a ``StreamReader`` (a copy of every chunk) that a coroutine then
    drains, woken once per chunk. Here the socket is read into one buffer, reused for every
    read, and ``DataReader.take`` writes from it to the spool at once: no copy in between, no
    coroutine woken until the message has ended. Then the transport goes back to the SMTP
    protocol, and ``ended`` gives what came after the terminator (None: the connection ended
    first). Connection events in between are passed on to the SMTP protocol.
    """

    def __init__(self, smtp: RelaySMTP, reader: DataReader) -> None:
        self.smtp = smtp
        self.reader = reader
        self.buffer = bytearray(CHUNK)
        self.kept = len(reader.pending)
        self.buffer[: self.kept] = reader.pending
        self.ended: asyncio.Future[bytes | None] = smtp.loop.create_future()

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)[self.kept :]

    def buffer_updated(self, nbytes: int) -> None:
        end = self.kept + nbytes
        try:
            at = self.reader.take(self.buffer, end)
        except BaseException as exc:  # the spool failed: end the phase with it
            self._end(exc)
            return
        if self.reader.done:
            self._end(bytes(self.buffer[at:end]))
        else:
            self.kept = at

    def _end(self, outcome: bytes | BaseException | None) -> None:
        if self.ended.done():
            return
        transport = self.smtp.transport
        if transport is not None and outcome is not None:
            transport.set_protocol(self.smtp)  # before anything else arrives
        if isinstance(outcome, BaseException):
            self.ended.set_exception(outcome)
        else:
            self.ended.set_result(outcome)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(None)
        self.smtp.connection_lost(exc)

    def eof_received(self) -> bool | None:
        self._end(None)
        return self.smtp.eof_received()

    def pause_writing(self) -> None:
        self.smtp.pause_writing()

    def resume_writing(self) -> None:
        self.smtp.resume_writing()


def _envelope_sender(envelope: Envelope) -> str:
    """MAIL FROM's address; empty for the null reverse path of a bounce (aiosmtpd keeps it
    as ``<>``)."""
    sender = envelope.mail_from or ""
    return "" if sender == "<>" else sender


def _answerable(mail_from: str, facts: HeaderFacts) -> bool:
    """A message a reply may answer: not a bounce, not automatic, one From address."""
    return bool(mail_from) and not facts.automatic and facts.from_count == 1 and bool(facts.sender)


def _read_from(path: Path, skip: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(skip)
        return f.read()


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def smtp_factory(
    handler: MailHandler,
    max_bytes: int,
    hostname: str | None,
    *,
    tls: ssl.SSLContext | None = None,
    require_tls: bool = False,
    guard: FailureGuard | None = None,
    max_failures: int = 5,
    failure_delay: float = 0.25,
) -> RelaySMTP:
    return RelaySMTP(
        handler,
        guard=guard,
        max_failures=max_failures,
        failure_delay=failure_delay,
        data_size_limit=max_bytes,
        enable_SMTPUTF8=True,
        decode_data=False,
        hostname=hostname or None,
        ident="relay ESMTP",
        tls_context=tls,
        require_starttls=require_tls,
        auth_require_tls=True,
        command_call_limit=CALL_LIMITS,
    )
