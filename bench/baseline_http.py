"""The HTTP baseline: a bare aiohttp server that streams request bodies to disk as durably as the
relay's spool does (write, fsync, rename into ``ready/``, fsync the folder) and answers after
that. No authentication, no database, no metrics: what the relay's HTTP doors cost beyond this is
the relay's own.

``python -m bench.baseline_http --port PORT --dir DIR``

- ``POST /upload``: a raw body, or ``multipart/form-data`` whose file parts are streamed.
- ``POST /files`` with ``Upload-Length`` → 201 and a ``Location``; ``PATCH /files/{id}`` with
  ``Upload-Offset`` appends the body and fsyncs before answering, as a tus server must; the last
  byte moves the file into ``ready/``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
from pathlib import Path

from aiohttp import BodyPartReader, web

CHUNK = 1 << 20
DIR = web.AppKey("dir", Path)
LENGTHS = web.AppKey("lengths", dict)
_names = itertools.count()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, ready: Path) -> None:
    os.replace(tmp, ready)
    _fsync_dir(ready.parent)


async def _store(root: Path, read_chunk) -> int:  # noqa: ANN001 - an awaitable factory
    name = f"{os.getpid()}-{next(_names)}"
    tmp = root / "tmp" / name
    size = 0
    with open(tmp, "wb") as file:
        while chunk := await read_chunk():
            file.write(chunk)
            size += len(chunk)
        file.flush()
        await asyncio.to_thread(os.fsync, file.fileno())
    await asyncio.to_thread(_publish, tmp, root / "ready" / name)
    return size


async def upload(request: web.Request) -> web.Response:
    root = request.app[DIR]
    stored = []
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.filename is not None:
                stored.append(await _store(root, lambda p=part: p.read_chunk(CHUNK)))
            else:
                await part.release()
    else:
        stored.append(await _store(root, lambda: request.content.read(CHUNK)))
    return web.json_response({"stored": stored}, status=202)


async def create(request: web.Request) -> web.Response:
    name = f"{os.getpid()}-{next(_names)}"
    request.app[LENGTHS][name] = int(request.headers["Upload-Length"])
    (request.app[DIR] / "tmp" / name).touch()
    return web.Response(status=201, headers={"Location": f"/files/{name}"})


async def patch(request: web.Request) -> web.Response:
    root = request.app[DIR]
    name = request.match_info["name"]
    length = request.app[LENGTHS].get(name)
    path = root / "tmp" / name
    if length is None or not path.exists():
        raise web.HTTPNotFound()
    offset = int(request.headers["Upload-Offset"])
    with open(path, "r+b") as file:
        if offset != file.seek(0, os.SEEK_END):
            raise web.HTTPConflict()
        while chunk := await request.content.read(CHUNK):
            file.write(chunk)
        file.flush()
        await asyncio.to_thread(os.fsync, file.fileno())
        offset = file.tell()
    if offset == length:
        await asyncio.to_thread(_publish, path, root / "ready" / name)
        del request.app[LENGTHS][name]
    return web.Response(status=204, headers={"Upload-Offset": str(offset)})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(root: Path) -> web.Application:
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    (root / "ready").mkdir(parents=True, exist_ok=True)
    app = web.Application()
    app[DIR] = root
    app[LENGTHS] = {}
    app.router.add_post("/upload", upload)
    app.router.add_post("/files", create)
    app.router.add_patch("/files/{name}", patch)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.dir), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
