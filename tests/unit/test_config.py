from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import load_settings


def test_flags_beat_env_beat_file_beat_defaults(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        'workers = 7\nmail_domain = "Files.Example.org"\nsmtp_listen = "0.0.0.0:25"\n'
    )
    for name in list(__import__("os").environ):
        if name.startswith("RELAY_"):
            monkeypatch.delenv(name)
    assert load_settings().workers == 2
    assert load_settings(config=str(config)).workers == 7
    monkeypatch.setenv("RELAY_CONFIG", str(config))
    assert load_settings().mail_domain == "files.example.org"
    monkeypatch.setenv("RELAY_WORKERS", "5")
    assert load_settings().workers == 5
    assert load_settings(workers=3).workers == 3
    assert load_settings().smtp_listen == "0.0.0.0:25"


def test_derived_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RELAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAY_HTTP_LISTEN", "0.0.0.0:9000")
    settings = load_settings()
    assert settings.public_url == "http://localhost:9000"
    assert settings.database_url == f"sqlite:///{tmp_path}/relay.db"
    assert settings.storage_url == f"file://{tmp_path}/media"


def test_bad_values_say_what_is_wrong(monkeypatch) -> None:
    monkeypatch.setenv("RELAY_HTTP_LISTEN", "8080")
    with pytest.raises(ValueError, match="host:port"):
        load_settings()
    monkeypatch.delenv("RELAY_HTTP_LISTEN")
    with pytest.raises(ValueError, match="does not exist"):
        load_settings(config="/nonexistent/relay.toml")
