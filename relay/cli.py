"""The ``relay`` command."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from typing import Any

import click
from pydantic import ValidationError

from relay.config import Settings, load_settings
from relay.db import Database, queries
from relay.db.schema import addresses, tokens


class Context:
    def __init__(self, config: str | None) -> None:
        self.config = config

    def settings(self, **flags: Any) -> Settings:
        try:
            return load_settings(config=self.config, **flags)
        except (ValidationError, ValueError) as exc:
            raise click.ClickException(f"bad settings: {exc}") from exc

    def db(self) -> Database:
        settings = self.settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        db.migrate()
        return db


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data) if as_json else text)


def _in_transaction(ctx: Context, fn: Callable[..., Any], *args: Any) -> Any:
    db = ctx.db()
    try:
        with db.begin() as conn:
            return fn(conn, *args)
    finally:
        db.close()


def _user_id(conn: Any, name: str) -> str:
    user_id = queries.user_id_by_name(conn, name)
    if user_id is None:
        raise click.ClickException(f"no user {name!r}; create one with `relay user add {name}`")
    return user_id


@click.group()
@click.option(
    "--config",
    envvar="RELAY_CONFIG",
    type=click.Path(dir_okay=False),
    help="TOML file with settings (flags beat env, env beats file).",
)
@click.version_option(package_name="relay")
@click.pass_context
def main(click_ctx: click.Context, config: str | None) -> None:
    """Take media in over SMTP and HTTP, host it, and pass the links on."""
    click_ctx.obj = Context(config)


@main.command()
@click.option("--data-dir", help="Spool, SQLite database, local media. [RELAY_DATA_DIR]")
@click.option("--smtp-listen", help="SMTP host:port. [RELAY_SMTP_LISTEN]")
@click.option("--http-listen", help="HTTP host:port. [RELAY_HTTP_LISTEN]")
@click.option("--public-url", help="Base of every link handed out. [RELAY_PUBLIC_URL]")
@click.option("--mail-domain", help="Domain of the secret addresses. [RELAY_MAIL_DOMAIN]")
@click.option("--database-url", help="sqlite:///… or postgresql://… [RELAY_DATABASE_URL]")
@click.option("--storage-url", help="file://… or s3://BUCKET[/PREFIX] [RELAY_STORAGE_URL]")
@click.option("--workers", type=int, help="Processing workers. [RELAY_WORKERS]")
@click.pass_obj
def serve(ctx: Context, **flags: Any) -> None:
    """Run SMTP intake, HTTP intake and pages, and the workers in one process."""
    from relay.app import serve as run

    run(ctx.settings(**flags))


@main.group()
def user() -> None:
    """Users: each has API tokens and secret addresses."""


@user.command("add")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def user_add(ctx: Context, name: str, as_json: bool) -> None:
    """Create a user with one API token and one secret address."""
    domain = ctx.settings().mail_domain

    def create(conn: Any) -> tuple[str, str]:
        try:
            user_id = queries.add_user(conn, name)
        except queries.Conflict as exc:
            raise click.ClickException(f"user {name!r} already exists") from exc
        return queries.add_token(conn, user_id), queries.add_address(conn, user_id)

    token, secret = _in_transaction(ctx, create)
    address = f"{secret}@{domain}"
    _emit(
        as_json,
        {"user": name, "token": token, "address": address},
        f"user:    {name}\ntoken:   {token}   (shown once; keep it)\naddress: {address}",
    )


@main.group()
def address() -> None:
    """Secret addresses that take mail for a user."""


@address.command("add")
@click.option("--user", "name", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def address_add(ctx: Context, name: str, as_json: bool) -> None:
    """Give a user another secret address."""
    domain = ctx.settings().mail_domain
    secret = _in_transaction(ctx, lambda conn: queries.add_address(conn, _user_id(conn, name)))
    value = f"{secret}@{domain}"
    _emit(as_json, {"address": value}, value)


@address.command("revoke")
@click.argument("value")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def address_revoke(ctx: Context, value: str, as_json: bool) -> None:
    """Stop taking mail at ADDRESS (SECRET@DOMAIN or SECRET)."""
    secret = value.partition("@")[0].partition("+")[0].lower()
    if not _in_transaction(ctx, queries.revoke, addresses, secret):
        raise click.ClickException("no such live address")
    _emit(as_json, {"revoked": value}, f"revoked {value}")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("add")
@click.option("--user", "name", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def token_add(ctx: Context, name: str, as_json: bool) -> None:
    """Give a user another API token (shown once)."""
    value = _in_transaction(ctx, lambda conn: queries.add_token(conn, _user_id(conn, name)))
    _emit(as_json, {"token": value}, value)


@token.command("revoke")
@click.argument("value")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def token_revoke(ctx: Context, value: str, as_json: bool) -> None:
    """Revoke an API token."""
    if not _in_transaction(ctx, queries.revoke, tokens, value):
        raise click.ClickException("no such live token")
    _emit(as_json, {"revoked": True}, "revoked")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def doctor(ctx: Context, as_json: bool) -> None:
    """Check ffmpeg, libmagic, storage and the database; say what is missing."""
    import asyncio

    checks: dict[str, tuple[bool, str]] = {}
    try:
        from relay import detect

        checks["libmagic"] = (True, f"libmagic {detect.libmagic_version()}")
    except Exception as exc:  # ImportError or the library missing
        checks["libmagic"] = (False, f"{exc}: install libmagic1 (Debian) / libmagic (brew)")
    for tool in ("ffmpeg", "ffprobe"):
        found = shutil.which(tool)
        checks[tool] = (
            (True, found)
            if found
            else (False, "not found: install ffmpeg (apt-get install ffmpeg); needed for video")
        )
    settings = ctx.settings()
    try:
        db = Database(settings.database_url)
        db.migrate()
        db.ping()
        db.close()
        checks["database"] = (True, settings.database_url.split("@")[-1])
    except Exception as exc:
        checks["database"] = (False, f"{type(exc).__name__}: {exc}; check RELAY_DATABASE_URL")
    try:
        from relay.storage import open_store

        asyncio.run(open_store(settings.storage_url).check())
        checks["storage"] = (True, settings.storage_url)
    except Exception as exc:
        checks["storage"] = (False, f"{exc}; check RELAY_STORAGE_URL")
    ok = all(good for good, _ in checks.values())
    if as_json:
        click.echo(
            json.dumps(
                {"ok": ok, "checks": {k: {"ok": g, "detail": d} for k, (g, d) in checks.items()}}
            )
        )
    else:
        for name, (good, detail) in checks.items():
            click.echo(f"{'ok  ' if good else 'FAIL'} {name:9} {detail}")
    sys.exit(0 if ok else 1)
