"""One catalog of the relay's errors.

Every failure a user can see has a stable ``code`` (never renamed, safe to match on), a public
``message`` (safe to show to anyone), and how it is said on each door: the SMTP reply and the
HTTP status. Internal detail (paths, stack traces, ffmpeg's stderr) goes in ``detail`` and is
logged, never shown. Every error survives pickling with its class, code, detail and extra fields:
handlers raise them inside the process pool and the relay catches them as they were raised.

Exception tree::

    RelayError                    code + public message + detail
    ├── AuthError                 bad or missing token (HTTP 401)
    ├── NotFound                  unknown id, or not yours (HTTP 404)
    ├── IntakeError               refused at the door: SMTP 5xx/4xx, HTTP 4xx
    │   └── TooLarge              over a size limit (552 5.3.4 / 413)
    ├── MediaError                an item cannot be processed: the item ends `failed`
    │   └── LimitExceeded         pixels, duration, time: refused before decoding
    ├── StorageError              the store cannot be reached or our disk is full (HTTP 503
    │                             or 507; jobs wait it out)
    └── PublishError              a destination did not take a post
        └── TransientPublishError the destination may take it later: the delivery retries
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    code: str
    message: str
    http_status: int = 400
    smtp_reply: str = "554 5.6.0 Message refused"


_SPECS = [
    ErrorSpec("auth.invalid_token", "Missing or invalid bearer token.", 401),
    ErrorSpec("not_found", "No such resource.", 404),
    ErrorSpec("bad_request", "The request is malformed.", 400),
    ErrorSpec("method_not_allowed", "Method not allowed on this resource.", 405),
    ErrorSpec(
        "smtp.unknown_recipient",
        "No such secret address.",
        404,
        "550 5.1.1 No such recipient here",
    ),
    ErrorSpec(
        "smtp.too_many_recipients",
        "One message goes to one secret address.",
        400,
        "452 4.5.3 Too many recipients; send again to this one",
    ),
    ErrorSpec(
        "smtp.message_too_large",
        "The message is larger than this relay accepts.",
        413,
        "552 5.3.4 Message size exceeds fixed maximum message size",
    ),
    ErrorSpec(
        "smtp.sender_refused",
        "This address does not take mail from this sender.",
        403,
        "550 5.7.1 Sender not allowed to post to this address",
    ),
    ErrorSpec(
        "smtp.too_many_hops",
        "The message passed through too many servers (a mail loop).",
        400,
        "554 5.4.6 Too many hops",
    ),
    ErrorSpec(
        "smtp.too_many_unknown_recipients",
        "Too many unknown recipients from this client.",
        429,
        "421 4.7.0 Too many unknown recipients; closing",
    ),
    ErrorSpec(
        "smtp.too_many_auth_failures",
        "Too many failed logins from this client.",
        429,
        "421 4.7.0 Too many failed logins; closing",
    ),
    ErrorSpec("upload.too_large", "The upload is larger than this relay accepts.", 413),
    ErrorSpec("upload.no_file", "The upload carries no file.", 400),
    ErrorSpec(
        "upload.unsupported_media_type",
        "Send multipart/form-data with file parts, or a raw body with Content-Disposition.",
        415,
    ),
    ErrorSpec("tus.unsupported_version", "Send Tus-Resumable: 1.0.0.", 412),
    ErrorSpec(
        "tus.unsupported_media_type",
        "PATCH bodies are Content-Type: application/offset+octet-stream.",
        415,
    ),
    ErrorSpec("tus.offset_mismatch", "Upload-Offset is not the upload's offset; ask HEAD.", 409),
    ErrorSpec("tus.locked", "Another request is writing to this upload; try again.", 423),
    ErrorSpec("tus.expired", "The upload expired; start a new one.", 410),
    ErrorSpec("tus.terminated", "The upload was terminated; start a new one.", 410),
    ErrorSpec("tus.length_exceeded", "More bytes than the upload's Upload-Length.", 413),
    ErrorSpec("tus.checksum_unsupported", "Checksum algorithms: sha1, md5, sha256.", 400),
    ErrorSpec("tus.checksum_mismatch", "The chunk does not match Upload-Checksum.", 460),
    ErrorSpec("media.empty", "The file is empty.", 422),
    ErrorSpec("media.unsupported", "This type of file is not accepted here.", 422),
    ErrorSpec("media.corrupt", "The file is damaged or truncated and cannot be read.", 422),
    ErrorSpec(
        "media.too_many_pixels",
        "The image has more pixels than this relay decodes.",
        422,
    ),
    ErrorSpec("media.too_long", "The clip is longer than this relay accepts.", 422),
    ErrorSpec("media.timeout", "Processing took longer than allowed.", 422),
    ErrorSpec("media.failed", "Processing failed.", 500),
    ErrorSpec(
        "media.captions_invalid",
        "The captions file is not SRT or WebVTT, or is too large.",
        422,
    ),
    ErrorSpec("mail.unreadable", "The message could not be read as mail.", 422),
    ErrorSpec(
        "storage.unavailable",
        "Storage is unavailable; try again later.",
        503,
        "451 4.3.0 Temporarily unable to store the message; try again later",
    ),
    ErrorSpec(
        "server.unavailable",
        "The relay cannot take this right now; try again later.",
        503,
        "451 4.3.0 Temporary failure; try again later",
    ),
    ErrorSpec(
        "publish.unreachable",
        "The destination could not be reached; the relay tries again.",
        502,
    ),
    ErrorSpec("publish.rate_limited", "The destination asked the relay to slow down.", 429),
    ErrorSpec(
        "publish.unauthorized",
        "The destination refused the credentials; update the destination.",
        401,
    ),
    ErrorSpec("publish.rejected", "The destination refused the post.", 422),
    ErrorSpec(
        "publish.private_address",
        "The destination resolves to a private or loopback address, which is not allowed.",
        400,
    ),
    ErrorSpec("publish.expired", "The post could not be delivered in time; delivery gave up.", 504),
    ErrorSpec("publish.unknown_type", "No adapter for this destination type.", 400),
    ErrorSpec(
        "publish.adapter_unavailable",
        "The relay cannot load this destination type's adapter right now; the operator has been"
        " told, and the relay tries again.",
        503,
    ),
    ErrorSpec(
        "media.ffmpeg_missing",
        "This relay cannot process video or audio: ffmpeg is not installed. The operator must"
        " install ffmpeg (with ffprobe) and restart the relay.",
        503,
    ),
    ErrorSpec(
        "server.internal", "Internal error.", 500, "451 4.3.0 Internal error; try again later"
    ),
    ErrorSpec(
        "auth.throttled",
        "Too many failed tokens from this client; wait and try again.",
        429,
        "421 4.7.0 Too many failed logins; closing",
    ),
    ErrorSpec(
        "storage.full",
        "The relay is out of disk space; try again later.",
        507,
        "452 4.3.1 Insufficient system storage; try again later",
    ),
    ErrorSpec("upload.too_many_parts", "The upload has more parts than this relay accepts.", 413),
    ErrorSpec(
        "tus.too_many_uploads",
        "Too many unfinished uploads; finish or terminate one first.",
        429,
    ),
    ErrorSpec(
        "tus.quota_exceeded",
        "Unfinished uploads would reserve more bytes than this relay allows you.",
        413,
    ),
    ErrorSpec(
        "media.link_invalid",
        "This media link is unsigned or has expired; open the post's page again for a new one.",
        403,
    ),
    ErrorSpec(
        "smtp.closing",
        "The relay could not read the rest of the message; try again later.",
        503,
        "421 4.3.0 Cannot read the rest of the message; closing",
    ),
    ErrorSpec(
        "smtp.too_many_connections",
        "Too many connections at once from this client.",
        429,
        "421 4.7.0 Too many connections from your address",
    ),
]

# The post's life (relay/lifecycle.py, relay/web/posts.py).
_SPECS.extend(
    [
        ErrorSpec("request.invalid", "Unknown field or wrong type in the request.", 422),
        ErrorSpec("post.gone", "This post was deleted.", 410),
        ErrorSpec("post.conflict", "The post's state does not allow this change.", 409),
        ErrorSpec("publish.cannot_edit", "This channel cannot edit a post.", 400),
        ErrorSpec("publish.cannot_retract", "This channel cannot delete a post.", 400),
        ErrorSpec("publish.cancelled", "The post was taken down before it was delivered.", 409),
    ]
)

# Channel secrets sealed at rest (relay/sealed.py, relay/db/destinations.py).
_SPECS.append(
    ErrorSpec(
        "destination.secret_unreadable",
        "The relay cannot read this channel's saved sign-in: its key (RELAY_SECRET_KEY) has"
        " changed. Connect the channel again, or restore RELAY_SECRET_KEY.",
        409,
    )
)

# A channel whose sign-in the service declared dead (Meta: relay/publish/graph.py).
_SPECS.append(
    ErrorSpec(
        "destination.reconnect_needed",
        "This channel's sign-in has expired or was withdrawn (for example after a password"
        " change). Open Channels in the relay and choose Connect again.",
        409,
    )
)

# A channel's daily quota used up (YouTube: relay/publish/google.py says when it comes back).
_SPECS.append(
    ErrorSpec(
        "publish.quota_exceeded",
        "The channel's daily quota for the relay is used up; publish the post again once it"
        " resets.",
        429,
    )
)

# X refuses a post whose text it already has (relay/publish/x.py).
_SPECS.append(
    ErrorSpec(
        "publish.duplicate",
        "The channel already has a post with this text, and refuses the same text twice.",
        422,
    )
)

# Instagram's padded photo is made when a delivery needs it (relay/publish/deliver.py).
_SPECS.append(
    ErrorSpec(
        "publish.padding_failed",
        "The relay could not make the padded copy of a photo that this channel needs; it tries"
        " again.",
        503,
    )
)

# The web app's upload page (relay/web/app/upload.py): its script on the tus door.
_SPECS.extend(
    [
        ErrorSpec(
            "auth.session_invalid",
            "Sign in again: the session ended, or the request lacked its X-CSRF-Token header.",
            401,
        ),
        ErrorSpec(
            "upload.not_finished",
            "An upload to join into the post is not finished, or is a post already.",
            409,
        ),
        # Live broadcasting (relay/intake/live.py): why a sender was refused or a broadcast ended.
        ErrorSpec("live.bad_key", "The stream key is wrong or revoked.", 403),
        ErrorSpec("live.too_many", "Too many broadcasts are live at once; try again later.", 429),
        ErrorSpec("live.too_long", "The broadcast reached the longest a broadcast may last.", 413),
        ErrorSpec("live.bitrate", "The broadcast sent more bits a second than allowed.", 413),
        ErrorSpec("live.protocol", "The sender broke the RTMP protocol.", 400),
        ErrorSpec("live.failed", "The live stream could not be processed.", 500),
        ErrorSpec(
            "live.interrupted",
            "The relay stopped during the broadcast; the recording up to then is kept.",
            503,
        ),
    ]
)

CATALOG: dict[str, ErrorSpec] = {spec.code: spec for spec in _SPECS}


class RelayError(Exception):
    default_code = "server.internal"

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        code = code or self.default_code
        if code not in CATALOG:
            raise ValueError(f"unknown error code {code!r}")
        self.spec = CATALOG[code]
        self.detail = detail
        super().__init__(f"{code}: {detail or self.spec.message}")

    @property
    def code(self) -> str:
        return self.spec.code

    @property
    def message(self) -> str:
        return self.spec.message

    def public(self) -> dict[str, str]:
        return {"code": self.spec.code, "message": self.spec.message}

    def __reduce__(self) -> tuple[object, ...]:
        # Exception pickles as cls(*self.args), and args holds the formatted text, not the
        # code: rebuild from (code, detail) and restore subclass fields (``remote``) as state.
        state = {k: v for k, v in self.__dict__.items() if k not in ("spec", "detail")}
        return (self.__class__, (self.spec.code, self.detail), state or None)


class AuthError(RelayError):
    default_code = "auth.invalid_token"


class NotFound(RelayError):
    default_code = "not_found"


class IntakeError(RelayError):
    default_code = "bad_request"


class TooLarge(IntakeError):
    default_code = "upload.too_large"


class MediaError(RelayError):
    default_code = "media.failed"


class LimitExceeded(MediaError):
    default_code = "media.too_many_pixels"


class StorageError(RelayError):
    default_code = "storage.unavailable"


class PublishError(RelayError):
    """A permanent refusal: retrying would get the same answer."""

    default_code = "publish.rejected"

    def __init__(self, code: str | None = None, detail: str = "", remote: str = "") -> None:
        super().__init__(code, detail)
        self.remote = remote  # what the destination said, shown to the post's owner

    def public(self) -> dict[str, str]:
        body = super().public()
        if self.remote:
            body["message"] = f"{body['message']} ({self.remote[:300]})"
        return body


class TransientPublishError(PublishError):
    default_code = "publish.unreachable"


def public_error(code: str) -> dict[str, str]:
    spec = CATALOG[code]
    return {"code": spec.code, "message": spec.message}


NO_SPACE_TEXTS = tuple(os.strerror(number) for number in _NO_SPACE)
"""How the system says it, for libraries that report a failed write in words (libvips)."""


def out_of_space(exc: BaseException) -> bool:
    """Our own disk (or quota) is full: never the fault of the work that met it."""
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def temporary_error(exc: BaseException) -> RelayError | None:
    """A stable error for a failure of the machine rather than of the request: a full disk
    (``storage.full``, 507) or a database that cannot be reached (``server.unavailable``, 503).
    None for anything else. Doors and the HTTP error middleware use it, so a full spool or a
    lost database is never a ``500 server.internal`` with a traceback."""
    if out_of_space(exc):
        return RelayError("storage.full", str(exc))
    from sqlalchemy import exc as sa  # lazily: handlers import this module in the pool

    if isinstance(exc, sa.OperationalError) and "disk is full" in str(exc.orig):
        return RelayError("storage.full", type(exc.orig).__name__)  # SQLITE_FULL
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return RelayError("server.unavailable", type(exc.orig).__name__)
    if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError)):
        return RelayError("server.unavailable", type(exc).__name__)
    if isinstance(exc, sa.TimeoutError):  # no connection free in the pool in time
        return RelayError("server.unavailable", "database pool timeout")
    return None
