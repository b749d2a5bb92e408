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


def test_errors_name_the_variable_and_never_a_password(monkeypatch) -> None:
    from relay.config import describe_settings_error

    monkeypatch.setenv("RELAY_DATABASE_URL", "postgresql://relay:Pw-0f-db@db.example.org/relay")
    monkeypatch.setenv("RELAY_OUTBOUND_SMTP_PASSWORD", "Pw-0f-smtp")
    monkeypatch.setenv("RELAY_HTTP_LISTEN", "8080")
    monkeypatch.setenv("RELAY_WORKERS", "-3")
    with pytest.raises(ValueError) as caught:
        load_settings()
    line = describe_settings_error(caught.value)
    assert "\n" not in line
    assert "RELAY_HTTP_LISTEN" in line and "RELAY_WORKERS" in line
    assert "Pw-0f" not in line


def test_mask_secrets_hides_url_passwords_and_secret_settings(monkeypatch) -> None:
    from relay.config import mask_secrets

    monkeypatch.setenv("RELAY_OUTBOUND_SMTP_PASSWORD", "Pw-0f-smtp")
    text = mask_secrets("login Pw-0f-smtp failed\nfor postgresql://u:p%40ss@h/db")
    assert text == "login *** failed for postgresql://u:***@h/db"


def test_a_broken_config_file_names_it(tmp_path: Path) -> None:
    from relay.config import describe_settings_error

    config = tmp_path / "relay.toml"
    config.write_text('workers = \ndatabase_url = "postgresql://u:Pw-0f-db@h/d"\n')
    with pytest.raises(ValueError) as caught:
        load_settings(config=str(config))
    line = describe_settings_error(caught.value)
    assert line.startswith(f"RELAY_CONFIG: {config} is not valid TOML")
    assert "Pw-0f" not in line and "\n" not in line


def test_a_password_with_an_at_sign_is_masked_whole(monkeypatch) -> None:
    from relay.config import mask_secrets

    monkeypatch.setenv("RELAY_DATABASE_URL", "postgresql://u:Pw@0f-db@h/db")
    assert mask_secrets("postgresql://u:Pw@0f-db@h/db") == "postgresql://u:***@h/db"
    assert mask_secrets("password authentication failed: Pw@0f-db") == (
        "password authentication failed: ***"
    )
