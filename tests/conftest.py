from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from relay.db import Database, normalise_url
from relay.sealed import Sealer
from tests.server import RelayServer

# The relay always opens its database with a key for channel secrets; so do the tests.
TEST_SEALER = Sealer.from_master(b"the test suite's master key")

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
if not CORPORA.is_dir():
    CORPORA = Path("/work/shared/corpora")


@pytest.fixture(scope="session")
def corpora() -> Path:
    assert CORPORA.is_dir(), f"test corpora not found at {CORPORA}"
    return CORPORA


@pytest.fixture
def small_fs() -> Iterator[Callable[[Path, str], Path]]:
    """A factory: ``small_fs(folder, "300k")`` mounts a filesystem of that size on ``folder``
    (made if missing), for a real ENOSPC; all are unmounted at the end. Mounting needs root,
    which CI has."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True
        )
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator:
    """A factory: ``start_relay(**env)`` gives a running ``relay serve``; all stop at the end."""
    started: list[RelayServer] = []

    def start(data_dir: Path | None = None, **env: str) -> RelayServer:
        server = RelayServer(data_dir or tmp_path / f"relay-{len(started)}", **env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One ``relay serve`` shared by a module's tests, with a user ``anna``."""
    server = RelayServer(tmp_path_factory.mktemp("relay"))
    server.start()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    yield server
    server.stop()


def _database_urls() -> list[str]:
    urls = ["sqlite"]
    if os.environ.get("RELAY_TEST_DATABASE_URL"):
        urls.append("postgresql")
    return urls


@pytest.fixture(params=_database_urls())
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database: SQLite, and PostgreSQL when RELAY_TEST_DATABASE_URL is set
    (in a schema of its own, dropped afterwards), opened with a key (``TEST_SEALER``)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'test.db'}", sealer=TEST_SEALER)
        db.migrate()
        yield db
        db.close()
        return
    with _schema_on_postgres(os.environ["RELAY_TEST_DATABASE_URL"]) as schema:
        url = in_schema(normalise_url(os.environ["RELAY_TEST_DATABASE_URL"]), schema)
        db = Database(url, sealer=TEST_SEALER)
        db.migrate()
        yield db
        db.close()


def in_schema(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections work in ``schema``."""
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def _schema_on_postgres(base: str) -> Iterator[str]:
    """A fresh schema of its own on the test PostgreSQL, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(base))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(the test PostgreSQL's URL as given, a fresh schema on it); skipped without one."""
    base = os.environ.get("RELAY_TEST_DATABASE_URL")
    if not base:
        pytest.skip("RELAY_TEST_DATABASE_URL is not set")
    with _schema_on_postgres(base) as schema:
        yield base, schema


@pytest.fixture
def postgres(postgres_schema: tuple[str, str]) -> str:
    """The URL of a fresh schema on the test PostgreSQL (several nodes may share it)."""
    return in_schema(*postgres_schema)
