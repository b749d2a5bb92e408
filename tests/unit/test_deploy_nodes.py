"""deploy/compose.nodes.yaml and deploy/haproxy/haproxy.cfg: several nodes behind a balancer,
sharing PostgreSQL and MinIO and nothing else, wired to real settings."""

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
NODES = ("relay-a", "relay-b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.nodes.yaml").read_text())


@pytest.fixture(scope="module")
def haproxy() -> dict[str, list[str]]:
    """Each section (``frontend http``, ``backend relay_smtp``…) → its lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in (DEPLOY / "haproxy" / "haproxy.cfg").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), [])
        else:
            current.append(line.strip())
    return sections


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def _default(value: str) -> str:
    return re.sub(r"\$\{[A-Z0-9_]+:[-?]([^}]*)\}", r"\1", value)


def test_two_nodes_a_balancer_postgres_minio(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*NODES, "balancer", "postgres", "minio", "createbucket"}


def test_the_nodes_share_database_store_and_secret_and_nothing_else(
    compose: dict[str, Any],
) -> None:
    envs = [_env(compose["services"][node]) for node in NODES]
    assert envs[0] == envs[1]
    env = envs[0]
    unknown = {k for k in env if k.startswith("RELAY_")} - SETTINGS
    assert unknown == set(), f"not relay settings: {unknown}"
    assert urlparse(env["RELAY_DATABASE_URL"]).scheme == "postgresql"
    assert urlparse(env["RELAY_STORAGE_URL"]).scheme == "s3"  # so the spool is shared too
    assert env["RELAY_SECRET_KEY"].startswith("${RELAY_SECRET_KEY:?")  # required, never a default
    values = {
        k.removeprefix("RELAY_").lower(): _default(v) for k, v in env.items() if k in SETTINGS
    }
    values["secret_key"] = "x" * 32
    Settings(**values)  # type: ignore[arg-type]
    volumes = [compose["services"][node]["volumes"] for node in NODES]
    assert volumes[0] != volumes[1]  # a data folder each (scratch, caches)
    assert all(v.endswith(":/var/lib/relay") for vs in volumes for v in vs)
    assert set(compose["volumes"]) >= {v.split(":")[0] for vs in volumes for v in vs}


def test_the_balancer_sends_http_and_smtp_to_every_node(
    compose: dict[str, Any], haproxy: dict[str, list[str]]
) -> None:
    env = _env(compose["services"]["relay-a"])
    http_port = env["RELAY_HTTP_LISTEN"].rsplit(":", 1)[1]
    smtp_port = env["RELAY_SMTP_LISTEN"].rsplit(":", 1)[1]
    for backend, port in (("relay_http", http_port), ("relay_smtp", smtp_port)):
        servers = [
            line.split()[1:3]
            for line in haproxy[f"backend {backend}"]
            if line.startswith("server ")
        ]
        assert servers == [[node, f"{node}:{port}"] for node in NODES], backend
    assert "option httpchk GET /readyz" in haproxy["backend relay_http"]
    assert "mode tcp" in haproxy["backend relay_smtp"]
    assert "option forwardfor" in haproxy["frontend http"]
    balancer = compose["services"]["balancer"]
    assert balancer["networks"]["relay"]["ipv4_address"] == env["RELAY_TRUSTED_PROXIES"]
    mounted = balancer["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted).resolve() == DEPLOY / "haproxy" / "haproxy.cfg"
    published = {p.split(":")[-1] for p in balancer["ports"]}
    binds = {
        line.split(":")[-1] for s in haproxy.values() for line in s if line.startswith("bind ")
    }
    assert published == binds == {http_port, smtp_port}


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="no haproxy on this machine")
def test_haproxy_accepts_the_file() -> None:
    done = subprocess.run(
        ["haproxy", "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
