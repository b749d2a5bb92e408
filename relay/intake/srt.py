"""The SRT door: a phone (Larix, OBS, ffmpeg) sends MPEG-TS over SRT to
``srt://HOST:PORT?streamid=#!::r=STREAM_KEY,m=publish``; the stream key is checked in libsrt's
listen callback, before the connection is accepted, and the TS goes to the same ``Broadcast``
as RTMP (relay/intake/live.py).

Why a door of the relay's own on libsrt, not ffmpeg's SRT listener
------------------------------------------------------------------
ffmpeg's listener (``-f mpegts -i "srt://:8890?mode=listener"``) accepts any stream id, and the
only per-key secret it can check, the SRT passphrase, would have to be on its command line,
which every local user can read. libsrt's ``srt_listen_callback`` sees the caller's stream id
during the handshake and can refuse it there: a wrong or revoked key never gets a connection,
let alone a byte of media taken.

The binding
-----------
A small ctypes binding to the libsrt that Debian's ffmpeg already pulls in
(``libsrt1.5-gnutls``), written from libsrt's ``srt.h`` (1.5) and
``docs/features/access-control.md``. Only what a listener needs: ``srt_startup``,
``srt_create_socket``, ``srt_setsockflag``, ``srt_bind``, ``srt_listen``,
``srt_listen_callback``, ``srt_setrejectreason``, ``srt_accept``, ``srt_getsockflag``,
``srt_recvmsg``, ``srt_close``, ``srt_getlasterror``/``_str``. If the library cannot be loaded
the relay starts without this door (one warning) and gives no ``srt_url``.

Threads: every libsrt call that blocks runs on a thread of its own (one accepting, one per
connection reading), never on the event loop. The listen callback runs on libsrt's receiving
thread, so it does only a parse and one lookup of the key's hash through the database's
synchronous path, and answers. Media reaches the loop in batches through a bounded queue: a
loop that falls behind blocks the reading thread, libsrt's buffer fills, and in live mode libsrt
drops what is too late, so memory stays bounded whatever the sender does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.db import live as db_live

if TYPE_CHECKING:
    from relay.intake.live import Broadcast, LiveDoor

log = logging.getLogger("relay.live.srt")

LIBRARIES = ("libsrt-gnutls.so.1.5", "libsrt-openssl.so.1.5", "libsrt.so.1.5")
"""Tried after ``ctypes.util.find_library("srt")`` (which finds only a ``libsrt.so`` that a
-dev package links): the names Debian's runtime packages install."""

# srt.h: socket options (SRT_SOCKOPT; the numbers are libsrt's ABI).
SRTO_RCVSYN = 2
SRTO_RCVTIMEO = 14
SRTO_REUSEADDR = 15
SRTO_RCVLATENCY = 43
SRTO_STREAMID = 46
SRTO_PAYLOADSIZE = 49
SRTO_TRANSTYPE = 50
SRTO_PEERIDLETIMEO = 55
SRTT_LIVE = 0
SRT_INVALID_SOCK = -1
SRT_ERROR = -1
# srt.h SRT_ERRNO: the ones told apart here.
SRT_ECONNLOST = 2001
SRT_ETIMEOUT = 6003

# access_control.h: the reasons a listener gives a refused caller (its ``srt_connect`` fails
# with "connection rejected" and the code; ffmpeg prints the code's number).
SRT_REJX_BAD_REQUEST = 1400
SRT_REJX_OVERLOAD = 1402
SRT_REJX_FORBIDDEN = 1403
SRT_REJX_BAD_MODE = 1405
SRT_REJX_CONFLICT = 1409

MAX_STREAM_ID = 512
"""SRT's own bound on a stream id (access-control.md)."""
RECEIVE_BUFFER = 1500
"""One SRT message: live mode sends at most 1456 bytes of payload (SRT_LIVE_MAX_PLSIZE)."""
BATCH_BYTES = 64 * 1024
BATCH_SECONDS = 0.05
"""A batch goes to the loop when it has this much, or is this old: ~5 hops a second less than
one per 1316-byte message, at a cost of 50 ms of latency at worst."""
QUEUE_BATCHES = 32
"""Batches waiting for the loop, per connection: at most 2 MiB."""
PEER_IDLE_MS = 5000
"""SRTO_PEERIDLETIMEO (libsrt's default, set so it is known): libsrt breaks a connection whose
peer is silent this long."""
GOODBYE_SECONDS = PEER_IDLE_MS / 1000 / 2
"""SRT has no "unpublish", and libsrt reports a sender that closed (its SHUTDOWN packet) and one
whose network went the same way (SRT_ECONNLOST). They differ in when: a closing sender's
connection breaks right after its last packet, a vanished one's only after PEER_IDLE_MS of
silence. A break sooner than this after the last packet is a goodbye: the broadcast ends at
once; later, it is a drop, and the broadcast waits out its grace."""
LATENCY_MS = 200
"""SRTO_RCVLATENCY: what libsrt waits for a lost packet to be sent again. libsrt's default is
120 ms; phones on mobile networks lose more, and HLS is seconds behind anyway."""


# --- the stream id ---------------------------------------------------------------------------


class StreamIdError(ValueError):
    """A stream id the relay refuses; ``reason`` is the SRT reject code to answer."""

    def __init__(self, message: str, reason: int) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StreamId:
    key: str
    mode: str


def parse_stream_id(value: str) -> StreamId:
    """The key and mode a caller's stream id says.

    Two forms: the bare key (what a sender that has one field for it sends), and SRT's access
    control form ``#!::r=KEY,m=publish`` (comma-separated ``key=value``; ``r`` the resource,
    here the stream key; ``m`` the mode). A caller that wants to play (``m=request``, or
    ``bidirectional``) is refused: this listener only takes senders. A ``#!::`` form without
    ``m`` is taken as publishing, for the same reason (the convention's default is ``request``,
    which a listener that only takes senders would always refuse). The nested form ``#!{…}`` and
    keys without a value are refused as bad requests."""
    if len(value) > MAX_STREAM_ID:
        raise StreamIdError("stream id too long", SRT_REJX_BAD_REQUEST)
    value = value.strip()
    if not value.startswith("#!"):
        if not value or any(c in value for c in ",= \t"):
            raise StreamIdError("not a stream key", SRT_REJX_BAD_REQUEST)
        return StreamId(value, "publish")
    if not value.startswith("#!::"):
        raise StreamIdError("only the #!:: form of stream id is taken", SRT_REJX_BAD_REQUEST)
    fields: dict[str, str] = {}
    for pair in value[4:].split(","):
        name, equals, item = pair.partition("=")
        name = name.strip()
        if not equals or not name or name in fields:
            raise StreamIdError("a stream id field without a value, or twice", SRT_REJX_BAD_REQUEST)
        fields[name] = item.strip()
    mode = fields.get("m", "publish")
    if mode != "publish":
        raise StreamIdError(f"mode {mode!r}: this listener only takes senders", SRT_REJX_BAD_MODE)
    key = fields.get("r", "")
    if not key:
        raise StreamIdError("no resource (r=KEY) in the stream id", SRT_REJX_BAD_REQUEST)
    return StreamId(key, mode)


# --- the library -----------------------------------------------------------------------------


_ListenCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
)
"""srt.h ``srt_listen_callback_fn(void* opaq, SRTSOCKET ns, int hsversion,
const struct sockaddr* peeraddr, const char* streamid)``: 0 accepts, -1 refuses."""


class SrtUnavailable(Exception):
    """libsrt cannot be loaded or started: the relay runs without the SRT door."""


class Library:
    """libsrt, loaded, its functions typed, started (``srt_startup``) once per process."""

    _loaded: Library | None = None
    _lock = threading.Lock()

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        c_int, c_char_p, c_void_p = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
        int_p = ctypes.POINTER(c_int)
        for name, restype, argtypes in (
            ("srt_startup", c_int, []),
            ("srt_cleanup", c_int, []),
            ("srt_create_socket", c_int, []),
            ("srt_setsockflag", c_int, [c_int, c_int, c_void_p, c_int]),
            ("srt_getsockflag", c_int, [c_int, c_int, c_void_p, int_p]),
            ("srt_bind", c_int, [c_int, c_void_p, c_int]),
            ("srt_listen", c_int, [c_int, c_int]),
            ("srt_listen_callback", c_int, [c_int, _ListenCallback, c_void_p]),
            ("srt_setrejectreason", c_int, [c_int, c_int]),
            ("srt_accept", c_int, [c_int, c_void_p, int_p]),
            ("srt_recvmsg", c_int, [c_int, c_char_p, c_int]),
            ("srt_close", c_int, [c_int]),
            ("srt_getlasterror", c_int, [int_p]),
            ("srt_getlasterror_str", c_char_p, []),
            ("srt_setloglevel", None, [c_int]),
        ):
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
        if lib.srt_startup() < 0:
            raise SrtUnavailable(f"srt_startup failed: {self.last_error()}")
        lib.srt_setloglevel(2)  # LOG_CRIT: libsrt logs to stderr, e.g. every accept a close ends

    @classmethod
    def load(cls) -> Library:
        with cls._lock:
            if cls._loaded is None:
                cls._loaded = cls(find_library())
            return cls._loaded

    def last_error(self) -> str:
        message = self.lib.srt_getlasterror_str()
        return message.decode(errors="replace") if message else "unknown error"

    def last_code(self) -> int:
        return int(self.lib.srt_getlasterror(None))

    def last_errno(self) -> int:
        """The system's errno behind libsrt's last error (0: none)."""
        number = ctypes.c_int(0)
        self.lib.srt_getlasterror(ctypes.byref(number))
        return number.value

    def set_int(self, sock: int, option: int, value: int) -> None:
        number = ctypes.c_int(value)
        if self.lib.srt_setsockflag(sock, option, ctypes.byref(number), ctypes.sizeof(number)):
            raise OSError(f"srt_setsockflag {option}: {self.last_error()}")

    def stream_id(self, sock: int) -> str:
        buffer = ctypes.create_string_buffer(MAX_STREAM_ID + 1)
        length = ctypes.c_int(len(buffer))
        if self.lib.srt_getsockflag(sock, SRTO_STREAMID, buffer, ctypes.byref(length)):
            return ""
        return buffer.raw[: max(0, min(length.value, MAX_STREAM_ID))].decode(errors="replace")


def find_library() -> ctypes.CDLL:
    """libsrt, opened (not started)."""
    names = [n for n in (ctypes.util.find_library("srt"),) if n] + list(LIBRARIES)
    for name in names:
        with contextlib.suppress(OSError):
            return ctypes.CDLL(name)
    raise SrtUnavailable(
        "libsrt not found (Debian: apt install libsrt1.5-gnutls, which ffmpeg pulls in)"
    )


def _sockaddr(host: str, port: int) -> tuple[ctypes.Array[ctypes.c_char], int]:
    """A ``struct sockaddr_in`` or ``sockaddr_in6`` for ``host:port``, as bytes."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    ip = ipaddress.ip_address(address[0])
    if family == socket.AF_INET:
        # sa_family (host order), port (network order), 4 address bytes, 8 bytes of zero.
        raw = socket.AF_INET.to_bytes(2, "little") + port.to_bytes(2, "big") + ip.packed
        raw += bytes(8)
    else:
        # sa_family, port, flowinfo, 16 address bytes, scope id.
        raw = socket.AF_INET6.to_bytes(2, "little") + port.to_bytes(2, "big") + bytes(4)
        raw += ip.packed + int(address[3]).to_bytes(4, "little")
    return ctypes.create_string_buffer(raw, len(raw)), len(raw)


def peer_host(address: int | None) -> str:
    """The address in a ``const struct sockaddr*`` (for logs: never with the stream id)."""
    if not address:
        return ""
    family = int.from_bytes(ctypes.string_at(address, 2), "little")
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(ctypes.string_at(address + 4, 4)))
    if family == socket.AF_INET6:
        return str(ipaddress.IPv6Address(ctypes.string_at(address + 8, 16)))
    return ""


# --- the listener ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ended:
    """What the reading thread sends last: how the connection ended."""

    goodbye: bool
    """The sender closed it (else: it vanished, or was closed here)."""


class Connection:
    """One accepted caller: its socket, the thread reading it, the queue to the loop."""

    def __init__(self, library: Library, sock: int, loop: asyncio.AbstractEventLoop) -> None:
        self.library = library
        self.sock = sock
        self.loop = loop
        self.queue: asyncio.Queue[bytes | Ended] = asyncio.Queue(QUEUE_BATCHES)
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, name=f"srt-read-{sock}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Close the socket (at most once; safe from any thread): a blocked ``srt_recvmsg``
        returns at once, and the reading thread ends."""
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
        self.library.lib.srt_close(self.sock)

    def _put(self, item: bytes | Ended) -> bool:
        """Hand ``item`` to the loop, waiting while the queue is full; False once closed."""
        if self._closed.is_set():
            return False
        try:
            future = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
        except RuntimeError:
            return False  # the loop is gone: shutting down
        while True:
            try:
                future.result(timeout=1.0)
                return True
            except TimeoutError:
                # Still full. Not given up on while open: a put cancelled as it completes
                # would be made twice.
                if self._closed.is_set():
                    future.cancel()
                    return False
            except concurrent.futures.CancelledError:
                return False  # the loop cancelled it: shutting down

    def _end_here(self, ended: Ended) -> None:
        # On the loop: the end of a connection closed here (taken over, shutting down) wakes
        # its task even when the queue is full; what it waited with no longer matters.
        while self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(ended)

    def _read(self) -> None:
        lib = self.library.lib
        buffer = ctypes.create_string_buffer(RECEIVE_BUFFER)
        batch = bytearray()
        began = last = time.monotonic()
        ended = Ended(goodbye=False)
        while True:
            size = lib.srt_recvmsg(self.sock, buffer, RECEIVE_BUFFER)
            if size <= 0:
                lost = size == 0 or self.library.last_code() == SRT_ECONNLOST
                ended = Ended(lost and time.monotonic() - last < GOODBYE_SECONDS)
                break
            last = time.monotonic()
            if not batch:
                began = last
            batch += buffer.raw[:size]
            if len(batch) >= BATCH_BYTES or last - began >= BATCH_SECONDS:
                if not self._put(bytes(batch)):
                    break
                batch = bytearray()
        delivered = not batch or self._put(bytes(batch))
        if delivered and self._put(ended):
            return
        # Closed here (taken over, shutting down) or the loop gone: wake the task anyway.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._end_here, Ended(goodbye=False))


class Listener:
    """An SRT listening socket: ``check(stream_id, peer)`` decides each caller in libsrt's
    callback (None: accept; else an SRT reject code); ``accepted(connection)`` is scheduled on
    the loop for each caller accepted."""

    def __init__(
        self,
        library: Library,
        loop: asyncio.AbstractEventLoop,
        check: Callable[[str, str], int | None],
        accepted: Callable[[Connection], object],
        idle_seconds: float,
    ) -> None:
        self.library = library
        self.loop = loop
        self.check = check
        self.accepted = accepted
        self.idle_ms = int(idle_seconds * 1000)
        self.sock = SRT_INVALID_SOCK
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        # Kept here: libsrt holds only the C pointer, and a collected callback crashes it.
        self._callback = _ListenCallback(self._on_caller)

    def open(self, host: str, port: int, backlog: int = 16) -> None:
        lib = self.library.lib
        sock = lib.srt_create_socket()
        if sock == SRT_INVALID_SOCK:
            raise OSError(f"srt_create_socket: {self.library.last_error()}")
        self.sock = sock
        try:
            self.library.set_int(sock, SRTO_TRANSTYPE, SRTT_LIVE)
            # libsrt shares a UDP port by default: a second relay on it must fail, not share.
            self.library.set_int(sock, SRTO_REUSEADDR, 0)
            self.library.set_int(sock, SRTO_RCVLATENCY, LATENCY_MS)
            self.library.set_int(sock, SRTO_PEERIDLETIMEO, PEER_IDLE_MS)
            address, length = _sockaddr(host, port)
            if lib.srt_bind(sock, address, length) == SRT_ERROR:
                reason = self.library.last_error()
                raise OSError(self.library.last_errno(), f"{reason} ({host}:{port})")
            if lib.srt_listen_callback(sock, self._callback, None) == SRT_ERROR:
                raise OSError(f"srt_listen_callback: {self.library.last_error()}")
            if lib.srt_listen(sock, backlog) == SRT_ERROR:
                raise OSError(f"srt_listen: {self.library.last_error()}")
        except Exception:
            lib.srt_close(sock)
            self.sock = SRT_INVALID_SOCK
            raise
        self._thread = threading.Thread(target=self._accept, name="srt-accept", daemon=True)
        self._thread.start()

    def _on_caller(
        self, _opaque: int | None, sock: int, _version: int, peer: int | None, stream_id: bytes
    ) -> int:
        # On libsrt's receiving thread: anything raised here would be printed by ctypes and the
        # caller ACCEPTED (ctypes returns 0), so every failure refuses.
        try:
            value = (stream_id or b"")[: MAX_STREAM_ID + 1].decode(errors="replace")
            reason = self.check(value, peer_host(peer))
        except Exception:
            log.exception("srt: checking a caller failed")
            reason = SRT_REJX_BAD_REQUEST
        if reason is None:
            return 0
        self.library.lib.srt_setrejectreason(sock, reason)
        return -1

    def _accept(self) -> None:
        lib = self.library.lib
        while not self._closing.is_set():
            sock = lib.srt_accept(self.sock, None, None)
            if sock == SRT_INVALID_SOCK:
                if self._closing.is_set():
                    return
                log.warning("srt_accept: %s", self.library.last_error())
                time.sleep(0.1)  # not a busy loop if the listener is broken
                continue
            connection = Connection(self.library, sock, self.loop)
            try:
                self.library.set_int(sock, SRTO_RCVTIMEO, self.idle_ms)
                self.loop.call_soon_threadsafe(self.accepted, connection)
            except (OSError, RuntimeError):
                connection.close()  # a caller gone already, or the loop stopping

    def close(self) -> None:
        """Stop listening (blocks until the accepting thread ends: call it off the loop)."""
        if self.sock == SRT_INVALID_SOCK:
            return
        self._closing.set()
        self.library.lib.srt_close(self.sock)
        if self._thread is not None:
            self._thread.join(10)
        self.sock = SRT_INVALID_SOCK


# --- the door --------------------------------------------------------------------------------

MAX_CONNECTIONS_OVER_LIMIT = 4
"""Connections open beyond the live limit (a sender back before its old connection timed out
holds two for a moment); more callers are refused, so threads stay bounded."""


class SrtDoor:
    """The SRT door of a ``LiveDoor``: the same broadcasts, limits and posts as RTMP."""

    def __init__(self, door: LiveDoor, library: Library) -> None:
        self.door = door
        self.library = library
        self.listener: Listener | None = None
        self.open_connections = 0
        """Read on libsrt's thread, changed on the loop: an int read is atomic under the GIL."""

    async def start(self, host: str, port: int, idle_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self.listener = Listener(self.library, loop, self.check, self._accepted, idle_seconds)
        await asyncio.to_thread(self.listener.open, host, port)

    async def close(self) -> None:
        if self.listener is not None:
            await asyncio.to_thread(self.listener.close)

    def check(self, stream_id: str, peer: str) -> int | None:
        """In libsrt's listen callback (its thread): refuse a caller before it is accepted.
        The key's hash is looked up through the database's synchronous path (one indexed
        read); the limits are read as they stand (``LiveDoor.begin`` checks them again, on
        the loop, when the connection is taken)."""
        try:
            parsed = parse_stream_id(stream_id)
        except StreamIdError as refused:
            log.info("srt: refused a caller from %s: %s", peer, refused)
            return refused.reason
        door = self.door
        limits = door.limits
        if self.open_connections >= limits.max_total + MAX_CONNECTIONS_OVER_LIMIT:
            log.info("srt: refused a caller from %s: too many connections", peer)
            return SRT_REJX_OVERLOAD
        key = door.db.read_here(db_live.live_key, parsed.key)
        if key is None:
            log.info("srt: refused a caller from %s: live.bad_key", peer)
            return SRT_REJX_FORBIDDEN
        current = door.by_key.get(key.id)
        if current is not None and not current.ended:
            if current.source != "mpegts":
                log.info("srt: refused a caller from %s: its key is live over RTMP", peer)
                return SRT_REJX_CONFLICT
            return None  # the same sender back: it continues its broadcast
        since = time.time() - limits.max_duration - limits.grace - 60
        mine, total = door.db.read_here(db_live.live_counts, key.user_id, since)
        if mine >= limits.max_per_user or total >= limits.max_total:
            log.info("srt: refused a caller from %s: live.too_many", peer)
            return SRT_REJX_OVERLOAD
        return None

    def _accepted(self, connection: Connection) -> None:
        task = asyncio.create_task(self.connection(connection), name="srt-connection")
        self.door.track(task)

    async def connection(self, connection: Connection) -> None:
        """One caller, from accept to its end: the TS into its broadcast."""
        from relay.intake.live import Refused

        self.open_connections += 1
        broadcast: Broadcast | None = None
        session = 0
        ended_here = False
        try:
            connection.start()
            stream_id = self.library.stream_id(connection.sock)
            try:
                parsed = parse_stream_id(stream_id)
                broadcast, session = await self.door.begin(parsed.key, connection, "mpegts")
            except (StreamIdError, Refused) as refused:
                # Taken between the callback's check and now (a second sender of the same
                # user): the caller sees its connection closed.
                log.info("srt: closed a caller: %s", getattr(refused, "code", refused))
                return
            while True:
                item = await connection.queue.get()
                if isinstance(item, Ended):
                    ended_here = item.goodbye
                    break
                if session != broadcast.session:
                    break  # taken over by the same sender's new connection
                over = await broadcast.feed_ts(item)
                if over is not None:
                    log.info("live %s: ended: %s", broadcast.post_id, over)
                    broadcast.end_reason = over
                    ended_here = True
                    break
        finally:
            self.open_connections -= 1
            await asyncio.to_thread(connection.close)
            if broadcast is not None and not broadcast.ended and session == broadcast.session:
                if ended_here:  # the sender said goodbye, or a limit ended it
                    await self.door.finish(broadcast, broadcast.end_reason)
                else:
                    broadcast.dropped(session)


def start_door(door: LiveDoor) -> SrtDoor | None:
    """The SRT door, or None (with one warning) when libsrt cannot be loaded."""
    try:
        library = Library.load()
    except (SrtUnavailable, OSError, AttributeError) as exc:
        log.warning("SRT is off: %s", exc)
        return None
    return SrtDoor(door, library)


def available() -> bool:
    """Whether libsrt can be opened here (``srt_url`` is null when it cannot)."""
    with contextlib.suppress(SrtUnavailable):
        find_library()
        return True
    return False
