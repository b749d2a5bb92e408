"""Settings: flags beat ``RELAY_*`` env, env beats the TOML file, the file beats defaults.

Every field here is a ``RELAY_<NAME>`` environment variable and must be documented in the README
(a test checks that).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port (e.g. 127.0.0.1:8080), got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore")

    config: Path | None = Field(default=None, description="TOML file with settings")
    data_dir: Path = Field(default=Path("./relay-data"))
    smtp_listen: str = "127.0.0.1:2525"
    http_listen: str = "127.0.0.1:8080"
    public_url: str = ""
    mail_domain: str = "relay.localhost"
    database_url: str = ""
    storage_url: str = ""
    s3_endpoint_url: str | None = None
    s3_public_url: str | None = None
    # SigV4 presigned URLs live at most 7 days.
    s3_presign_seconds: int = Field(default=3600, ge=1, le=604_800)
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # boto3 >= 1.36 sends CRC checksums by default, which several S3-compatible servers reject.
    s3_checksum: Literal["when_supported", "when_required"] = "when_required"
    # S3 parts are 5 MiB at least (but the last).
    s3_part_size_bytes: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    s3_concurrency: int = Field(default=4, ge=1, le=64)
    s3_region: str | None = None
    max_message_bytes: int = 52_428_800
    max_upload_bytes: int = 4_294_967_296
    # An unfinished tus upload idle this long expires; the sweep runs every interval.
    tus_expiry_seconds: float = Field(default=86400.0, gt=0)
    tus_cleanup_interval_seconds: float = Field(default=600.0, gt=0)
    # Per user: unfinished tus uploads at once, and the bytes they may reserve (an upload of
    # deferred length reserves max_upload_bytes until it says its length).
    tus_max_open_uploads_per_user: int = Field(default=20, ge=1)
    tus_max_reserved_bytes_per_user: int = Field(default=17_179_869_184, ge=1)
    # File parts in one multipart HTTP upload (each becomes an item), as mail caps its parts.
    max_upload_parts: int = Field(default=500, ge=1)
    # Failed bearer tokens from one client address within the window before it gets 429.
    auth_max_failures: int = Field(default=10, ge=1)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)
    # Reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client
    # (relay/web/client.py). Empty: no header is believed and the client is the peer.
    trusted_proxies: str = ""
    workers: int = Field(default=2, ge=0)
    # While the doors take in a burst (over 16 MB/s), new media work waits up to this long, so
    # that uploads are answered at the door's own speed (relay/doors_first.py); 0: never.
    doors_first_seconds: float = Field(default=5.0, ge=0)
    allow_private_destinations: bool = False
    max_image_pixels: int = 80_000_000
    max_duration_seconds: float = 4 * 3600.0
    processing_timeout_seconds: float = 600.0
    video_crf: int = 23
    video_preset: str = "veryfast"
    ffmpeg_memory_bytes: int = 2 << 30
    # Re-encoded audio is brought to this integrated loudness (EBU R128, LUFS); empty or "off"
    # leaves loudness alone and measures nothing (handlers/loudness.py).
    audio_loudness_lufs: float | None = Field(default=-16.0, ge=-70.0, le=-5.0)
    # An HLS ladder (1080/720/480/360 lines) beside each clip's MP4; off saves its CPU and disk.
    video_hls: bool = True
    job_max_attempts: int = 5
    job_lease_seconds: float = 300.0
    # The longest wait between two tries of a job (retries, and outages of our own store or
    # database, which are waited out however long they last).
    job_backoff_cap_seconds: float = Field(default=300.0, gt=0)
    delivery_max_age_seconds: float = 86400.0
    smtp_hostname: str = ""
    # STARTTLS is offered when both are set; AUTH only ever after it.
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None
    smtp_require_tls: bool = False
    smtp_max_failed_recipients: int = Field(default=5, ge=1)
    smtp_failure_delay_seconds: float = Field(default=0.25, ge=0)
    # Connections open at once from one client IP; more are answered 421 at connect. 20 is
    # what Postfix opens to one destination at most (default_destination_concurrency_limit).
    smtp_max_connections_per_client: int = Field(default=20, ge=1)
    # DKIM and SPF lookups: host[:port], comma-separated; empty means the system resolver.
    dns_servers: str = ""
    # Replies to senders go out through this server; empty host means no replies.
    outbound_smtp_host: str = ""
    outbound_smtp_port: int = 587
    outbound_smtp_starttls: bool = True
    outbound_smtp_username: str = ""
    outbound_smtp_password: str = ""
    reply_from: str = ""
    log_level: str = "INFO"
    # Signs private media links (and, later, sessions). Unset: a random key generated once into
    # the data folder (``secret.key``); several nodes must then share the folder or set this.
    secret_key: SecretStr | None = None
    # Lifetime of a signed link to a private or draft post's media on the local store.
    private_media_seconds: int = Field(default=3600, ge=60, le=604_800)
    # The page's ``lang`` when the text is too short to tell English from Swedish.
    default_language: Literal["en", "sv"] = "en"
    # The web app: how long a sign-in lasts, and failed sign-ins per user name and per client
    # address within the window before the sign-in form answers 429.
    session_seconds: int = Field(default=14 * 86400, ge=300)
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_seconds: float = Field(default=300.0, gt=0)

    # The zone of a mailed [publish 2026-12-24 09:00] for a user without one of their own
    # (`relay user timezone NAME ZONE`): an IANA name.
    timezone: str = "UTC"

    # Facebook Login for the Meta channels (Facebook Pages, Instagram): the Meta app's id and
    # secret; unset, the web app offers no "Connect Facebook". The Graph and dialog addresses
    # change only to reach another API version (or a test's stand-in).
    meta_app_id: str = ""
    meta_app_secret: SecretStr | None = None
    meta_graph_url: str = "https://graph.facebook.com/v21.0"
    meta_dialog_url: str = "https://www.facebook.com/v21.0/dialog/oauth"
    # Threads has its own login and its own app id and secret (the Meta app's "Threads app");
    # unset, the web app offers no "Connect Threads".
    threads_app_id: str = ""
    threads_app_secret: SecretStr | None = None
    threads_graph_url: str = "https://graph.threads.net"
    threads_authorize_url: str = "https://threads.com/oauth/authorize"
    # Google sign-in for YouTube channels: the OAuth client (type "Web application") of a Google
    # Cloud project with the YouTube Data API v3; unset, the web app offers no "Connect
    # YouTube". The three addresses change only to reach a test's stand-in.
    youtube_client_id: str = ""
    youtube_client_secret: SecretStr | None = None
    youtube_api_url: str = "https://www.googleapis.com"
    youtube_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    youtube_token_url: str = "https://oauth2.googleapis.com/token"
    # LinkedIn: the app's client id and secret (developer.linkedin.com, Auth tab); unset, the web
    # app offers no "Connect LinkedIn" and tokens are not renewed. The API and OAuth hosts change
    # only for a test's stand-in.
    linkedin_client_id: str = ""
    linkedin_client_secret: SecretStr | None = None
    linkedin_api_url: str = "https://api.linkedin.com"
    linkedin_oauth_url: str = "https://www.linkedin.com"
    # X (OAuth 2.0 with PKCE, a confidential client): the X app's client id and secret; unset,
    # the web app offers no "Connect X" and X channels' two-hour tokens are not renewed. The
    # API and authorize addresses change only for a test's stand-in.
    x_client_id: str = ""
    x_client_secret: SecretStr | None = None
    x_api_url: str = "https://api.x.com"
    x_authorize_url: str = "https://x.com/i/oauth2/authorize"

    # Live broadcasting (relay/intake/live.py): the RTMP door ("off": none), how long a sender
    # that dropped may take to come back into the same broadcast, and the limits.
    rtmp_listen: str = "127.0.0.1:1935"
    # The rtmp:// address senders are given (behind NAT or a balancer); unset: from
    # RTMP_LISTEN and PUBLIC_URL's host.
    rtmp_public_url: str = ""
    # The SRT door (relay/intake/srt.py; "off": none): host:port of its UDP socket.
    srt_listen: str = "127.0.0.1:8890"
    live_reconnect_grace_seconds: float = Field(default=30.0, ge=0)
    live_max_duration_seconds: float = Field(default=4 * 3600.0, gt=0)
    # Bits a second, averaged over 10 s; 20 Mbit/s is above what phones send at 1080p60.
    live_max_bitrate: int = Field(default=20_000_000, ge=100_000)
    live_max_per_user: int = Field(default=1, ge=1)
    live_max_broadcasts: int = Field(default=10, ge=1)

    # Field validators (not the model validator) check single values, so that an error names
    # its variable and pydantic never echoes the whole input, passwords included.
    @field_validator("smtp_listen", "http_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("rtmp_listen", "srt_listen")
    @classmethod
    def _rtmp_listen(cls, value: str) -> str:
        if value.strip().lower() != "off":
            parse_listen(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        import ipaddress

        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError as exc:
                    raise ValueError(f"not an IP address or CIDR: {part.strip()!r}") from exc
        return value

    @field_validator("audio_loudness_lufs", mode="before")
    @classmethod
    def _loudness_off(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off")):
            return None
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return value.upper()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        host, port = parse_listen(self.http_listen)
        if not self.public_url:
            shown = "localhost" if host in ("0.0.0.0", "::") else host
            self.public_url = f"http://{shown}:{port}"
        self.public_url = self.public_url.rstrip("/")
        self.mail_domain = self.mail_domain.lower()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir.resolve() / 'relay.db'}"
        if not self.storage_url:
            self.storage_url = f"file://{self.data_dir.resolve() / 'media'}"
        if (self.smtp_tls_cert is None) != (self.smtp_tls_key is None):
            raise ValueError("set both RELAY_SMTP_TLS_CERT and RELAY_SMTP_TLS_KEY, or neither")
        if self.smtp_require_tls and self.smtp_tls_cert is None:
            raise ValueError("RELAY_SMTP_REQUIRE_TLS needs RELAY_SMTP_TLS_CERT and _KEY")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file(init_settings())
        if config_file is not None:
            if not config_file.is_file():
                raise ValueError(f"RELAY_CONFIG: config file {config_file} does not exist")
            try:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            except ValueError as exc:  # TOMLDecodeError: say which file, on one line
                raise ValueError(f"RELAY_CONFIG: {config_file} is not valid TOML: {exc}") from None
        return tuple(sources)

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def rtmp_on(self) -> bool:
        return self.rtmp_listen.strip().lower() != "off"

    @property
    def srt_on(self) -> bool:
        return self.srt_listen.strip().lower() != "off"

    def srt_url(self, key: str) -> str | None:
        """Where an SRT sender sends to, key included, in SRT's access control form
        (``srt://HOST:PORT?streamid=#!::r=KEY,m=publish``); None with the SRT door off. HOST
        as ``rtmp_url`` has it: PUBLIC_URL's host when the door listens on every address."""
        if not self.srt_on:
            return None
        from urllib.parse import urlsplit

        host, port = parse_listen(self.srt_listen)
        if host in ("0.0.0.0", "::"):
            host = urlsplit(self.public_url).hostname or "localhost"
        shown = f"[{host}]" if ":" in host else host
        return f"srt://{shown}:{port}?streamid=#!::r={key},m=publish"

    @property
    def rtmp_url(self) -> str:
        """Where a sender pushes to, without the key: ``rtmp://HOST:PORT/live``."""
        if self.rtmp_public_url:
            return self.rtmp_public_url.rstrip("/")
        from urllib.parse import urlsplit

        host, port = parse_listen(self.rtmp_listen if self.rtmp_on else "127.0.0.1:1935")
        if host in ("0.0.0.0", "::"):
            host = urlsplit(self.public_url).hostname or "localhost"
        shown = f"[{host}]" if ":" in host else host
        return f"rtmp://{shown}:{port}/live"


SECRET_KEY_FILE = "secret.key"


def secret_key(settings: Settings) -> bytes:
    """The relay's master secret: ``RELAY_SECRET_KEY``, else the key file in the data folder,
    made on first use. Derive purpose keys from it (``derive_key``); never use it directly."""
    value = settings.secret_key.get_secret_value() if settings.secret_key is not None else ""
    if value:  # an empty RELAY_SECRET_KEY= line means unset
        if len(value) < 16:
            raise ValueError("RELAY_SECRET_KEY must be at least 16 characters")
        return value.encode()
    return _key_file(settings.data_dir / SECRET_KEY_FILE)


def _key_file(path: Path) -> bytes:
    """Read the key file, creating it first if missing. Two processes starting together agree:
    the key is written and fsynced under a private temporary name, then ``link``ed into place,
    which fails if another got there first (so a reader never sees a half-written file)."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    value = path.read_text().strip()
    if len(value) < 16:
        raise ValueError(f"{path} holds no usable key; delete it to make a new one")
    return value.encode()


def derive_key(master: bytes, purpose: str) -> bytes:
    """A subkey for one purpose, so a signature made for one use is worthless for another."""
    return hmac.new(master, b"relay/" + purpose.encode(), hashlib.sha256).digest()


def _config_file(init_values: dict[str, Any]) -> Path | None:
    chosen = init_values.get("config") or os.environ.get("RELAY_CONFIG")
    return Path(chosen) if chosen else None


def load_settings(**flags: Any) -> Settings:
    """Settings from flags (None means "not given"), env and the TOML file."""
    return Settings(**{k: v for k, v in flags.items() if v is not None})


# Fields whose values are never shown, whatever their name says elsewhere.
_SECRET_WORDS = ("password", "secret", "token", "credential")
# user:password@ in a URL; the password runs to the last @ before the host (an unencoded @ in a
# password is common enough in hand-written settings).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^/\s]*)@")


def mask_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", url)


def _secret_values() -> list[str]:
    """Values from the environment that must never be printed: passwords in URLs and every
    ``RELAY_*`` variable named like a secret."""
    found: list[str] = []
    for name, value in os.environ.items():
        if not name.startswith("RELAY_") or not value:
            continue
        if any(word in name.lower() for word in _SECRET_WORDS):
            found.append(value)
        for match in _URL_PASSWORD.finditer(value):
            if match["pw"]:
                found.append(match["pw"])
    return sorted(found, key=len, reverse=True)


def mask_secrets(text: str, extra: tuple[str, ...] = ()) -> str:
    """``text`` on one line, URL passwords and secret settings' values replaced by ``***``."""
    text = mask_url(text)
    for value in [*extra, *_secret_values()]:
        if len(value) >= 3:  # masking "a" would garble the message without protecting anything
            text = text.replace(value, "***")
    return " ".join(text.split())


def describe_settings_error(exc: Exception) -> str:
    """One line that names the ``RELAY_*`` variable to fix, and never a secret.

    pydantic's own text includes the whole input (database and SMTP passwords with it), so it
    is rebuilt here from the structured errors, without input values.
    """
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors(include_url=False, include_input=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            # A whole-model check has no location; its message names its variables itself.
            loc = error["loc"]
            parts.append(f"RELAY_{str(loc[0]).upper()}: {message}" if loc else message)
        return mask_secrets("; ".join(parts))
    return mask_secrets(str(exc))
