"""The live door: a phone (Larix, Streamlabs, OBS, ffmpeg) pushes RTMP to
``rtmp://HOST:PORT/live/STREAM_KEY`` (or MPEG-TS over SRT: relay/intake/srt.py, which hands its
callers to ``LiveDoor.begin`` and their TS to ``Broadcast.feed_ts``); the relay makes a post,
plays it live as HLS and keeps the recording as the post's video.

How the key is checked before any media is taken, and why this way
-------------------------------------------------------------------
The relay reads RTMP itself only as far as a publisher needs (relay/intake/rtmp.py: the simple
handshake, the chunk stream, AMF0 ``connect``/``createStream``/``publish``), bounded to
``HELLO_BYTES`` and ``HELLO_SECONDS`` before the key is known. A wrong or revoked key gets the
``onStatus`` ``NetStream.Publish.BadName`` error, as nginx-rtmp answers a refused
``on_publish``, and the connection closes. A good key gets ``NetStream.Publish.Start``; from
then on each audio and video message is an FLV tag as it is (RTMP carries FLV tag bodies), and
the relay writes them to an ffmpeg child's stdin (``-f flv -i pipe:0``). ffmpeg does all the
media work: H.264/AAC passes through (``-c copy``) into HLS with 2 s segments, anything else is
transcoded to H.264/AAC. The same tags go to a recording file that becomes the post's video
through the normal video handler (web MP4, poster) when the broadcast ends.

Alternatives weighed:
- ffmpeg's own listener (``ffmpeg -listen 1 -i rtmp://…/live/KEY``) takes one connection per
  process and port, accepts whatever stream name a sender publishes (``rtmpproto.c`` only logs
  "Unexpected stream"), and would need the key in its argv, which any local user can read.
- nginx with the RTMP module checks keys through its ``on_publish`` callback and is the choice
  for operators who already run it (README, "Going live"; ``POST /api/v1/live/on_publish``
  answers that callback), but it is another daemon, and the embedded default runs none.

A sender that drops (a phone switching networks) has ``live_reconnect_grace_seconds`` to come
back with the same key and continue the same post; timestamps continue where they stopped. An
explicit end (``FCUnpublish``/``deleteStream``) ends the broadcast at once.

The HLS files live on this node's disk (``DATA_DIR/live/POST_ID/``) while the broadcast runs.
On a shared store (S3), each finished segment and then the playlist are copied to it as well
(relay/intake/live_upload.py, relay/storage/live.py), so every node serves the broadcast; on the
embedded default only the node that takes it in does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from relay.db import Database, queries
from relay.db import live as db_live
from relay.errors import CATALOG
from relay.intake import mpegts, rtmp
from relay.intake.accept import LIVE_TEXT, Acceptor, SpooledFile, live_ended
from relay.intake.live_upload import LiveUploader
from relay.model import PostState
from relay.spool import SpoolBackend, fsync_path
from relay.storage import Store

log = logging.getLogger("relay.live")

HELLO_SECONDS = 10.0
"""From the TCP connection to ``publish``: a sender that is slower is cut off."""
HELLO_BYTES = 64 * 1024
"""What a sender may send before its key is checked (a real one sends ~1 KiB)."""
MAX_COMMAND_BYTES = 16 * 1024
MAX_MEDIA_MESSAGE = 8 * 1024 * 1024
"""One video frame; a 4K keyframe at 50 Mbit/s is ~2 MiB."""
MAX_HELLOS_PER_CLIENT = 20
"""Connections from one address not yet past ``publish``; more are closed at once (the SMTP
door's limit, RELAY_SMTP_MAX_CONNECTIONS_PER_CLIENT, for the same reason)."""
IDLE_SECONDS = 30.0
"""A publisher that sends nothing for this long has dropped."""
START_AFTER_TAGS = 60
"""Tags held back while waiting to see both audio and video codecs before ffmpeg starts."""
BITRATE_WINDOW = 10.0
BITRATE_SETTLE = 3.0
"""Seconds of media before the bitrate is judged (a first keyframe is a burst)."""
SEGMENT_SECONDS = 2
PLAYLIST = "index.m3u8"
KEEP_HLS_SECONDS = 600.0
"""A broadcast's HLS stays this long after its end (the page shows the replay by then)."""
HOLD_TS_BYTES = 1 << 20
"""TS held back while waiting for its PMT (the codecs) before ffmpeg starts; a TS sends its
PMT every 100 ms or so."""

Source = Literal["flv", "mpegts"]
"""What a broadcast's sender sends: FLV tags (RTMP) or an MPEG-TS (SRT)."""
RECORDING = {"flv": ("recording.flv", "live.flv", "video/x-flv"),
             "mpegts": ("recording.ts", "live.ts", "video/mp2t")}  # fmt: skip
"""Per source: the recording's file, its name in the spool, its type."""


class Closable(Protocol):
    """A sender's connection, as a broadcast sees it: closed when the sender comes back."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LiveLimits:
    grace: float
    max_duration: float
    max_bitrate: int
    max_per_user: int
    max_total: int


class Refused(Exception):
    def __init__(self, code: str, status: str) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


class Broadcast:
    """One broadcast: one post, one ffmpeg, one recording, across reconnects of its key.

    Its sender sends FLV tags (RTMP: ``feed``) or an MPEG-TS (SRT: ``feed_ts``); either way
    ffmpeg makes the HLS, the recording keeps what came in the sender's format, and the limits
    are judged on the stream's own timestamps."""

    def __init__(
        self,
        door: LiveDoor,
        key: db_live.StreamKey,
        post_id: str,
        broadcast_id: str,
        source: Source = "flv",
    ):
        self.door = door
        self.key = key
        self.post_id = post_id
        self.broadcast_id = broadcast_id
        self.source: Source = source
        self.ts = mpegts.TsStream() if source == "mpegts" else None
        self.held_bytes = 0
        self.dir = door.root / post_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.recording_path = self.dir / RECORDING[source][0]
        self.recording: BinaryIO = open(self.recording_path, "wb")  # noqa: SIM115
        self.ffmpeg: asyncio.subprocess.Process | None = None
        self.ffmpeg_log = self.dir / "ffmpeg.log"
        self.held: list[bytes] = []
        """Tags before ffmpeg starts (it starts once the codecs are known)."""
        self.audio: int | None = None
        self.video: int | None = None
        self.passthrough: bool | None = None
        self.tags = 0
        self.offset = 0  # ms added to this connection's timestamps
        self.first: int | None = None  # this connection's first timestamp
        self.last = 0  # the last timestamp written, ms
        self.window: collections.deque[tuple[float, int]] = collections.deque()
        self.window_bytes = 0
        self.connected = False
        self.session = 0
        """Counts connections: a sender that comes back takes over from its old one."""
        self.writer: Closable | None = None
        self.grace: asyncio.Task[None] | None = None
        self.ended = False
        self.end_reason = "ended"
        self.uploader: LiveUploader | None = None
        if door.store is not None:
            self.uploader = LiveUploader(
                door.store, post_id, self.dir, PLAYLIST, lambda: door.deleted(post_id)
            )
            self.uploader.start()

    # --- connections ---------------------------------------------------------------------

    def connect(self, writer: Closable) -> int:
        """A sender (re)connected; its session number. A phone that switched networks comes
        back before its old connection times out: the old one is closed, the new one goes on."""
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        if self.connected and self.writer is not None:
            self.writer.close()
        self.session += 1
        self.writer = writer
        self.connected = True
        self.first = None
        # A reconnect continues a frame after the last one, so the timeline has no overlap.
        self.offset = self.last + 40 if self.tags else 0
        if self.ts is not None:
            self.ts.reconnect()  # its TS shifts its own clock the same way
        self.window.clear()
        self.window_bytes = 0
        return self.session

    def dropped(self, session: int) -> None:
        """The sender is gone without saying so: wait for it to come back."""
        if session != self.session:
            return  # an old connection, taken over
        self.connected = False
        if not self.ended:
            self.grace = asyncio.create_task(self._grace(), name=f"live-grace-{self.post_id}")

    async def _grace(self) -> None:
        await asyncio.sleep(self.door.limits.grace)
        if not self.connected:
            await self.door.finish(self, "ended")

    # --- media ---------------------------------------------------------------------------

    async def feed(self, kind: int, timestamp: int, body: bytes) -> str | None:
        """One audio or video message; an error code when a limit is passed."""
        if not body:
            return None
        if self.first is None:
            self.first = timestamp
        stamp = self.offset + max(0, timestamp - self.first)
        self.last = max(self.last, stamp)
        if kind == rtmp.VIDEO and self.video is None:
            self.video = rtmp.video_codec(body)
        if kind == rtmp.AUDIO and self.audio is None:
            self.audio = rtmp.audio_codec(body)
        tag = rtmp.flv_tag(kind, stamp, body)
        self.tags += 1
        if self.ffmpeg is None:
            self.held.append(tag)
            both = self.video is not None and self.audio is not None
            if both or len(self.held) >= START_AFTER_TAGS:
                await self._start_ffmpeg()
        else:
            self.recording.write(tag)
            await self._to_ffmpeg(tag)
        return self._over_limit(len(body), stamp)

    async def feed_ts(self, data: bytes) -> str | None:
        """MPEG-TS as it came (any size); an error code when a limit is passed."""
        assert self.ts is not None
        packets = self.ts.feed(data)
        if not packets:
            return None
        self.tags += 1
        self.last = self.ts.elapsed_ms
        if self.ffmpeg is None:
            self.held.append(packets)
            self.held_bytes += len(packets)
            if self.ts.codecs_known or self.held_bytes >= HOLD_TS_BYTES:
                await self._start_ffmpeg()
        else:
            self.recording.write(packets)
            await self._to_ffmpeg(packets)
        return self._over_limit(len(packets), self.last)

    def _over_limit(self, size: int, stamp: int) -> str | None:
        limits = self.door.limits
        if stamp / 1000 > limits.max_duration:
            return "live.too_long"
        # Judged on the stream's own clock (its timestamps), not the wall's: a sender that lags
        # or catches up (a phone between networks, a busy machine) is neither under nor over.
        now = stamp / 1000
        if self.window and now < self.window[-1][0]:
            now = self.window[-1][0]  # audio and video interleave a few ms out of order
        self.window.append((now, size))
        self.window_bytes += size
        while self.window and self.window[0][0] < now - BITRATE_WINDOW:
            self.window_bytes -= self.window.popleft()[1]
        span = now - self.window[0][0]
        if span >= BITRATE_SETTLE and self.window_bytes * 8 / span > limits.max_bitrate:
            return "live.bitrate"
        return None

    def ffmpeg_args(self) -> list[str]:
        if self.ts is not None:
            self.passthrough = self.ts.passthrough
            self.video, self.audio = self.ts.video, self.ts.audio
        else:
            self.passthrough = self.video in (rtmp.AVC, None) and self.audio in (rtmp.AAC, None)
        # A TS says its codecs in its PMT but not their parameters: ffmpeg reads 5 s of it by
        # default to find them, which would hold the first segment back that long. One second
        # has a phone's keyframe and audio; the playlist came ~3 s sooner with it.
        probe = ["-analyzeduration", "1000000"] if self.source == "mpegts" else []
        return ["-hide_banner", "-nostats", "-loglevel", "error", *probe, "-f", self.source,
                "-i", "pipe:0", *hls_output_args(self.dir, self.passthrough)]  # fmt: skip

    async def _start_ffmpeg(self) -> None:
        args = self.ffmpeg_args()
        with open(self.ffmpeg_log, "ab") as errors:
            self.ffmpeg = await asyncio.create_subprocess_exec(
                self.door.ffmpeg,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=errors,
                preexec_fn=_lower_priority,
            )
        log.info(
            "live %s: ffmpeg %s (video codec %s, audio codec %s)",
            self.post_id,
            "passes through" if self.passthrough else "transcodes",
            self.video,
            self.audio,
        )
        if self.source == "flv":
            header = rtmp.flv_header(audio=self.audio is not None, video=self.video is not None)
            self.recording.write(header)
            await self._to_ffmpeg(header)
        held, self.held = self.held, []
        self.held_bytes = 0
        for tag in held:
            self.recording.write(tag)
            await self._to_ffmpeg(tag)

    async def _to_ffmpeg(self, data: bytes) -> None:
        assert self.ffmpeg is not None and self.ffmpeg.stdin is not None
        if self.ffmpeg.returncode is not None:
            return  # it died: the recording goes on; the end says so in the log
        try:
            self.ffmpeg.stdin.write(data)
            await self.ffmpeg.stdin.drain()  # a transcoder slower than the sender slows it
        except (BrokenPipeError, ConnectionResetError):
            log.warning("live %s: ffmpeg stopped taking the stream", self.post_id)

    async def close_media(self) -> None:
        """End ffmpeg's input (it then ends the playlist) and close the recording."""
        if self.ffmpeg is None and self.held:
            await self._start_ffmpeg()
        if self.ffmpeg is not None and self.ffmpeg.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.ffmpeg.stdin.close()
                await self.ffmpeg.stdin.wait_closed()
            try:
                await asyncio.wait_for(self.ffmpeg.wait(), 30)
            except TimeoutError:
                self.ffmpeg.kill()
                await self.ffmpeg.wait()
        await asyncio.to_thread(self._close_recording)

    def _close_recording(self) -> None:
        self.recording.flush()
        os.fsync(self.recording.fileno())
        self.recording.close()


def hls_output_args(folder: Path, passthrough: bool) -> list[str]:
    """ffmpeg's output arguments for a broadcast's live HLS (bench/ runs ffmpeg alone with
    the same ones)."""
    if passthrough:
        codecs = ["-c", "copy"]
    else:
        codecs = [
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-pix_fmt", "yuv420p",
            "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})",
            "-c:a", "aac", "-b:a", "128k",
        ]  # fmt: skip
    return [
        "-map", "0:v?", "-map", "0:a?", "-map_metadata", "-1", "-dn", "-sn",
        *codecs,
        "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_list_size", "0",
        "-hls_playlist_type", "event", "-hls_flags", "independent_segments+temp_file",
        "-hls_segment_filename", str(folder / "s%05d.ts"),
        str(folder / PLAYLIST),
    ]  # fmt: skip


def _lower_priority() -> None:
    # Live media work yields to the doors, as the process pool's does (relay/workpool.py).
    with contextlib.suppress(OSError):
        os.nice(5)


class LiveDoor:
    def __init__(
        self,
        db: Database,
        acceptor: Acceptor,
        spool: SpoolBackend,
        root: Path,
        node: str,
        limits: LiveLimits,
        store: Store | None = None,
    ) -> None:
        """``store``: the shared store that other nodes serve the live HLS from (None: only
        this node serves it)."""
        self.db = db
        self.acceptor = acceptor
        self.spool = spool
        self.root = root
        self.node = node
        self.limits = limits
        self.store = store
        self.ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
        self.by_key: dict[str, Broadcast] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._finishing: set[asyncio.Task[None]] = set()
        self._beginning = asyncio.Lock()
        self._hellos: collections.Counter[str] = collections.Counter()

    def track(self, task: asyncio.Task[None]) -> None:
        """A sender's connection task of another door (SRT): cancelled at shutdown, as RTMP's."""
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    # --- the RTMP conversation -------------------------------------------------------------

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        broadcast: Broadcast | None = None
        session = 0
        graceful = False
        hello = self._hellos[client] < MAX_HELLOS_PER_CLIENT
        try:
            if not hello:
                return  # closed at once: too many from there are still saying hello
            self._hellos[client] += 1
            try:
                async with asyncio.timeout(HELLO_SECONDS):
                    await rtmp.server_handshake(reader, writer)
                    chunks = rtmp.ChunkReader(reader, MAX_COMMAND_BYTES)
                    stream_id, name = await self._until_publish(chunks, writer)
            finally:
                self._hellos[client] -= 1
                if self._hellos[client] <= 0:
                    del self._hellos[client]
            try:
                broadcast, session = await self.begin(name, writer, "flv")
            except Refused as refused:
                log.info("live: refused a sender from %s: %s", peer and peer[0], refused.code)
                message = CATALOG[refused.code].message
                writer.write(_status(stream_id, "error", refused.status, message))
                await writer.drain()
                return
            writer.write(_status(stream_id, "status", "NetStream.Publish.Start", "live"))
            await writer.drain()
            chunks.max_message = MAX_MEDIA_MESSAGE
            graceful = await self._media(chunks, writer, broadcast, session)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # dropped: a broadcast waits out its grace
        except rtmp.ProtocolError as exc:
            log.info("live: %s broke RTMP: %s", peer and peer[0], exc)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if broadcast is not None and not broadcast.ended and session == broadcast.session:
                if graceful:
                    await self.finish(broadcast, broadcast.end_reason)
                else:
                    broadcast.dropped(session)

    async def _until_publish(
        self, chunks: rtmp.ChunkReader, writer: asyncio.StreamWriter
    ) -> tuple[int, str]:
        """Answer ``connect``, ``releaseStream``, ``FCPublish`` and ``createStream`` until the
        sender says ``publish``: (its message stream, the stream name it publishes)."""
        while True:
            if chunks.bytes_read > HELLO_BYTES:
                raise rtmp.ProtocolError("too much before publish")
            message = await chunks.message()
            values = _command(message)
            if values is None:
                _control(message, writer)
                continue
            name, txn = values[0], values[1] if len(values) > 1 else 0
            if name == "connect":
                writer.write(rtmp.control(rtmp.WINDOW_ACK_SIZE, rtmp.WINDOW.to_bytes(4, "big")))
                writer.write(
                    rtmp.control(rtmp.SET_PEER_BANDWIDTH, rtmp.WINDOW.to_bytes(4, "big") + b"\x02")
                )
                writer.write(
                    rtmp.control(rtmp.SET_CHUNK_SIZE, rtmp.OUT_CHUNK_SIZE.to_bytes(4, "big"))
                )
                writer.write(
                    rtmp.command(
                        [
                            "_result",
                            txn,
                            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31},
                            {
                                "level": "status",
                                "code": "NetConnection.Connect.Success",
                                "description": "Connection succeeded.",
                                "objectEncoding": 0,
                            },
                        ]
                    )
                )
            elif name == "createStream":
                writer.write(rtmp.command(["_result", txn, None, 1]))
            elif name == "publish":
                stream = values[3] if len(values) > 3 and isinstance(values[3], str) else ""
                # Some apps append ?query to the key (tokens of other servers): not ours.
                return message.stream_id or 1, stream.partition("?")[0].strip()
            elif name in ("releaseStream", "FCPublish", "_checkbw"):
                writer.write(rtmp.command(["_result", txn, None, rtmp.UNDEFINED]))
            elif name == "play":
                raise rtmp.ProtocolError("play: this server only takes publishers")
            await writer.drain()

    async def _media(
        self,
        chunks: rtmp.ChunkReader,
        writer: asyncio.StreamWriter,
        broadcast: Broadcast,
        session: int,
    ) -> bool:
        """Audio and video into the broadcast until the sender ends (True) or a limit ends it
        (True, with the reason on the broadcast)."""
        window = rtmp.WINDOW
        acked = 0
        while True:
            async with asyncio.timeout(IDLE_SECONDS):
                message = await chunks.message()
            if session != broadcast.session:
                return False  # taken over by the same sender's new connection
            if chunks.bytes_read - acked >= window:
                acked = chunks.bytes_read
                writer.write(rtmp.control(rtmp.ACK, (acked & 0xFFFFFFFF).to_bytes(4, "big")))
            if message.type in (rtmp.AUDIO, rtmp.VIDEO):
                over = await broadcast.feed(message.type, message.timestamp, message.body)
                if over is not None:
                    log.info("live %s: ended: %s", broadcast.post_id, over)
                    broadcast.end_reason = over
                    return True
                continue
            values = _command(message)
            if values is None:
                if message.type == rtmp.WINDOW_ACK_SIZE and len(message.body) >= 4:
                    window = max(4096, int.from_bytes(message.body[:4], "big"))
                _control(message, writer)
                continue
            if values[0] in ("FCUnpublish", "deleteStream", "closeStream"):
                return True

    # --- broadcasts ------------------------------------------------------------------------

    async def begin(self, name: str, writer: Closable, source: Source) -> tuple[Broadcast, int]:
        """The broadcast the key starts or (within its grace) continues."""
        if not name or len(name) > 200:
            raise Refused("live.bad_key", "NetStream.Publish.BadName")
        key = await self.db.read(db_live.live_key, name)
        if key is None:
            raise Refused("live.bad_key", "NetStream.Publish.BadName")
        async with self._beginning:  # two connections with one key at once: one broadcast
            return await self._begin_locked(key, writer, source)

    async def _begin_locked(
        self, key: db_live.StreamKey, writer: Closable, source: Source
    ) -> tuple[Broadcast, int]:
        current = self.by_key.get(key.id)
        if current is not None and not current.ended:
            if current.source != source:
                # Live over RTMP and now SRT (or the other way): one recording cannot hold
                # both an FLV and a TS. The sender may try again once the other ends.
                raise Refused("live.too_many", "NetStream.Publish.Rejected")
            # The key's owner again: back after a drop, or on a new network before the old
            # connection noticed it was gone. Only who holds the key can do this.
            session = current.connect(writer)
            log.info("live %s: the sender is back", current.post_id)
            return current, session
        since = time.time() - self.limits.max_duration - self.limits.grace - 60
        mine, total = await self.db.read(db_live.live_counts, key.user_id, since)
        if mine >= self.limits.max_per_user or total >= self.limits.max_total:
            raise Refused("live.too_many", "NetStream.Publish.Rejected")
        title = key.title or "Live"
        post = await self.acceptor.accept(key.user_id, title=title, text=LIVE_TEXT, source="live")
        broadcast_id = await self.db.run(db_live.start_broadcast, key, post.id, self.node)
        broadcast = Broadcast(self, key, post.id, broadcast_id, source)
        session = broadcast.connect(writer)
        self.by_key[key.id] = broadcast
        log.info("live %s: on the air", post.id)
        return broadcast, session

    async def finish(self, broadcast: Broadcast, reason: str) -> None:
        """End the broadcast: the recording becomes the post's video."""
        if broadcast.ended:
            return
        broadcast.ended = True
        broadcast.end_reason = reason
        task = asyncio.current_task()
        if task is not None:
            self._finishing.add(task)
        try:
            if self.by_key.get(broadcast.key.id) is broadcast:
                del self.by_key[broadcast.key.id]
            await broadcast.close_media()
            if broadcast.uploader is not None:
                # Before the replay is made: its being ready is what removes the stored HLS.
                await broadcast.uploader.finish()
            seconds = round(broadcast.last / 1000, 3)
            code = reason if reason in CATALOG else "ended"

            def ended(conn: Any) -> None:
                db_live.end_broadcast(conn, broadcast.broadcast_id, code, seconds)
                live_ended(conn, broadcast.post_id, code, seconds)

            if broadcast.tags:
                spool_name = await self._spool_recording(broadcast)
                size = self.spool.path(spool_name).stat().st_size
                _, name, mime = RECORDING[broadcast.source]
                spooled = SpooledFile(spool_name, name, mime, size)
                await self.acceptor.attach(
                    broadcast.post_id, broadcast.key.user_id, spooled, also=ended
                )
            else:
                await self.db.run(ended)
            log.info("live %s: over after %.1f s (%s)", broadcast.post_id, seconds, code)
            # Players that were watching finish the playlist; then its files go.
            asyncio.get_running_loop().call_later(
                KEEP_HLS_SECONDS, shutil.rmtree, broadcast.dir, True
            )
        except Exception:
            log.exception("live %s: ending the broadcast failed", broadcast.post_id)
        finally:
            if task is not None:
                self._finishing.discard(task)

    async def salvage(self, folder: Path) -> int:
        """Recordings that a process which is gone left (killed mid-broadcast, its broadcasts
        ended as ``live.interrupted``): each becomes its post's video, as far as it got."""
        from relay.auth import new_id

        salvaged = 0
        recordings = [
            p for p in sorted(folder.glob("*/recording.*")) if p.suffix in (".flv", ".ts")
        ]
        for recording in recordings:
            if recording.stat().st_size <= max(len(rtmp.flv_header(True, True)), mpegts.PACKET):
                continue
            source: Source = "flv" if recording.suffix == ".flv" else "mpegts"
            found = await self.db.read(db_live.broadcast_of_post, recording.parent.name)
            if found is None or found["state"] != "ended":
                continue
            await asyncio.to_thread(fsync_path, recording)
            name = await asyncio.to_thread(self.spool.adopt, recording, new_id())
            size = self.spool.path(name).stat().st_size
            spooled = SpooledFile(name, RECORDING[source][1], RECORDING[source][2], size)
            post_id = found["post_id"]
            await self.acceptor.attach(
                post_id,
                found["user_id"],
                spooled,
                also=lambda conn, p=post_id: live_ended(conn, p, "live.interrupted", 0.0),
            )
            log.info("live %s: the recording a stopped relay left is the post's video", post_id)
            salvaged += 1
        return salvaged

    async def _spool_recording(self, broadcast: Broadcast) -> str:
        from relay.auth import new_id

        name = new_id()
        return await asyncio.to_thread(self.spool.adopt, broadcast.recording_path, name)

    async def close(self) -> None:
        """At shutdown: senders are cut off and their broadcasts end now (no grace: nobody
        would be here to take them back)."""
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for broadcast in list(self.by_key.values()):
            if broadcast.grace is not None:
                broadcast.grace.cancel()
            await self.finish(broadcast, "ended")
        for task in list(self._finishing):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def deleted(self, post_id: str) -> bool:
        row = await self.db.read(queries.post_row, post_id)
        return row is None or row["state"] == PostState.DELETED.value

    def live_dir(self, post_id: str) -> Path | None:
        """The folder of a broadcast this node is taking in now (or just took)."""
        folder = self.root / post_id
        return folder if folder.is_dir() else None


def _command(message: rtmp.Message) -> list[Any] | None:
    if message.type == rtmp.COMMAND_AMF0:
        body = message.body
    elif message.type == rtmp.COMMAND_AMF3:
        body = message.body[1:]  # an AMF0 command behind a format byte (spec 7.1.1)
    else:
        return None
    values = rtmp.amf0_decode(body, limit=8)
    if not values or not isinstance(values[0], str):
        raise rtmp.ProtocolError("a command without a name")
    return values


def _control(message: rtmp.Message, writer: asyncio.StreamWriter) -> None:
    ping = message.type == rtmp.USER_CONTROL and len(message.body) >= 6
    if ping and int.from_bytes(message.body[:2], "big") == rtmp.PING_REQUEST:
        body = rtmp.PING_RESPONSE.to_bytes(2, "big") + message.body[2:6]
        writer.write(rtmp.control(rtmp.USER_CONTROL, body))


def _status(stream_id: int, level: str, code: str, description: str) -> bytes:
    info = {"level": level, "code": code, "description": description}
    return rtmp.encode(
        5, rtmp.COMMAND_AMF0, rtmp.amf0_encode("onStatus", 0, None, info), stream_id=stream_id
    )
