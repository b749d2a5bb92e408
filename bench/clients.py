"""Load generators that stay out of the way: bodies come from generators over one block of random
bytes (never built whole in memory), and requests go over plain asyncio streams, so the client
costs the same against the relay and against its baseline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

BLOCK = 1 << 20
_RANDOM = os.urandom(BLOCK)


def blocks(total: int, block: int = BLOCK) -> Iterator[memoryview]:
    """``total`` bytes as slices of a random block: incompressible, and nothing accumulates."""
    data = memoryview(_RANDOM if block == BLOCK else (os.urandom(block)))
    sent = 0
    while sent < total:
        size = min(block, total - sent)
        yield data[:size]
        sent += size


def mail_lines_block() -> bytes:
    """1 MiB of 76-character base64 lines: what an attachment looks like inside a message, with
    no line starting with a dot (so nothing needs stuffing) and the block ending in CRLF."""
    line_body = 76
    per_line = line_body + 2
    count = BLOCK // per_line
    raw = base64.b64encode(os.urandom(line_body * count * 3 // 4 + 3))
    lines = [raw[i * line_body : (i + 1) * line_body] for i in range(count)]
    return b"\r\n".join(lines) + b"\r\n"


@dataclass(slots=True)
class Multipart:
    """A ``multipart/form-data`` body with one ``file`` part, streamed."""

    size: int
    filename: str = "upload.bin"
    mime: str = "application/octet-stream"
    boundary: str = ""

    def __post_init__(self) -> None:
        self.boundary = self.boundary or f"bench-{uuid.uuid4().hex}"

    @property
    def head(self) -> bytes:
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{self.filename}"\r\n'
            f"Content-Type: {self.mime}\r\n\r\n"
        ).encode()

    @property
    def tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def body(self) -> Iterator[bytes | memoryview]:
        yield self.head
        yield from blocks(self.size)
        yield self.tail


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


async def http_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: Iterable[bytes | memoryview] | bytes = b"",
    length: int | None = None,
    timeout: float = 600.0,
) -> Response:
    """One HTTP/1.1 request on a connection of its own to 127.0.0.1; the body is streamed."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        try:
            if isinstance(body, bytes):
                length, body = len(body), [body]
            head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
            head += [f"{k}: {v}" for k, v in (headers or {}).items()]
            if length is not None:
                head.append(f"Content-Length: {length}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            try:
                for chunk in body:
                    writer.write(chunk)
                    await writer.drain()
            except ConnectionError:
                pass  # the server answered early (413, 401): its answer is what counts
            return await _read_response(reader)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> Response:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("no answer")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while size := int((await reader.readline()).split(b";")[0] or b"0", 16):
            parts.append(await reader.readexactly(size))
            await reader.readline()
        return Response(status, headers, b"".join(parts))
    if "content-length" in headers:
        return Response(status, headers, await reader.readexactly(int(headers["content-length"])))
    return Response(status, headers, await reader.read())


# --- SMTP ------------------------------------------------------------------------------------


class SmtpError(RuntimeError):
    pass


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = (await reader.readline()).decode("utf-8", "replace")
        if not line:
            raise SmtpError("connection closed")
        lines.append(line.rstrip())
        if line[3:4] != "-":
            return int(line[:3]), "\n".join(lines)


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str, expect: int
) -> str:
    writer.write(line.encode() + b"\r\n")
    code, text = await _reply(reader)
    if code != expect:
        raise SmtpError(f"{line.split()[0]}: {text}")
    return text


async def smtp_stream(
    port: int, sender: str, recipient: str, body: AsyncIterator[bytes] | Iterable[bytes]
) -> str:
    """Send one message whose body lines need no dot-stuffing; return the final reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        code, text = await _reply(reader)
        if code != 220:
            raise SmtpError(text)
        await _command(reader, writer, "EHLO bench.localhost", 250)
        await _command(reader, writer, f"MAIL FROM:<{sender}>", 250)
        await _command(reader, writer, f"RCPT TO:<{recipient}>", 250)
        await _command(reader, writer, "DATA", 354)
        header = f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: bench\r\n\r\n".encode()
        writer.write(header)
        if isinstance(body, AsyncIterator):
            async for chunk in body:
                writer.write(chunk)
                await writer.drain()
        else:
            for chunk in body:
                writer.write(chunk)
                await writer.drain()
        writer.write(b".\r\n")
        code, text = await _reply(reader)
        if code != 250:
            raise SmtpError(f"end of DATA: {text}")
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return text
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
