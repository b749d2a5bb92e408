"""``relay upload``: files to a relay over tus, resumably, with progress bars.

Each file is one tus upload and so one post: tus carries one file per upload, and the relay makes
the post when an upload's last byte lands (grouping files would mean holding a post open across
uploads that may never finish). Bytes go in chunks (8 MiB by default), each with a sha1
``Upload-Checksum``: a chunk damaged or cut off is discarded by the server and sent again.

Resuming: before its first byte, each upload's URL is saved in a small state file
(``$XDG_STATE_HOME/relay/uploads.json``, else ``~/.local/state/relay/uploads.json``) under the
server and the file's absolute path, size and mtime. Run the same command again and each upload
is asked (HEAD) where it stands and continued from the server's offset; a changed file is a new
upload. An entry goes when its post exists.

Progress goes to stderr, post URLs to stdout (one a line), so ``URL=$(relay upload …)`` works.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin

import click
import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

TUS_PATH = "/api/v1/tus/"
SLICE = 256 * 1024  # the progress bars move this often within a chunk
RETRIES = 6  # consecutive failures (backing off 1, 2, 4 … 30 s) before giving up for now
FORGET_AFTER = 30 * 86400.0
TOKEN_HINT = (
    "the server refused the token: check --token or create one with `relay token add --user NAME`"
)


class Gone(Exception):
    """The server no longer has the upload (expired, terminated, or another user's)."""


class Again(Exception):
    """Worth another try after a pause: busy (423), offset moved (409), checksum (460), 5xx."""


def state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "relay" / "uploads.json"


class State:
    """Upload URLs by file identity. Tiny, so read and rewritten whole (atomically) each time,
    which also keeps two commands running at once from losing each other's entries for long."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    def get(self, key: str) -> str | None:
        entry = self._read().get(key)
        return entry.get("url") if isinstance(entry, dict) else None

    def put(self, key: str, url: str) -> None:
        now = time.time()
        # Entries of files changed or never resumed would pile up; a month is past any expiry.
        data = {
            k: v
            for k, v in self._read().items()
            if isinstance(v, dict) and now - v.get("saved", 0) < FORGET_AFTER
        }
        data[key] = {"url": url, "saved": now}
        self._write(data)

    def drop(self, key: str) -> None:
        data = self._read()
        if data.pop(key, None) is not None:
            self._write(data)


_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
SERVER_HINT = "--server needs a URL like http://host:port"


def server_url(value: str) -> str:
    """``--server`` as a base URL: ``host:port`` means ``http://host:port`` (what people type
    after reading ``RELAY_HTTP_LISTEN``); another scheme than http(s) is refused, by name."""
    value = value.strip()
    scheme = _SCHEME.match(value)
    if scheme is None:
        value = "http://" + value
    elif scheme[1].lower() not in ("http", "https"):
        raise click.UsageError(f"{SERVER_HINT}, not {value!r}")
    try:
        parsed = httpx.URL(value)
    except httpx.InvalidURL:
        raise click.UsageError(f"{SERVER_HINT}, not {value!r}") from None
    if not parsed.host:
        raise click.UsageError(f"{SERVER_HINT}, not {value!r}")
    return value


def identity(server: str, path: Path) -> str:
    info = path.stat()
    return json.dumps([server, str(path.resolve()), info.st_size, info.st_mtime_ns])


def parse_rate(value: str | None) -> float | None:
    """``500K``, ``5M``, ``1G`` or plain bytes per second."""
    if not value:
        return None
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)[bB]?\s*", value)
    if not found or float(found[1]) <= 0:
        raise click.BadParameter(f"{value!r}: use e.g. 500K, 5M or 1G (bytes per second)")
    return float(found[1]) * 1024 ** " kmg".index(found[2].lower() or " ")


def _message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase


@dataclass
class Upload:
    path: Path
    size: int
    key: str
    url: str = ""
    offset: int = 0
    post_id: str | None = None
    post_url: str | None = None
    task: TaskID | None = None

    @property
    def name(self) -> str:
        return self.path.name


class Bars:
    """One bar per file and one for the total, on stderr."""

    def __init__(self, progress: Progress, uploads: list[Upload]) -> None:
        self.progress = progress
        self.uploads = uploads
        for upload in uploads:
            upload.task = progress.add_task(upload.name, total=upload.size, completed=upload.offset)
        self.total = progress.add_task(
            "total",
            total=sum(u.size for u in uploads),
            completed=sum(u.offset for u in uploads),
            visible=len(uploads) > 1,
        )

    def advance(self, upload: Upload, sent: int) -> None:
        assert upload.task is not None
        self.progress.advance(upload.task, sent)
        self.progress.advance(self.total, sent)

    def sync(self) -> None:
        """Back to what the server has, after a chunk that did not land."""
        for upload in self.uploads:
            assert upload.task is not None
            self.progress.update(upload.task, completed=upload.offset)
        self.progress.update(self.total, completed=sum(u.offset for u in self.uploads))

    def say(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)


class Client:
    def __init__(
        self, server: str, token: str, chunk_size: int, rate: float | None, state: State
    ) -> None:
        self.server = server.rstrip("/").removesuffix(TUS_PATH.rstrip("/"))
        self.endpoint = self.server + TUS_PATH
        self.chunk_size = chunk_size
        self.rate = rate
        self.state = state
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"},
            timeout=httpx.Timeout(120, connect=10),
        )
        self._rate_start = time.monotonic()
        self._rate_sent = 0

    def close(self) -> None:
        self.http.close()

    def _answer(self, response: httpx.Response, *ok: int) -> httpx.Response:
        status = response.status_code
        if status in ok:
            return response
        if status == 401:
            raise click.ClickException(TOKEN_HINT)
        if status in (404, 410):
            raise Gone(f"{status} {_message(response)}")
        if status == 413:
            raise click.ClickException(f"too large for the server: {_message(response)}")
        if status in (409, 423, 460) or status >= 500:
            raise Again(f"{status} {_message(response)}")
        raise click.ClickException(f"the server answered {status}: {_message(response)}")

    def check(self, uploads: list[Upload]) -> None:
        """Before any byte: the server is there, takes the token, and takes files this size."""
        options = self.http.options(self.endpoint)
        if options.status_code not in (200, 204) or "Tus-Version" not in options.headers:
            raise click.ClickException(
                f"{self.server} does not look like a relay: OPTIONS {self.endpoint} answered "
                f"{options.status_code}"
            )
        limit = int(options.headers.get("Tus-Max-Size") or 0)
        too_big = [u for u in uploads if limit and u.size > limit]
        if too_big:
            listed = ", ".join(f"{u.path} ({u.size} bytes)" for u in too_big)
            raise click.ClickException(
                f"too large for the server, which takes at most {limit} bytes per upload "
                f"(RELAY_MAX_UPLOAD_BYTES): {listed}"
            )
        posts = self.http.get(self.server + "/api/v1/posts", params={"limit": 1})
        if posts.status_code == 401:
            raise click.ClickException(TOKEN_HINT)

    def prepare(self, upload: Upload, title: str, text: str) -> None:
        """Find the file's earlier upload, or create one (saved before its first byte)."""
        url = self.state.get(upload.key)
        if url:
            try:
                self._head(upload, url)
                return
            except Gone:
                self.state.drop(upload.key)
                click.echo(f"{upload.name}: the earlier upload is gone; starting over", err=True)
        metadata = {
            "filename": upload.name,
            "filetype": mimetypes.guess_type(upload.name)[0] or "",
            "title": title,
            "text": text,
        }
        encoded = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items() if v
        )
        response = self._answer(
            self.http.post(
                self.endpoint,
                headers={"Upload-Length": str(upload.size), "Upload-Metadata": encoded},
            ),
            201,
        )
        upload.url = urljoin(self.endpoint, response.headers["Location"])
        upload.offset = 0
        self.state.put(upload.key, upload.url)
        self._finished(upload, response.headers)

    def _head(self, upload: Upload, url: str) -> None:
        response = self._answer(self.http.head(url), 200)
        upload.url = url
        upload.offset = int(response.headers["Upload-Offset"])
        self._finished(upload, response.headers)

    def _finished(self, upload: Upload, headers: httpx.Headers) -> None:
        if "Relay-Post-Id" in headers:
            upload.post_id = headers["Relay-Post-Id"]
            upload.post_url = headers.get("Relay-Post-Url")

    def send(self, upload: Upload, bars: Bars, title: str, text: str) -> None:
        failures = 0
        restarted = False
        with open(upload.path, "rb") as file:
            while upload.post_id is None:
                try:
                    if failures:
                        self._head(upload, upload.url)
                        bars.sync()
                    if upload.offset < upload.size:
                        self._patch(upload, file, bars)
                    else:  # every byte is there; the server makes the post
                        self._head(upload, upload.url)
                        if upload.post_id is None:
                            raise Again("the server has not made the post yet")
                    failures = 0
                except Gone as exc:
                    if restarted:
                        raise click.ClickException(
                            f"{upload.name}: the upload went away: {exc}"
                        ) from exc
                    restarted = True
                    bars.say(f"{upload.name}: the server dropped the upload ({exc}); starting over")
                    self.state.drop(upload.key)
                    self.prepare(upload, title, text)
                    bars.sync()
                except (httpx.TransportError, Again) as exc:
                    failures += 1
                    reason = str(exc) or type(exc).__name__
                    if failures > RETRIES:
                        raise click.ClickException(
                            f"{upload.name}: {reason}; run the same command again to resume"
                        ) from exc
                    delay = min(30, 2 ** (failures - 1))
                    bars.say(f"{upload.name}: {reason}; trying again in {delay} s")
                    time.sleep(delay)

    def _patch(self, upload: Upload, file: BinaryIO, bars: Bars) -> None:
        file.seek(upload.offset)
        data = file.read(min(self.chunk_size, upload.size - upload.offset))
        digest = base64.b64encode(hashlib.sha1(data).digest()).decode()

        def body() -> Iterator[bytes]:
            for start in range(0, len(data), SLICE):
                piece = data[start : start + SLICE]
                self._throttle(len(piece))
                yield piece
                bars.advance(upload, len(piece))

        response = self._answer(
            self.http.patch(
                upload.url,
                content=body(),
                headers={
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(len(data)),
                    "Upload-Offset": str(upload.offset),
                    "Upload-Checksum": f"sha1 {digest}",
                },
            ),
            204,
        )
        upload.offset = int(response.headers["Upload-Offset"])
        self._finished(upload, response.headers)

    def _throttle(self, size: int) -> None:
        if self.rate is None:
            return
        self._rate_sent += size
        ahead = self._rate_sent / self.rate - (time.monotonic() - self._rate_start)
        if ahead > 0:
            time.sleep(ahead)

    def follow(self, uploads: list[Upload], say: Console) -> int:
        """Print each item's status as it changes until every post is ready; 1 if any failed."""
        seen: dict[str, str] = {}
        waiting = [u.post_id for u in uploads if u.post_id]
        failed = False
        failures = 0
        while waiting:
            try:
                posts = [
                    self._answer(self.http.get(f"{self.server}/api/v1/posts/{p}"), 200).json()
                    for p in waiting
                ]
                failures = 0
            except (httpx.TransportError, Again) as exc:
                failures += 1
                if failures > RETRIES:
                    raise click.ClickException(f"lost the server while waiting: {exc}") from exc
                time.sleep(min(30, 2**failures))
                continue
            for post in posts:
                for item in post["items"]:
                    if seen.get(item["id"]) == item["status"]:
                        continue
                    seen[item["id"]] = item["status"]
                    line = f"{item['filename']}: {item['status']}"
                    if item["status"] == "ready":
                        line += f" ({item['kind']}, {len(item['renditions'])} rendition(s))"
                    elif item["status"] == "failed":
                        failed = True
                        error = item.get("error") or {}
                        line += f": {error.get('code')}: {error.get('message')}"
                    say.print(line, markup=False, highlight=False)
                if post["status"] == "ready":
                    waiting.remove(post["id"])
            if waiting:
                time.sleep(1)
        return 1 if failed else 0


def run(
    paths: list[Path],
    server: str,
    token: str,
    *,
    title: str = "",
    text: str = "",
    wait: bool = False,
    chunk_mib: int = 8,
    limit_rate: str | None = None,
) -> int:
    err = Console(stderr=True)
    server = server_url(server)
    client = Client(server, token, chunk_mib << 20, parse_rate(limit_rate), State(state_file()))
    uploads = [Upload(p, p.stat().st_size, identity(client.server, p)) for p in paths]
    try:
        client.check(uploads)
        for upload in uploads:
            client.prepare(upload, title, text)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
            # Never through the bars: rich would wrap and crop a URL to the terminal's width.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        done: list[str] = []
        try:
            with progress:
                bars = Bars(progress, uploads)
                for upload in uploads:
                    if 0 < upload.offset < upload.size:
                        bars.say(
                            f"{upload.name}: resuming at byte {upload.offset} of {upload.size}"
                        )
                    client.send(upload, bars, title, text)
                    client.state.drop(upload.key)
                    done.append(upload.post_url)
        finally:
            # Once the bars have stopped (even when a later file failed): whole, one a line,
            # so that `URL=$(relay upload …)` and copying from the terminal both work.
            for url in done:
                click.echo(url)
        return client.follow(uploads, err) if wait else 0
    except httpx.TransportError as exc:
        raise click.ClickException(
            f"cannot reach {client.server}: is `relay serve` running? ({exc})"
        ) from exc
    except (Again, Gone) as exc:  # outside the retried sending: creating, or finding, an upload
        raise click.ClickException(f"the server could not take the upload now: {exc}") from exc
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        return 130
    finally:
        client.close()
