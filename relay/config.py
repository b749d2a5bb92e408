"""Settings: flags beat ``RELAY_*`` env, env beats the TOML file, the file beats defaults.

Every field here is a ``RELAY_<NAME>`` environment variable and must be documented in the README
(a test checks that).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


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
    workers: int = 2
    allow_private_destinations: bool = False
    max_image_pixels: int = 80_000_000
    max_duration_seconds: float = 4 * 3600.0
    processing_timeout_seconds: float = 600.0
    video_crf: int = 23
    video_preset: str = "veryfast"
    ffmpeg_memory_bytes: int = 2 << 30
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

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        parse_listen(self.smtp_listen)
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
        if self.workers < 0:
            raise ValueError("RELAY_WORKERS must be 0 or more")
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
                raise ValueError(f"config file {config_file} does not exist")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"


def _config_file(init_values: dict[str, Any]) -> Path | None:
    chosen = init_values.get("config") or os.environ.get("RELAY_CONFIG")
    return Path(chosen) if chosen else None


def load_settings(**flags: Any) -> Settings:
    """Settings from flags (None means "not given"), env and the TOML file."""
    return Settings(**{k: v for k, v in flags.items() if v is not None})
