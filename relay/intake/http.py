"""The HTTP upload door: ``POST /api/v1/uploads``.

Bodies are streamed into the spool chunk by chunk (multipart parts or the raw body), never held
whole, and the request is refused with 413 as soon as it passes the upload limit.
"""

from __future__ import annotations

import mimetypes
import unicodedata
from pathlib import PurePosixPath

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from relay import metrics
from relay.context import RELAY, Relay
from relay.errors import IntakeError, TooLarge
from relay.intake import fields as upload_fields
from relay.intake.accept import SpooledFile
from relay.spool import SpoolWriterLike
from relay.web.auth import authenticate
from relay.web.present import post_json

CHUNK = 1 << 20
FIELD_LIMIT = 64 * 1024
EXTRA_PARTS = 16
"""Parts that are not files (title, text, private, unknown ones) allowed besides the files."""
MALFORMED = (HttpProcessingError, ValueError, LookupError, UnicodeError)
"""What aiohttp's multipart reader raises for a body that is not well-formed multipart: a part
header without a colon or over 8 KiB, no boundary, a body cut off before its end, an unknown
charset. The client's fault: 400, not a 500 with a traceback."""


def clean_filename(name: str | None, mime: str | None, position: int) -> str:
    name = (name or "").replace("\\", "/")
    name = PurePosixPath(name).name if name else ""
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    if not name:
        ext = (mimetypes.guess_extension(mime or "") or ".bin") if mime else ".bin"
        name = f"upload-{position + 1}{ext}"
    return name[:200]


async def _stream(writer: SpoolWriterLike, read_chunk) -> str:  # noqa: ANN001
    try:
        while chunk := await read_chunk():
            writer.write(chunk)
        return await writer.commit()
    except BaseException:
        # A commit that failed (a full disk) may leave its half-written file in tmp/ (abort
        # removes it: on a full disk every byte counts), or a multipart upload (aborted).
        writer.abort()
        raise


def _check_field(name: str, value: str | bytes) -> None:
    size = len(value.encode() if isinstance(value, str) else value)
    if size > FIELD_LIMIT:
        raise IntakeError("bad_request", f"{name} over {FIELD_LIMIT} bytes")


async def read_multipart(
    request: web.Request,
    relay: Relay,
    limit: int,
    files: list[SpooledFile],
    fields: dict[str, str],
    more: dict[str, list[str]],
) -> int:
    """Stream the form's file parts into the spool (appended to ``files``, so the caller can
    remove them if anything fails) and read its fields (``title``/``text`` into ``fields``, the
    post's other fields into ``more``, in the order given); the bytes received."""
    received = 0
    parts = 0
    max_files = relay.settings.max_upload_parts
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > max_files + EXTRA_PARTS:
                raise TooLarge("upload.too_many_parts", f"over {parts - 1} parts")
            if not isinstance(part, BodyPartReader):
                await part.release()  # a nested multipart: not a form field we know
                continue
            if part.name == "file" or part.filename is not None:
                if len(files) >= max_files:
                    # Refused before the post exists: no item is ever made of any of them.
                    raise TooLarge("upload.too_many_parts", f"over {max_files} files")
                writer = relay.spool.writer(limit=limit - received, reread=False)
                name = await _stream(writer, lambda p=part: p.read_chunk(CHUNK))
                if writer.size == 0 and not part.filename:
                    relay.spool.remove(name)  # an HTML form's file field with nothing chosen
                    continue
                received += writer.size
                mime = part.headers.get("Content-Type")
                files.append(
                    SpooledFile(
                        name, clean_filename(part.filename, mime, len(files)), mime, writer.size
                    )
                )
            elif part.name in fields or part.name in upload_fields.NAMES:
                raw = await part.read(decode=True)
                _check_field(part.name, raw)
                value = raw.decode(part.get_charset("utf-8"), "replace").strip()
                if part.name in fields:
                    fields[part.name] = value
                else:
                    more.setdefault(part.name, []).append(value)
            else:
                await part.release()
    except MALFORMED as exc:
        raise IntakeError("bad_request", f"malformed multipart: {exc!r}"[:300]) from None
    return received


async def upload(request: web.Request) -> web.Response:
    user_id = await authenticate(request)
    relay = request.app[RELAY]
    limit = relay.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        metrics.http_uploads.labels("too_large").inc()
        raise TooLarge("upload.too_large", f"Content-Length {request.content_length}")
    files: list[SpooledFile] = []
    fields = {"title": "", "text": ""}
    more: dict[str, list[str]] = {}  # the fields of relay/intake/fields.py, in order given
    received = 0
    try:
        if request.content_type == "multipart/form-data":
            received = await read_multipart(request, relay, limit, files, fields, more)
        elif request.content_type == "application/x-www-form-urlencoded":
            try:
                form = await request.post()  # text alone; bounded by client_max_size
            except MALFORMED as exc:
                raise IntakeError("bad_request", f"malformed form: {exc!r}"[:300]) from None
            for name in fields:
                value = form.get(name, "")
                if not isinstance(value, str):
                    raise IntakeError("bad_request", f"{name} is not text")
                _check_field(name, value)  # the same limit as a multipart field
                fields[name] = value.strip()
            for name in upload_fields.NAMES:
                if name in form:
                    values = [str(v) for v in form.getall(name)]
                    for value in values:
                        _check_field(name, value)
                    more[name] = values
        elif "Content-Disposition" not in request.headers and request.content_type == "text/plain":
            raise IntakeError("upload.unsupported_media_type")
        else:
            disposition, params = parse_content_disposition(
                request.headers.get("Content-Disposition")
            )
            mime = request.headers.get("Content-Type")
            filename = content_disposition_filename(params, "filename") if disposition else None
            writer = relay.spool.writer(limit=limit, reread=False)
            name = await _stream(writer, lambda: request.content.read(CHUNK))
            received = writer.size
            files.append(SpooledFile(name, clean_filename(filename, mime, 0), mime, writer.size))
            for name in fields:
                fields[name] = request.query.get(name, "").strip()
            for name in upload_fields.NAMES:
                if name in request.query:
                    more[name] = list(request.query.getall(name))
            more.update(upload_fields.from_headers(request.headers))
        if not files and not (fields["title"] or fields["text"]):
            raise IntakeError("upload.no_file")
        wanted = upload_fields.parse(more)
        post = await relay.acceptor.accept(
            user_id,
            title=fields["title"],
            text=fields["text"],
            files=files,
            source="http",
            private=wanted.private,
            draft=wanted.draft,
            publish_at=wanted.publish_at,
            tags=wanted.tags,
            alts=wanted.alts,
            only_destination=wanted.destinations,
        )
    except BaseException as exc:
        for spooled in files:
            relay.spool.remove(spooled.spool_name)
        outcome = exc.code if isinstance(exc, IntakeError) else "error"
        metrics.http_uploads.labels(outcome).inc()
        raise
    metrics.http_uploads.labels("accepted").inc()
    relay.acceptor.took("http", received)
    return web.json_response(post_json(relay, post), status=202)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/uploads", upload)
