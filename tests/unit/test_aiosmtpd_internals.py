"""What the SMTP door takes from aiosmtpd (and asyncio's streams) beyond their public API, each
checked for its shape: an upgrade that moves one of them fails here, not in production.
pyproject.toml pins aiosmtpd below the next minor release; raise the pin only with this green."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import aiosmtpd
import aiosmtpd.smtp as aiosmtpd_smtp
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from relay.intake.smtp import AIOSMTPD_LOG, RelaySMTP, SecretFilter


def _params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_version_is_one_this_was_tested_with() -> None:
    major, minor = (int(part) for part in aiosmtpd.__version__.split(".")[:2])
    assert (major, minor) == (1, 4), aiosmtpd.__version__


def test_constructor_options() -> None:
    wanted = {
        "data_size_limit",
        "enable_SMTPUTF8",
        "decode_data",
        "hostname",
        "ident",
        "tls_context",
        "require_starttls",
        "auth_require_tls",
        "command_call_limit",
    }
    assert wanted <= set(_params(SMTP.__init__))


def test_methods_the_door_overrides_or_calls() -> None:
    # name -> (parameters after self, coroutine?)
    expected = {
        "_getaddr": (["arg"], False),
        "push": (["status"], True),
        "_authenticate": (["mechanism", "auth_data"], False),
        "auth_PLAIN": (["_", "args"], True),
        "auth_LOGIN": (["_", "args"], True),
        "_set_post_data_state": ([], False),
        "_call_handler_hook": (["command", "args"], True),
        "check_helo_needed": (["helo"], True),
        "check_auth_needed": (["caller_method"], True),
        "challenge_auth": None,  # only its name: the log filter knows its records by it
        "connection_made": (["transport"], False),
        "connection_lost": (["error"], False),
        "eof_received": ([], False),
        "smtp_DATA": (["arg"], True),
    }
    for name, shape in expected.items():
        method = inspect.getattr_static(SMTP, name)
        assert callable(method), name
        if shape is None:
            continue
        params, coroutine = shape
        assert _params(method)[1:] == params, name
        assert inspect.iscoroutinefunction(method) is coroutine, name
    assert isinstance(SMTP.local_part_limit, int)


def test_the_overridden_private_methods_are_still_the_ones_called() -> None:
    # An override of a method aiosmtpd no longer calls would be silently dead.
    for command in (SMTP.smtp_MAIL, SMTP.smtp_RCPT):
        assert "self._getaddr(" in inspect.getsource(command)
    for mechanism in (SMTP.auth_PLAIN, SMTP.auth_LOGIN):
        assert "self._authenticate(" in inspect.getsource(mechanism)


def test_helpers_and_records() -> None:
    assert MISSING is not None and callable(syntax)
    result = AuthResult(success=False, handled=False, message="535", auth_data=None)
    assert (result.success, result.handled, result.message) == (False, False, "535")
    offered = LoginPassword(b"anna", b"token")
    assert (offered.login, offered.password) == (b"anna", b"token")
    loop = asyncio.new_event_loop()
    session = Session(loop)
    loop.close()
    for name in ("peer", "host_name", "auth_data", "authenticated"):
        assert hasattr(session, name), name
    envelope = Envelope()
    assert envelope.rcpt_tos == [] and envelope.mail_from is None
    assert hasattr(envelope, "content") and hasattr(envelope, "original_content")


def test_the_logger_the_secret_filter_sits_on() -> None:
    assert aiosmtpd_smtp.log.name == AIOSMTPD_LOG
    assert any(isinstance(f, SecretFilter) for f in logging.getLogger(AIOSMTPD_LOG).filters)


class _Handler:
    spool = None


def test_a_live_connection_has_the_attributes_the_door_reads() -> None:
    async def check() -> None:
        made: list[RelaySMTP] = []

        def factory() -> RelaySMTP:
            made.append(RelaySMTP(_Handler(), hostname="relay.test"))  # type: ignore[arg-type]
            return made[-1]

        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220 relay.test")
        smtp = made[0]
        # DataPhase and _take_buffered: the command stream, its buffer, its flow control.
        stream = smtp._reader  # noqa: SLF001
        assert isinstance(stream, asyncio.StreamReader)
        assert isinstance(stream._buffer, bytearray)  # noqa: SLF001
        assert callable(stream._maybe_resume_transport)  # noqa: SLF001
        assert stream.exception() is None and not stream.at_eof()
        assert smtp._tls_protocol is None  # noqa: SLF001 - the Received field's "(TLS)"
        assert smtp.transport is not None and smtp.loop is asyncio.get_running_loop()
        assert smtp.session is not None and isinstance(smtp.session.peer, tuple)
        assert smtp.envelope is not None and smtp.event_handler is not None
        assert smtp.data_size_limit is not None and smtp.hostname == "relay.test"
        # aiosmtpd finds a command's method by name: DATA must reach the door's own.
        assert smtp._smtp_methods["DATA"].__func__ is RelaySMTP.smtp_DATA  # noqa: SLF001
        writer.write(b"QUIT\r\n")
        assert (await reader.readline()).startswith(b"221")
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(check())


def test_a_command_that_raises_gets_a_temporary_answer_without_its_detail() -> None:
    from relay.intake.smtp import MailHandler

    handler = MailHandler(None, None, None, "relay.test")  # type: ignore[arg-type]

    async def check() -> None:
        made: list[RelaySMTP] = []

        def factory() -> RelaySMTP:
            made.append(RelaySMTP(handler, hostname="relay.test"))
            return made[-1]

        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1]
        )
        await reader.readline()

        async def broken(arg: str) -> None:
            raise OSError(28, "No space left on device", "/var/lib/relay/spool/tmp/x")

        # aiosmtpd's own handling of a command that raises, with the door's hook in it.
        made[0]._smtp_methods["NOOP"] = broken  # noqa: SLF001
        writer.write(b"NOOP\r\n")
        answer = await reader.readline()
        assert answer == b"451 4.3.0 Internal error; try again later\r\n"
        writer.write(b"QUIT\r\n")
        assert (await reader.readline()).startswith(b"221")  # and the session goes on
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(check())
