"""Composition root: settings → parts → one aiohttp application that also runs the SMTP door
and the workers. Every resource starts and stops in ``cleanup_ctx``, in order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import signal
import socket
from collections.abc import AsyncIterator

from aiohttp import web

import handlers
from relay import jobs, lifecycle, publish
from relay.config import Settings, parse_listen
from relay.context import RELAY, Relay
from relay.db import Database, queries
from relay.db.migrations import SchemaTooNew
from relay.doors_first import DoorsFirst
from relay.errors import StorageError
from relay.intake import http as http_intake
from relay.intake import tus as tus_intake
from relay.intake.accept import Acceptor
from relay.intake.smtp import FailureGuard, MailHandler, smtp_factory, tls_context
from relay.live_photos import LivePhotos
from relay.mail.replies import MAIL_COMMAND
from relay.mail.reply_job import MailCommands
from relay.mail.sender import Dns
from relay.model import Limits
from relay.node import start_node, stop_node
from relay.notice import RECONNECT_NOTICE, Notices
from relay.pipeline import Pipeline, missing_media_tools
from relay.publish import renew
from relay.publish.deliver import DELIVER, Publisher
from relay.publish.net import Http
from relay.publish.x import client_from as x_client
from relay.reply import REPLY, Replier, reply_key
from relay.sealed import Sealer
from relay.spool import open_spool
from relay.storage import open_store
from relay.web import api, auth, embed, feeds, pages, posts, streaming
from relay.web import app as web_app
from relay.web import live as live_web
from relay.web.present import post_json
from relay.worker import Workers
from relay.workpool import WorkPool

log = logging.getLogger("relay")


def build(settings: Settings) -> Relay:
    # A broken install fails here, at start, with the part named: not later, item by item.
    handlers.load()
    loaded = publish.load()
    if loaded.broken:
        log.error("adapters that did not load: %s", ", ".join(sorted(loaded.broken)))
    missing = missing_media_tools()
    if missing:
        # Said once, here; each video or audio item then fails at once with media.ffmpeg_missing.
        log.warning(
            "%s not found on PATH: video and audio items will fail (media.ffmpeg_missing) "
            "until ffmpeg is installed; run `relay doctor`",
            " and ".join(missing),
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    node, node_lock, gone = start_node(settings.data_dir)
    db = Database(settings.database_url, sealer=Sealer.from_settings(settings))
    store = open_store(settings.storage_url, settings)
    spool = open_spool(settings, store)
    pool = WorkPool(settings.workers)
    limits = Limits(
        max_pixels=settings.max_image_pixels,
        max_duration=settings.max_duration_seconds,
        timeout=settings.processing_timeout_seconds,
    )
    workers = Workers(db, settings.job_lease_seconds, settings.job_backoff_cap_seconds, node)
    doors_first = DoorsFirst(settings.doors_first_seconds)
    pipeline = Pipeline(
        db,
        spool,
        store,
        pool,
        settings.data_dir / "work",
        limits,
        workers.wake,
        media_slots=settings.workers,
        doors_first=doors_first,
        options={
            "video_crf": settings.video_crf,
            "video_preset": settings.video_preset,
            "ffmpeg_memory_bytes": settings.ffmpeg_memory_bytes,
            "audio_loudness_lufs": settings.audio_loudness_lufs,
            "video_hls": settings.video_hls,
            "timezone": settings.timezone,
            "default_language": settings.default_language,
        },
    )
    pipeline.register(workers)
    LivePhotos(db, spool, pool, workers.wake, pipeline.options).register(workers)
    acceptor = Acceptor(db, settings.job_max_attempts, workers.wake, spool, doors_first)
    relay = Relay(
        settings, db, spool, store, pool, workers, acceptor, node_lock=node_lock, gone=gone
    )
    publisher = Publisher(
        db,
        store,
        Http(allow_private=settings.allow_private_destinations),
        functools.partial(post_json, relay),
        max_age=settings.delivery_max_age_seconds,
        linkedin_app=renew.OAuthApp.linkedin(settings),
        x_client=x_client(settings),
        # Instagram's padded photo is made when a delivery needs it, as the pipeline works.
        pool=pool,
        work_dir=settings.data_dir / "work",
    )
    workers.register(DELIVER, publisher.deliver, publisher.give_up)
    # The post's life: scheduled publishing, edits and removals on channels, media purge.
    life = lifecycle.Jobs(db, store)
    workers.register(lifecycle.PUBLISH, life.publish)
    workers.register(lifecycle.PURGE, life.purge)
    workers.register(lifecycle.EDIT, publisher.edit)
    workers.register(lifecycle.RETRACT, publisher.retract)
    replier = Replier(db, settings, relay.page_url, reply_key(settings))
    workers.register(REPLY, replier.run, replier.give_up)
    notices = Notices(db, settings)
    workers.register(RECONNECT_NOTICE, notices.reconnect, notices.give_up)
    # Replies to that mail ([delete], new text): relay/mail/reply_job.py.
    commands = MailCommands(db, spool, pool)
    workers.register(MAIL_COMMAND, commands.run, commands.give_up)
    workers.register(lifecycle.LIVE_REPLAY, life.live_replay)
    relay.publisher = publisher
    return relay


async def start(relay: Relay) -> None:
    """Migrate, check storage, and recover what a crash left behind."""
    await asyncio.to_thread(relay.db.migrate)
    await relay.store.check()
    # Only processes of this data folder that are known gone (relay.node): other nodes' jobs
    # are freed by their leases running out.
    released = 0
    for node in relay.gone:
        released += await relay.db.run(jobs.release_node, node)
    in_use = await relay.db.read(queries.spool_names_in_use)
    removed = await asyncio.to_thread(relay.spool.recover, in_use)
    if released or removed:
        log.info(
            "recovered: %d job(s) of a process that is gone, %d unclaimed spool file(s)",
            released,
            len(removed),
        )


TRIM_INTERVAL = 600.0


async def _trim_forever(relay: Relay) -> None:
    """The node's copies of spooled files that other nodes processed go after a while."""
    while True:
        await asyncio.sleep(TRIM_INTERVAL)
        try:
            await asyncio.to_thread(relay.spool.trim_cache)
        except OSError as exc:
            log.warning("trimming the spool's cache failed: %s", exc)


async def _relay_ctx(app: web.Application) -> AsyncIterator[None]:
    relay = build(app[SETTINGS])
    app[RELAY] = relay
    trimming: asyncio.Task[None] | None = None
    try:
        await start(relay)
        trimming = asyncio.create_task(_trim_forever(relay), name="spool-trim")
        yield
    finally:
        if trimming is not None:
            trimming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trimming
        if relay.publisher is not None:
            await relay.publisher.http.close()
        relay.pool.close()
        # A claim a cancelled worker had handed to a database thread can run after the workers'
        # release (the thread goes on though its caller is gone), and the job would then wait
        # out its lease. With the threads stopped, release once more.
        relay.db.close(
            last=functools.partial(jobs.release_worker, prefix=relay.workers.worker_prefix)
        )
        if relay.node_lock is not None:
            stop_node(relay.settings.data_dir, relay.workers.node, relay.node_lock)


async def _smtp_ctx(app: web.Application) -> AsyncIterator[None]:
    relay = app[RELAY]
    settings = relay.settings
    host, port = parse_listen(settings.smtp_listen)
    handler = MailHandler(
        relay.db,
        relay.spool,
        relay.acceptor,
        settings.mail_domain,
        resolver=Dns(settings.dns_servers),
        authserv_id=settings.smtp_hostname or settings.mail_domain,
        reply_key=reply_key(settings),
        max_attempts=settings.job_max_attempts,
    )
    tls = None
    if settings.smtp_tls_cert and settings.smtp_tls_key:
        tls = tls_context(settings.smtp_tls_cert, settings.smtp_tls_key)
    # One for all connections: failures and open connections are counted per client IP.
    guard = FailureGuard(max_connections=settings.smtp_max_connections_per_client)
    # Once, not per connection: aiosmtpd asks the resolver for the FQDN of every session
    # it starts when it is given none.
    hostname = settings.smtp_hostname or await asyncio.to_thread(socket.getfqdn)
    server = await asyncio.get_running_loop().create_server(
        lambda: smtp_factory(
            handler,
            settings.max_message_bytes,
            hostname,
            tls=tls,
            require_tls=settings.smtp_require_tls,
            guard=guard,
            max_failures=settings.smtp_max_failed_recipients,
            failure_delay=settings.smtp_failure_delay_seconds,
        ),
        host,
        port,
    )
    log.info("SMTP on %s:%d for *@%s", host, port, settings.mail_domain)
    yield
    server.close()
    await server.wait_closed()


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    """The RTMP and SRT doors (relay/intake/live.py, srt.py), with the HTTP door that serves
    their HLS."""
    from relay.db import live as db_live
    from relay.intake import srt
    from relay.intake.live import IDLE_SECONDS, LiveDoor, LiveLimits
    from relay.storage import live as live_store
    from relay.web.live import LIVE_DOOR

    relay = app[RELAY]
    settings = relay.settings
    ended = await relay.db.run(db_live.end_orphans, relay.gone)
    if ended:
        log.info("%d broadcast(s) of a process that is gone: ended", ended)
    # One folder per process: several may share a data folder.
    root = settings.data_dir / "live" / relay.workers.node
    root.mkdir(parents=True, exist_ok=True)
    door = LiveDoor(
        relay.db,
        relay.acceptor,
        relay.spool,
        root,
        relay.workers.node,
        LiveLimits(
            grace=settings.live_reconnect_grace_seconds,
            max_duration=settings.live_max_duration_seconds,
            max_bitrate=settings.live_max_bitrate,
            max_per_user=settings.live_max_per_user,
            max_total=settings.live_max_broadcasts,
        ),
        store=live_store.shared(relay.store),
    )
    app[LIVE_DOOR] = door
    # A process killed mid-broadcast: its recordings become their posts' videos, then go.
    for gone in relay.gone:
        left = settings.data_dir / "live" / gone
        if left.is_dir():
            await door.salvage(left)
        await asyncio.to_thread(shutil.rmtree, left, True)
    server = None
    if settings.rtmp_on:
        host, port = parse_listen(settings.rtmp_listen)
        server = await asyncio.start_server(door.connection, host, port)
        log.info("RTMP on %s:%d (%s/KEY)", host, port, settings.rtmp_url)
    srt_door = srt.start_door(door) if settings.srt_on else None
    if srt_door is not None:
        host, port = parse_listen(settings.srt_listen)
        try:
            await srt_door.start(host, port, IDLE_SECONDS)
        except OSError:
            if server is not None:
                server.close()
            raise
        log.info("SRT on %s:%d (streamid #!::r=KEY,m=publish)", host, port)
    yield
    if server is not None:
        server.close()
    if srt_door is not None:
        await srt_door.close()  # no new callers; those connected end with the door below
    await door.close()
    if server is not None:
        await server.wait_closed()
    await asyncio.to_thread(shutil.rmtree, root, True)


async def _workers_ctx(app: web.Application) -> AsyncIterator[None]:
    relay = app[RELAY]
    # One job loop more than media processes: while a job stores what its media process made
    # and commits (~25 ms of a photo's ~200), the next one's media work has started. The
    # pipeline lets only ``workers`` jobs into the media step at once (Pipeline.media_slots).
    loops = relay.settings.workers + 1 if relay.settings.workers else 0
    tasks = [asyncio.create_task(relay.workers.run(n), name=f"worker-{n}") for n in range(loops)]
    relay.workers.tasks = tasks
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Hand what we were doing back to the queue now rather than when our leases run out.
    await relay.db.run(jobs.release_worker, relay.workers.worker_prefix)


SETTINGS = web.AppKey("settings", Settings)


def make_app(
    settings: Settings, *, smtp: bool = True, workers: bool = True, live: bool = False
) -> web.Application:
    # The HTML errors middleware sits inside the JSON one: a browser's request gets an error
    # page from it, and every other request's errors pass through to the JSON bodies.
    app = web.Application(
        middlewares=[api.errors_middleware, pages.html_errors], client_max_size=1 << 20
    )
    app[SETTINGS] = settings
    auth.setup(app, settings.auth_max_failures, settings.auth_failure_window_seconds)
    app.cleanup_ctx.append(_relay_ctx)
    app.cleanup_ctx.append(tus_intake.tus_ctx)
    if smtp:
        app.cleanup_ctx.append(_smtp_ctx)
    if live and (settings.rtmp_on or settings.srt_on):
        app.cleanup_ctx.append(_live_ctx)
    if workers:
        app.cleanup_ctx.append(_workers_ctx)
    api.setup_routes(app)
    posts.setup_routes(app)
    http_intake.setup_routes(app)
    tus_intake.setup_routes(app)
    pages.setup_routes(app)
    web_app.setup(app, settings)  # the web app at "/": sign-in, posts
    feeds.setup_routes(app)
    embed.setup_routes(app)
    live_web.setup_routes(app)
    streaming.setup_routes(app)
    return app


async def _run_without_http(app: web.Application) -> None:
    """A node with no HTTP door (``--no-http``, ``relay worker``): the same parts, started and
    stopped in the same order, until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _roles(smtp: bool, http: bool, workers: bool, settings: Settings) -> str:
    host, port = parse_listen(settings.http_listen)
    said = []
    if http:
        said.append(f"HTTP on {host}:{port} ({settings.public_url})")
    if smtp:
        said.append(f"SMTP on {settings.smtp_listen}")
    if http and settings.rtmp_on:
        said.append(f"RTMP on {settings.rtmp_listen}")
    if http and settings.srt_on:
        from relay.intake import srt

        # Without libsrt the door stays off (relay/intake/srt.py warns once): not said here.
        if srt.available():
            said.append(f"SRT on {settings.srt_listen}")
    said.append(f"{settings.workers} worker(s)" if workers else "no workers")
    return ", ".join(said)


def serve(
    settings: Settings, *, smtp: bool = True, http: bool = True, workers: bool = True
) -> None:
    """Run the doors and the workers this node has (all of them by default)."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host, port = parse_listen(settings.http_listen)
    # The RTMP and SRT doors go with the HTTP door: the node that takes a broadcast serves
    # its HLS.
    app = make_app(settings, smtp=smtp, workers=workers, live=http)
    print(
        f"relay: {_roles(smtp, http, workers, settings)}, data in {settings.data_dir.resolve()}",
        flush=True,
    )
    try:
        if http:
            web.run_app(app, host=host, port=port, print=None, access_log=None)
        else:
            asyncio.run(_run_without_http(app))
    except SchemaTooNew as exc:
        raise SystemExit(f"relay: cannot start: {exc}") from None
    except handlers.HandlerUnavailable as exc:
        raise SystemExit(f"relay: cannot start: {exc}") from None
    except StorageError as exc:
        # A missing bucket or rejected credentials is a set-up mistake: say what to fix, once,
        # at start-up, without a traceback.
        raise SystemExit(f"relay: cannot start: storage: {exc.detail}") from None
