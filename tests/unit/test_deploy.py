"""deploy/: the compose file, the image and the systemd unit are wired to each other and to the
relay's real settings. ``docker compose config`` and ``systemd-analyze verify`` run too where the
machine has them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from relay.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS = {f"RELAY_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _default(value: str) -> str:
    """``${VAR:-default}`` as compose resolves it when VAR is unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_compose_runs_relay_minio_postgres_and_a_bucket_step(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"relay", "minio", "postgres", "createbucket"}


def test_relay_is_wired_to_minio_and_postgres(compose: dict[str, Any]) -> None:
    relay = compose["services"]["relay"]
    env = {k: _default(v) for k, v in _env(relay).items()}
    unknown = {k for k in env if k.startswith("RELAY_")} - SETTINGS
    assert unknown == set(), f"not relay settings: {unknown}"

    assert env["RELAY_S3_ENDPOINT_URL"] == "http://minio:9000"
    database = urlparse(env["RELAY_DATABASE_URL"])
    assert (database.scheme, database.hostname, database.port) == ("postgresql", "postgres", 5432)
    postgres = _env(compose["services"]["postgres"])
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == _default(postgres["POSTGRES_PASSWORD"])
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert env["RELAY_HTTP_LISTEN"] == "0.0.0.0:8080"
    assert env["RELAY_SMTP_LISTEN"] == "0.0.0.0:2525"
    # The settings parse as the relay will parse them.
    Settings(**{k.removeprefix("RELAY_").lower(): v for k, v in env.items() if k in SETTINGS})

    storage = urlparse(env["RELAY_STORAGE_URL"])
    assert storage.scheme == "s3"
    bucket_step = compose["services"]["createbucket"]
    script = " ".join(bucket_step["command"])
    assert f"mc mb --ignore-existing local/{storage.netloc}" in script
    assert "http://minio:9000" in script
    assert env["RELAY_S3_PUBLIC_URL"].endswith(f"/{storage.netloc}")
    # The relay signs with MinIO's root credentials.
    minio = {k: _default(v) for k, v in _env(compose["services"]["minio"]).items()}
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]

    assert relay["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
        "createbucket": {"condition": "service_completed_successfully"},
    }
    assert bucket_step["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert bucket_step["image"].startswith("minio/mc")
    assert compose["services"]["minio"]["image"].startswith("minio/minio")
    for name in ("minio", "postgres"):
        assert compose["services"][name]["healthcheck"]["test"], name


def test_relay_image_is_built_from_deploy_dockerfile(compose: dict[str, Any]) -> None:
    build = compose["services"]["relay"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert (context / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert (context / "pyproject.toml").is_file()
    volumes = compose["services"]["relay"]["volumes"]
    assert any(v.endswith(":/var/lib/relay") for v in volumes)
    assert set(compose["volumes"]) >= {v.split(":")[0] for v in volumes}


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim-\w+$", text, re.M)
    install = re.search(r"apt-get install[^\n]*", text)
    assert install and "ffmpeg" in install[0] and "libmagic1" in install[0]
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert text.rstrip().splitlines()[-1] == 'CMD ["relay", "serve"]'
    assert "ENTRYPOINT" not in text  # any `relay …` command runs in the same image
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (DEPLOY.parent / copied).exists(), copied


def _unit(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_systemd_unit_is_hardened() -> None:
    unit = _unit((DEPLOY / "relay.service").read_text())
    assert unit["ExecStart"][0].endswith("/relay serve")
    assert unit["User"] == ["relay"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    data_dir = unit["Environment"][0].removeprefix("RELAY_DATA_DIR=")
    assert data_dir in unit["ReadWritePaths"][0].split()
    assert unit["StateDirectory"] == [Path(data_dir).name]
    assert unit["EnvironmentFile"][0].endswith("relay.env")
    for option in ("PrivateTmp", "ProtectHome", "RestrictSUIDSGID", "LockPersonality"):
        assert unit[option] == ["yes"], option


def test_env_example_names_only_real_settings() -> None:
    names = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (DEPLOY / "relay.env.example").read_text(), re.M)
    relay_names = {n for n in names if n.startswith("RELAY_")}
    assert relay_names - SETTINGS == set()
    assert {n for n in names if not n.startswith("RELAY_")} <= {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
    }
    # Every S3 setting is shown, so the example is where to start an S3 set-up.
    assert {s for s in SETTINGS if s.startswith("RELAY_S3_")} <= relay_names


def test_env_example_shows_every_setting() -> None:
    # Its head says it is a complete list to start from, as the README's table is.
    names = set(
        re.findall(r"^#? ?(RELAY_[A-Z0-9_]+)=", (DEPLOY / "relay.env.example").read_text(), re.M)
    )
    assert sorted(SETTINGS - names) == []


def _has_compose_v2() -> bool:
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return found.returncode == 0


@pytest.mark.skipif(not _has_compose_v2(), reason="no `docker compose` (v2) on this machine")
def test_docker_compose_config_accepts_the_file() -> None:
    done = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "relay.service"
    unit.write_text((DEPLOY / "relay.service").read_text())
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    # The relay is not installed at /opt/relay here; anything else is a real complaint.
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "is not executable" not in line and "/opt/relay/" not in line
    ]
    assert complaints == []
