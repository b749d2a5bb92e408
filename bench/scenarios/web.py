"""The web app: the posts list of a user with 10,000 posts, and the weight of its first load.

``web-posts-sqlite`` and ``web-posts-postgres``: a ``relay serve`` whose user has 10,000 ready
posts (each with a photo item and its three renditions, inserted through the relay's own
``queries``), signed in; the time of ``GET /`` (the first page, 20 posts) from the request's
first byte to the answer's last, over a kept-alive connection on 127.0.0.1: server time plus a
loopback round trip. The baseline, measured in the same run against the same database, is the
bare SQL of the same page on a plain SQLAlchemy connection: the page's posts, then their items,
renditions and deliveries (what any page of 20 posts must read), without the web app around it.

``web-first-load``: chromium (Playwright, Debian's) opens the posts page of a user with 25 real
photos (uploaded and processed by the relay's own pipeline), signed in, at 1440 × 900; the weight
is every byte the page load transferred (the navigation and every resource: CSS, JS, thumbnails),
from the browser's Resource Timing. No baseline: the target is on the weight itself.
"""

from __future__ import annotations

import http.client
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import media
from bench.harness import Context, Result, Target, Unavailable, relay_serve, unavailable
from bench.scenarios import Scenario

POSTS = 10_000
PAGE_POSTS = 20  # relay/web/app/views.py PAGE_SIZE
PASSWORD = "bench password 1"
POSTGRES = "postgresql://root@127.0.0.1"
RUNS = 60
WARM = 10


# --- seeding ---------------------------------------------------------------------------------


def _seed(url: str, name: str, count: int) -> str:
    """``count`` ready posts for a new user ``name``, newest last, through the relay's own
    inserts; the user's id."""
    from relay.db import Database, queries
    from relay.db.schema import items, posts, renditions

    db = Database(url)
    try:
        db.migrate()
        now = time.time() - count * 60
        with db.begin() as conn:
            user_id = queries.add_user(conn, name)
            post_rows, item_rows, rendition_rows = [], [], []
            for n in range(count):
                post_id, item_id = (
                    f"p{n:08d}{uuid.uuid4().hex[:8]}",
                    f"i{n:08d}{uuid.uuid4().hex[:8]}",
                )
                at = now + n * 60
                post_rows.append(
                    {
                        "id": post_id,
                        "user_id": user_id,
                        "title": f"Post {n}",
                        "text": "Invigningen av torget i dag.",
                        "status": "ready",
                        "source": "upload",
                        "private": False,
                        "draft": False,
                        "tags": "[]",
                        "state": "published",
                        "created_at": at,
                        "ready_at": at + 1,
                    }
                )
                item_rows.append(
                    {
                        "id": item_id,
                        "post_id": post_id,
                        "position": 0,
                        "filename": f"IMG_{n:04d}.jpeg",
                        "kind": "image",
                        "status": "ready",
                        "original_key": f"{post_id}/{item_id}/original.jpg",
                        "original_mime": "image/jpeg",
                        "original_bytes": 3_000_000,
                        "created_at": at,
                        "updated_at": at + 1,
                    }
                )
                for rendition, side in (("large", 2048), ("medium", 1024), ("small", 320)):
                    rendition_rows.append(
                        {
                            "item_id": item_id,
                            "name": rendition,
                            "key": f"{post_id}/{item_id}/{rendition}.jpg",
                            "mime": "image/jpeg",
                            "bytes": side * 100,
                            "width": side,
                            "height": side * 3 // 4,
                        }
                    )
            conn.execute(posts.insert(), post_rows)
            conn.execute(items.insert(), item_rows)
            conn.execute(renditions.insert(), rendition_rows)
        return user_id
    finally:
        db.close()


def _set_password(server: Any, name: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "relay", "user", "password", name],
        env=server.env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def _session(port: int, name: str) -> str:
    """Sign in as a browser does; the ``Cookie`` header of the signed-in session."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/")
    answer = conn.getresponse()
    answer.read()
    csrf = re.search(r"relay_csrf=([^;]+)", answer.getheader("Set-Cookie") or "")
    assert csrf, "no CSRF cookie"
    body = urlencode({"csrf_token": csrf[1], "name": name, "password": PASSWORD})
    conn.request(
        "POST",
        "/signin",
        body,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"relay_csrf={csrf[1]}"},
    )
    answer = conn.getresponse()
    answer.read()
    session = re.search(r"relay_session=([^;]+)", answer.getheader("Set-Cookie") or "")
    assert answer.status == 303 and session, f"sign-in: {answer.status}"
    conn.close()
    return f"relay_csrf={csrf[1]}; relay_session={session[1]}"


# --- the posts list --------------------------------------------------------------------------


def _page_times(port: int, cookie: str) -> tuple[float, int]:
    """Median ms of ``GET /`` (first page), and how many posts it showed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times, shown = [], 0
    for n in range(WARM + RUNS):
        started = time.perf_counter()
        conn.request("GET", "/", headers={"Cookie": cookie})
        answer = conn.getresponse()
        body = answer.read()
        took = (time.perf_counter() - started) * 1000
        if answer.status != 200:
            raise RuntimeError(f"GET /: {answer.status}")
        if n >= WARM:
            times.append(took)
        shown = body.count(b'class="post"')
    conn.close()
    return statistics.median(times), shown


def _bare_sql_times(url: str, user_id: str) -> float:
    """Median ms of the bare SQL of one page of posts: the posts, then their items, renditions
    and deliveries, on a plain connection (no web app, no objects)."""
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(url)
    page = text(
        "SELECT * FROM posts WHERE user_id = :user AND state != 'deleted' "
        "ORDER BY created_at DESC, id DESC LIMIT :n"
    )
    item_rows = text("SELECT * FROM items WHERE post_id IN :ids ORDER BY position").bindparams(
        bindparam("ids", expanding=True)
    )
    rendition_rows = text("SELECT * FROM renditions WHERE item_id IN :ids ORDER BY id").bindparams(
        bindparam("ids", expanding=True)
    )
    delivery_rows = text(
        "SELECT * FROM deliveries WHERE post_id IN :ids ORDER BY created_at"
    ).bindparams(bindparam("ids", expanding=True))
    times = []
    try:
        with engine.connect() as conn:
            for n in range(WARM + RUNS):
                started = time.perf_counter()
                with conn.begin():
                    found = conn.execute(page, {"user": user_id, "n": PAGE_POSTS + 1}).all()
                    ids = [row.id for row in found]
                    its = conn.execute(item_rows, {"ids": ids}).all()
                    conn.execute(rendition_rows, {"ids": [row.id for row in its]}).all()
                    conn.execute(delivery_rows, {"ids": ids}).all()
                took = (time.perf_counter() - started) * 1000
                if n >= WARM:
                    times.append(took)
    finally:
        engine.dispose()
    return statistics.median(times)


def _posts_list(ctx: Context, database: str) -> list[Result]:
    count = 500 if ctx.quick else POSTS
    name = f"posts list, {count:,} posts, {database}"
    folder = ctx.scratch(f"web-{database}")
    env: dict[str, str] = {}
    made_db = None
    try:
        if database == "sqlite":
            url = f"sqlite:///{folder / 'relay.db'}"
        else:
            made_db = f"relay_bench_web_{uuid.uuid4().hex[:8]}"
            _postgres_admin(f"CREATE DATABASE {made_db}")
            url = f"{POSTGRES}/{made_db}"
            env["RELAY_DATABASE_URL"] = url
        started = time.monotonic()
        user_id = _seed(url, "bench", count)
        ctx.log(f"{name}: {count} posts seeded in {time.monotonic() - started:.1f} s")
        with relay_serve(folder, RELAY_WORKERS="0", **env) as server:
            _set_password(server, "bench")
            cookie = _session(server.http_port, "bench")
            relay_ms, shown = _page_times(server.http_port, cookie)
            bare_ms = _bare_sql_times(url, user_id)
            relay_ms = min(relay_ms, _page_times(server.http_port, cookie)[0])
            bare_ms = min(bare_ms, _bare_sql_times(url, user_id))
    except Unavailable as exc:
        return unavailable([(name, "ms")], str(exc))
    finally:
        if made_db:
            _postgres_admin(f"DROP DATABASE IF EXISTS {made_db} WITH (FORCE)")
        ctx.drop(folder)
    if shown != PAGE_POSTS:
        raise RuntimeError(f"the first page showed {shown} posts, not {PAGE_POSTS}")
    return [
        Result(
            name,
            "ms",
            relay=relay_ms,
            baseline=bare_ms,
            target=Target("<=", 50, on="relay", unit="ms"),
            note=(
                f"GET / signed in, first page of {PAGE_POSTS}, median of {RUNS} (best of 2), "
                "request to last byte on 127.0.0.1; baseline: the page's bare SQL"
            ),
        )
    ]


def _postgres_admin(statement: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    except OperationalError as exc:
        raise Unavailable(f"PostgreSQL at {POSTGRES}: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()


def _sqlite(ctx: Context) -> list[Result]:
    return _posts_list(ctx, "sqlite")


def _postgres(ctx: Context) -> list[Result]:
    return _posts_list(ctx, "postgresql")


# --- the first load --------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
PHOTOS = 25


def _first_load(ctx: Context) -> list[Result]:
    name = "web app first load (posts page)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return unavailable([(name, "KB")], "playwright is not installed")
    if not Path(CHROMIUM).exists():
        return unavailable([(name, "KB")], f"no chromium at {CHROMIUM}")
    folder = ctx.scratch("web-first-load")
    photo = media.photo_jpeg(1600, 1200)
    try:
        with relay_serve(folder) as server:
            user = server.add_user("bench")
            _set_password(server, "bench")
            count = 5 if ctx.quick else PHOTOS
            made = [
                server.upload(user["token"], file=(f"IMG_{n}.jpg", photo, "image/jpeg"))["id"]
                for n in range(count)
            ]
            for post_id in made:
                server.wait_post(user["token"], post_id, timeout=120)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
                )
                try:
                    page = browser.new_page(viewport={"width": 1440, "height": 900})
                    page.goto(server.url + "/")
                    page.fill("#name", "bench")
                    page.fill("#password", PASSWORD)
                    page.click("button[type=submit].primary")
                    page.wait_for_selector("#posts")
                    # A fresh load of the page, as a person opening it gets it (cache emptied).
                    cdp = page.context.new_cdp_session(page)
                    cdp.send("Network.clearBrowserCache")
                    page.goto(server.url + "/", wait_until="networkidle")
                    entries = page.evaluate(
                        """() => [...performance.getEntriesByType('navigation'),
                                  ...performance.getEntriesByType('resource')]
                              .map(e => ({name: e.name, bytes: e.transferSize}))"""
                    )
                finally:
                    browser.close()
    finally:
        ctx.drop(folder)
    total = sum(e["bytes"] for e in entries) / 1000
    kinds = {
        "html": sum(
            e["bytes"]
            for e in entries
            if "/static/" not in e["name"] and "/media/" not in e["name"]
        ),
        "css+js": sum(e["bytes"] for e in entries if "/static/" in e["name"]),
        "images": sum(e["bytes"] for e in entries if "/media/" in e["name"]),
    }
    return [
        Result(
            name,
            "KB",
            relay=total,
            target=Target("<=", 300, on="relay", unit="KB"),
            note=(
                f"chromium 1440×900, {count} photo posts, signed in, empty cache; "
                + ", ".join(f"{k} {v / 1000:.0f} KB" for k, v in kinds.items())
                + f"; {len(entries)} requests"
            ),
        )
    ]


SCENARIOS = [
    Scenario("web-posts-sqlite", "web", "posts list of 10,000 posts, first page, SQLite", _sqlite),
    Scenario(
        "web-posts-postgres", "web", "posts list of 10,000 posts, first page, PostgreSQL", _postgres
    ),
    Scenario("web-first-load", "web", "posts page first load weight in chromium", _first_load),
]
