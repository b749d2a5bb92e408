"""The ``relay`` command."""

from __future__ import annotations

import errno
import json
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from relay.config import (
    Settings,
    describe_settings_error,
    load_settings,
    mask_secrets,
    mask_url,
    parse_listen,
)
from relay.db import Database, queries
from relay.db.schema import addresses, tokens
from relay.errors import StorageError

if TYPE_CHECKING:
    from relay.sealed import Sealer


class Context:
    def __init__(self, config: str | None) -> None:
        self.config = config

    def settings(self, **flags: Any) -> Settings:
        try:
            return load_settings(config=self.config, **flags)
        except (ValidationError, ValueError) as exc:
            raise click.ClickException(f"bad settings: {describe_settings_error(exc)}") from None

    def db(self) -> Database:
        settings = self.settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url, sealer=_sealer(settings))
        db.migrate()
        return db


def _sealer(settings: Settings) -> Sealer:
    """The sealer of destinations' secrets, from the same key ``relay serve`` uses."""
    from relay.sealed import Sealer

    try:
        return Sealer.from_settings(settings)
    except (ValueError, OSError) as exc:  # a short RELAY_SECRET_KEY, an unreadable key file
        raise click.ClickException(mask_secrets(f"cannot read the relay's key: {exc}")) from None


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
@click.option("--no-smtp", is_flag=True, help="No SMTP door on this node.")
@click.option("--no-http", is_flag=True, help="No HTTP door (API, uploads, pages) on this node.")
@click.option("--no-workers", is_flag=True, help="No processing on this node: doors only.")
@click.pass_obj
def serve(ctx: Context, no_smtp: bool, no_http: bool, no_workers: bool, **flags: Any) -> None:
    """Run SMTP intake, HTTP intake and pages, and the workers in one process."""
    if no_smtp and no_http and no_workers:
        raise click.UsageError("--no-smtp, --no-http and --no-workers leave nothing to run")
    _run(ctx.settings(**flags), smtp=not no_smtp, http=not no_http, workers=not no_workers)


@main.command()
@click.option("--data-dir", help="Scratch and caches (and SQLite, local media). [RELAY_DATA_DIR]")
@click.option("--database-url", help="sqlite:///… or postgresql://… [RELAY_DATABASE_URL]")
@click.option("--storage-url", help="file://… or s3://BUCKET[/PREFIX] [RELAY_STORAGE_URL]")
@click.option("--workers", type=int, help="Processing workers. [RELAY_WORKERS]")
@click.pass_obj
def worker(ctx: Context, **flags: Any) -> None:
    """Run the workers only: a node that processes media and delivers posts, no doors
    (``relay serve --no-smtp --no-http``)."""
    _run(ctx.settings(**flags), smtp=False, http=False, workers=True)


def _run(settings: Settings, *, smtp: bool, http: bool, workers: bool) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from relay.app import serve as run

    _preflight(settings, smtp=smtp, http=http)
    try:
        run(settings, smtp=smtp, http=http, workers=workers)
    except OSError as exc:  # a port taken between the preflight and the bind
        raise click.ClickException(_listen_error(settings, exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(_database_error(settings, exc)) from None


def _listen_variables(
    settings: Settings, *, smtp: bool = True, http: bool = True
) -> list[tuple[str, str]]:
    return [
        *([("RELAY_HTTP_LISTEN", settings.http_listen)] if http else []),
        *([("RELAY_SMTP_LISTEN", settings.smtp_listen)] if smtp else []),
        *([("RELAY_RTMP_LISTEN", settings.rtmp_listen)] if http and settings.rtmp_on else []),
        *([("RELAY_SRT_LISTEN", settings.srt_listen)] if http and settings.srt_on else []),
    ]


def _bind_reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (is another relay serve, or another program, on it?)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE; see README)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no such address on this machine"
    return exc.strerror or str(exc)


def _listen_error(settings: Settings, exc: OSError) -> str:
    """One line for a failed bind, naming the setting whose port it was."""
    text = str(exc)
    for variable, listen in _listen_variables(settings):
        if f", {parse_listen(listen)[1]})" in text or f":{parse_listen(listen)[1]}" in text:
            return mask_secrets(f"{variable}: cannot listen on {listen}: {_bind_reason(exc)}")
    return mask_secrets(f"cannot start: {exc}")


def _database_error(settings: Settings, exc: Exception) -> str:
    reason = str(getattr(exc, "orig", None) or exc).split("(Background on this error", 1)[0]
    url = mask_url(settings.database_url)
    return mask_secrets(f"RELAY_DATABASE_URL: cannot use the database {url}: {reason}")


def _preflight(settings: Settings, *, smtp: bool = True, http: bool = True) -> None:
    """Check what most often stops a start (a port taken, a database down) before anything
    starts or logs, so that the operator gets one line naming the setting to fix."""
    for variable, listen in _listen_variables(settings, smtp=smtp, http=http):
        host, port = parse_listen(listen)
        udp = variable == "RELAY_SRT_LISTEN"  # SRT runs over UDP
        try:
            infos = socket.getaddrinfo(
                host,
                port,
                type=socket.SOCK_DGRAM if udp else socket.SOCK_STREAM,
                flags=socket.AI_PASSIVE,
            )
            for family, kind, proto, _name, address in infos:
                with socket.socket(family, kind, proto) as sock:
                    if not udp:
                        # As asyncio's create_server does: a port in TIME_WAIT is not "in use".
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(address)
        except OSError as exc:
            reason = _bind_reason(exc) if exc.errno else str(exc)
            raise click.ClickException(
                mask_secrets(f"{variable}: cannot listen on {listen}: {reason}")
            ) from None
    _sealer(settings)  # a short RELAY_SECRET_KEY, an unreadable key file: one line, now
    if not settings.database_url.startswith("sqlite"):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            db = Database(settings.database_url)
            try:
                db.ping()
            finally:
                db.close()
        except SQLAlchemyError as exc:
            raise click.ClickException(_database_error(settings, exc)) from None


@main.group()
def user() -> None:
    """Users: each has API tokens and secret addresses."""


def _read_password(name: str) -> str:
    """A new password: prompted for twice on a terminal (never echoed, never in argv), else the
    first line of stdin (scripts: ``printf '%s\\n' "$PW" | relay user password anna``)."""
    if sys.stdin.isatty():
        password = click.prompt(
            f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise click.ClickException("a password needs at least 8 characters")
    return str(password)


@user.command("add")
@click.argument("name")
@click.option("--password", "with_password", is_flag=True, help="Ask for a web app password.")
@click.option("--admin", is_flag=True, help="Make the user an administrator of the relay.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def user_add(ctx: Context, name: str, with_password: bool, admin: bool, as_json: bool) -> None:
    """Create a user with one API token and one secret address."""
    domain = ctx.settings().mail_domain
    hashed = None
    if with_password:
        # argon2 and the web app's module (aiohttp with it) only when a password is set: ~0.4 s
        # of every `relay user add` otherwise.
        from relay.web.auth import hash_password

        hashed = hash_password(_read_password(name))

    def create(conn: Any) -> tuple[str, str]:
        try:
            user_id = queries.add_user(conn, name)
        except queries.Conflict as exc:
            raise click.ClickException(f"user {name!r} already exists") from exc
        if hashed is not None:
            queries.set_password(conn, user_id, hashed)
        if admin:
            queries.set_admin(conn, user_id, True)
        return queries.add_token(conn, user_id), queries.add_address(conn, user_id)

    token, secret = _in_transaction(ctx, create)
    address = f"{secret}@{domain}"
    _emit(
        as_json,
        {"user": name, "token": token, "address": address},
        f"user:    {name}\ntoken:   {token}   (shown once; keep it)\naddress: {address}",
    )


@user.command("password")
@click.argument("name")
@click.pass_obj
def user_password(ctx: Context, name: str) -> None:
    """Set the user's web app password (prompted for, or the first line of stdin). Sessions
    signed in with the old one end."""
    from relay.web.auth import hash_password

    hashed = hash_password(_read_password(name))

    def change(conn: Any) -> None:
        user_id = _user_id(conn, name)
        queries.set_password(conn, user_id, hashed)
        queries.end_sessions(conn, user_id)

    _in_transaction(ctx, change)
    click.echo(f"{name}: password set", err=True)


@user.command("reply")
@click.argument("name")
@click.option("--on/--off", "on", required=True, help="Answer proven senders of mailed posts.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def user_reply(ctx: Context, name: str, on: bool, as_json: bool) -> None:
    """Reply to the sender of each mailed post once it is delivered (needs the outbound
    SMTP settings; only senders proven by SMTP AUTH, DKIM or SPF get one)."""
    _in_transaction(ctx, lambda conn: queries.set_reply_to_sender(conn, _user_id(conn, name), on))
    _emit(
        as_json, {"user": name, "reply_to_sender": on}, f"{name}: replies {'on' if on else 'off'}"
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


@address.command("policy")
@click.argument("value")
@click.option(
    "--policy",
    "policy_",
    required=True,
    type=click.Choice(["anyone", "allowlist", "dkim", "spf", "dkim-or-spf"]),
    help="Who may post through the address.",
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="SENDER",
    help="An allowed From address, or @DOMAIN; repeatable. With dkim/spf, also required.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def address_policy(
    ctx: Context, value: str, policy_: str, allow: tuple[str, ...], as_json: bool
) -> None:
    """Set who may post through ADDRESS (SECRET@DOMAIN or SECRET)."""
    if policy_ == "allowlist" and not allow:
        raise click.UsageError("--policy allowlist needs at least one --allow SENDER")
    allowed = [a.strip().lower() for a in allow if a.strip()]
    for entry in allowed:
        if "@" not in entry or any(c.isspace() for c in entry):
            raise click.BadParameter(
                f"{entry!r}: give NAME@DOMAIN or @DOMAIN", param_hint="--allow"
            )
    secret = value.partition("@")[0].partition("+")[0].lower()
    if not _in_transaction(ctx, queries.set_address_policy, secret, policy_, allowed):
        raise click.ClickException("no such live address")
    _emit(
        as_json,
        {"address": value, "policy": policy_, "allowed_senders": allowed},
        f"{value}: {policy_}" + (f" ({', '.join(allowed)})" if allowed else ""),
    )


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
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--server", required=True, envvar="RELAY_SERVER", help="e.g. http://127.0.0.1:8080")
@click.option("--token", required=True, envvar="RELAY_TOKEN", help="An API token of yours.")
@click.option("--title", default="", help="Title of each post.")
@click.option("--text", default="", help="Text of each post.")
@click.option("--wait", is_flag=True, help="Follow processing; show each item's status.")
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="MiB per request.",
)
@click.option("--limit-rate", help="At most this many bytes a second: 500K, 5M, 1G.")
def upload(
    files: tuple[Path, ...],
    server: str,
    token: str,
    title: str,
    text: str,
    wait: bool,
    chunk_size: int,
    limit_rate: str | None,
) -> None:
    """Upload FILEs resumably (tus) with progress bars; print each post's page URL.

    One post per file. Interrupted (Ctrl-C, network, laptop closed)? Run the same command again:
    each file continues where the server stopped. With --wait, the exit status is 1 if an item
    failed to process. --server and --token may come from RELAY_SERVER and RELAY_TOKEN.
    """
    from relay.client.upload import run

    sys.exit(
        run(
            list(files),
            server,
            token,
            title=title,
            text=text,
            wait=wait,
            chunk_mib=chunk_size,
            limit_rate=limit_rate,
        )
    )


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
            else (
                False,
                "not found: video and audio cannot be processed (photos and documents can); "
                "install ffmpeg (apt-get install ffmpeg / brew install ffmpeg)",
            )
        )
    settings = ctx.settings()
    key_error = ""
    sealer: Sealer | None = None
    try:
        sealer = _sealer(settings)
    except click.ClickException as exc:  # the key itself: the database is checked without it
        key_error = exc.message
    unreadable: list[Any] = []
    try:
        from relay.db import destinations

        # As `relay serve` does on its first start: the SQLite file lives in the data folder.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url, sealer=sealer)
        try:
            db.migrate()
            db.ping()
            if sealer is not None:
                with db.begin(write=False) as conn:
                    unreadable = destinations.unreadable_destinations(conn)
        finally:
            db.close()
        checks["database"] = (True, mask_url(settings.database_url))
    except Exception as exc:
        checks["database"] = (False, _database_error(settings, exc))
    if key_error:
        checks["secrets"] = (False, key_error)
    elif checks["database"][0]:  # a database that cannot be read says nothing of its secrets
        checks["secrets"] = _secrets_check(unreadable)
    try:
        from relay.storage import open_store

        asyncio.run(open_store(settings.storage_url, settings).check())
        checks["storage"] = (True, settings.storage_url)
    except StorageError as exc:  # already says what to fix
        checks["storage"] = (False, mask_secrets(exc.detail))
    except Exception as exc:
        checks["storage"] = (False, mask_secrets(f"{exc}; check RELAY_STORAGE_URL"))
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


@main.group()
def destination() -> None:
    """Where a user's posts are cross-posted."""


def _parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        options[key.strip()] = value
    return options


def _secrets_check(unreadable: list[Any]) -> tuple[bool, str]:
    """``relay doctor``'s line on channel secrets: the channels whose secrets do not open."""
    if not unreadable:
        return True, "channel secrets open with this RELAY_SECRET_KEY"
    names = ", ".join(f"{row['id']} ({row['type']})" for row in unreadable)
    return False, (
        f"{len(unreadable)} channel(s) with secrets that do not open with this RELAY_SECRET_KEY:"
        f" {names}; connect them again, or restore the RELAY_SECRET_KEY they were saved with"
    )


@destination.command("add")
@click.option("--user", "name", required=True)
@click.option("--type", "type_", required=True, help="webhook, mastodon, bluesky, …")
@click.option("--url", help="Endpoint or instance URL.")
@click.option("--secret", help="Signing secret (webhook: whsec_…; made for you when omitted).")
@click.option("--token", "token_", help="Access token or app password.")
@click.option(
    "--set",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Adapter option (e.g. handle=anna.bsky.social); repeatable.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def destination_add(
    ctx: Context,
    name: str,
    type_: str,
    url: str | None,
    secret: str | None,
    token_: str | None,
    options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Cross-post NAME's posts to a new destination."""
    from relay.db import destinations
    from relay.publish import registry
    from relay.publish.webhook import new_secret

    known = registry()
    if type_ not in known:
        raise click.ClickException(f"unknown type {type_!r}; known: {', '.join(sorted(known))}")
    if type_ == "webhook":
        if not url:
            raise click.ClickException("a webhook needs --url")
        secret = secret or new_secret()
    config = _parse_options(options)
    destination_id = _in_transaction(
        ctx,
        lambda conn: destinations.add_destination(
            conn, _user_id(conn, name), type_, url, secret, token_, config
        ),
    )
    result = {"id": destination_id, "type": type_}
    if type_ == "webhook":
        result["secret"] = secret  # the receiver needs it to verify signatures
    _emit(as_json, result, "\n".join(f"{k}: {v}" for k, v in result.items()))


@destination.command("list")
@click.option("--user", "name", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def destination_list(ctx: Context, name: str, as_json: bool) -> None:
    """NAME's destinations."""
    from relay.db import destinations

    rows = _in_transaction(
        ctx, lambda conn: destinations.list_destinations(conn, _user_id(conn, name))
    )
    found = [{"id": r["id"], "type": r["type"], "url": r["url"]} for r in rows]
    _emit(
        as_json,
        {"destinations": found},
        "\n".join(f"{d['id']}  {d['type']:10} {d['url'] or ''}" for d in found) or "none",
    )


@destination.command("remove")
@click.argument("destination_id")
@click.pass_obj
def destination_remove(ctx: Context, destination_id: str) -> None:
    """Stop cross-posting to DESTINATION_ID (pending deliveries to it fail)."""
    from relay.db import destinations

    if not _in_transaction(ctx, destinations.remove_destination, destination_id):
        raise click.ClickException("no such active destination")
    click.echo(f"removed {destination_id}")


@destination.command("test")
@click.argument("destination_id")
@click.pass_obj
def destination_test(ctx: Context, destination_id: str) -> None:
    """Send a harmless check (verify credentials) and print what the destination answered."""
    import asyncio

    from relay.db import destinations
    from relay.errors import PublishError
    from relay.publish import adapter_for
    from relay.publish.deliver import destination_from_row
    from relay.publish.net import Http

    row = _in_transaction(ctx, destinations.destination_row, destination_id)
    if row is None or not row["active"]:
        raise click.ClickException("no such active destination")

    async def check() -> str:
        http = Http(allow_private=ctx.settings().allow_private_destinations)
        try:
            return await adapter_for(destination_from_row(row), http).check()
        finally:
            await http.close()

    try:
        click.echo(asyncio.run(check()))
    except PublishError as exc:
        raise click.ClickException(f"{exc.public()['message']} [{exc.code}: {exc.detail}]") from exc


# --- relay post: the post's life from the command line (relay/lifecycle.py does the work) ------


@main.group()
def post() -> None:
    """List, show, edit, publish and delete posts (an operator's view of every user's)."""


def _post_summary(conn: Any, post_id: str, public_url: str) -> dict[str, Any]:
    from relay.web.present import delivery_json

    found = queries.load_post(conn, post_id)
    assert found is not None
    return {
        "id": found.id,
        "user": queries.user_name(conn, found.user_id),
        "title": found.title,
        "text": found.text,
        "url": f"{public_url}/p/{found.id}",
        "state": found.state.value,
        "status": found.status.value,
        "publish_at": found.publish_at.isoformat() if found.publish_at else None,
        "deleted_at": found.deleted_at.isoformat() if found.deleted_at else None,
        "private": found.private,
        "tags": found.tags,
        "created_at": found.created_at.isoformat() if found.created_at else None,
        "items": [
            {
                "id": i.id,
                "filename": i.filename,
                "kind": i.kind.value if i.kind else None,
                "status": i.status.value,
                "alt": i.alt,
                "sha256": i.original.sha256 if i.original else None,
            }
            for i in found.items
        ],
        "deliveries": [delivery_json(d) for d in found.deliveries],
    }


def _post_text(found: dict[str, Any]) -> str:
    lines = [
        f"{found['id']}  {found['state']:9} {found['status']:10} {found['title'] or '(untitled)'}",
        f"  {found['url']}",
    ]
    if found["publish_at"]:
        lines.append(f"  publishes at {found['publish_at']}")
    for item in found["items"]:
        lines.append(f"  item {item['id']} {item['filename']} {item['status']}")
    for d in found["deliveries"]:
        lines.append(f"  → {d['destination']} {d['status']} {d['remote_url'] or ''}".rstrip())
    return "\n".join(lines)


def _post_change(
    ctx: Context, post_id: str, name: str | None, change: Callable[[Any, str | None], Any]
) -> dict[str, Any]:
    """Run ``change(conn, actor)`` on POST_ID in one transaction; the post afterwards. With
    ``--user`` the post must be that user's (and the record names the user); else the record
    names the operator."""
    from relay.errors import RelayError

    public_url = ctx.settings().public_url

    def run(conn: Any) -> dict[str, Any]:
        row = queries.post_row(conn, post_id)
        user_id = _user_id(conn, name) if name else None
        if row is None or (user_id is not None and row["user_id"] != user_id):
            raise click.ClickException(f"no post {post_id}" + (f" of {name}" if name else ""))
        change(conn, user_id or "operator")
        return _post_summary(conn, post_id, public_url)

    try:
        return _in_transaction(ctx, run)
    except RelayError as exc:
        raise click.ClickException(f"{exc.message} [{exc.code}] {exc.detail}".strip()) from exc


@post.command("list")
@click.option("--user", "name", required=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def post_list(ctx: Context, name: str, limit: int, as_json: bool) -> None:
    """NAME's posts, newest first."""
    public_url = ctx.settings().public_url

    def run(conn: Any) -> list[dict[str, Any]]:
        found = queries.list_posts(conn, _user_id(conn, name), limit)
        return [_post_summary(conn, p.id, public_url) for p in found]

    found = _in_transaction(ctx, run)
    _emit(as_json, {"posts": found}, "\n".join(_post_text(p) for p in found) or "none")


@post.command("show")
@click.argument("post_id")
@click.option("--user", "name", help="Only if it is this user's post.")
@click.option("--events", "with_events", is_flag=True, help="With the post's record.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def post_show(
    ctx: Context, post_id: str, name: str | None, with_events: bool, as_json: bool
) -> None:
    """One post (and, with --events, its record: who changed what, when, through which door)."""
    from relay import lifecycle

    found = _post_change(ctx, post_id, name, lambda conn, actor: None)
    if with_events:
        found["events"] = _in_transaction(ctx, lifecycle.events, post_id)
    text = _post_text(found)
    for event in found.get("events", []):
        text += f"\n  {event['at']} {event['kind']} by {event['actor']} via {event['door']}"
    _emit(as_json, found, text)


@post.command("edit")
@click.argument("post_id")
@click.option("--user", "name", help="Only if it is this user's post.")
@click.option("--title")
@click.option("--text")
@click.option("--tags", help="Comma-separated; replaces the post's tags.")
@click.option("--private/--public", default=None)
@click.option("--alt", "alts", multiple=True, metavar="ITEM_ID=TEXT", help="Repeatable.")
@click.option("--publish-at", help="RFC 3339 with an offset; a time past publishes now.")
@click.option("--draft", is_flag=True, help="Back to a draft (a published post is retracted).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def post_edit(
    ctx: Context,
    post_id: str,
    name: str | None,
    title: str | None,
    text: str | None,
    tags: str | None,
    private: bool | None,
    alts: tuple[str, ...],
    publish_at: str | None,
    draft: bool,
    as_json: bool,
) -> None:
    """Change a post; its copies on channels follow where the channel can edit."""
    from relay import lifecycle
    from relay.errors import IntakeError
    from relay.intake.fields import rfc3339

    try:
        when = rfc3339("--publish-at", publish_at) if publish_at else None
    except IntakeError as exc:
        raise click.BadParameter(exc.detail, param_hint="--publish-at") from exc
    wanted = lifecycle.Change(
        title=title,
        text=text,
        tags=[t.strip() for t in tags.split(",") if t.strip()] if tags is not None else None,
        private=private,
        items=[(k, v or None) for k, v in _parse_options(alts).items()] if alts else None,
        draft=True if draft else None,
        publish_at=when,
        publish_at_given=when is not None,
    )
    found = _post_change(
        ctx,
        post_id,
        name,
        lambda conn, actor: lifecycle.change(conn, post_id, actor, "cli", wanted),
    )
    _emit(as_json, found, _post_text(found))


@post.command("publish")
@click.argument("post_id")
@click.option("--user", "name", help="Only if it is this user's post.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def post_publish(ctx: Context, post_id: str, name: str | None, as_json: bool) -> None:
    """Publish a draft or a scheduled post now."""
    from relay import lifecycle

    found = _post_change(
        ctx, post_id, name, lambda conn, actor: lifecycle.publish(conn, post_id, actor, "cli")
    )
    _emit(as_json, found, _post_text(found))


@post.command("delete")
@click.argument("post_id")
@click.option("--user", "name", help="Only if it is this user's post.")
@click.option("--reason", help="Kept in the post's record.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def post_delete(
    ctx: Context, post_id: str, name: str | None, reason: str | None, as_json: bool
) -> None:
    """Delete a post: its page answers 410, its media leave the store, its copies on channels
    are deleted where the channel allows. Its record stays."""
    from relay import lifecycle

    found = _post_change(
        ctx,
        post_id,
        name,
        lambda conn, actor: lifecycle.delete(conn, post_id, actor, "cli", reason),
    )
    _emit(as_json, found, f"deleted {post_id}")


@user.command("timezone")
@click.argument("name")
@click.argument("zone", required=False)
@click.pass_obj
def user_timezone(ctx: Context, name: str, zone: str | None) -> None:
    """Set (or with no ZONE, clear) NAME's time zone, an IANA name like Europe/Stockholm: the
    zone of a mailed [publish 2026-12-24 09:00]. Without one, RELAY_TIMEZONE applies."""
    from zoneinfo import ZoneInfo

    if zone:
        try:
            ZoneInfo(zone)
        except (KeyError, ValueError) as exc:
            raise click.BadParameter(f"unknown time zone {zone!r}", param_hint="ZONE") from exc
    _in_transaction(
        ctx,
        lambda conn: queries.set_user_timezone(conn, _user_id(conn, name), zone or None),
    )
    click.echo(f"{name}: {zone or 'the relay default (RELAY_TIMEZONE)'}")


@user.command("language")
@click.argument("name")
@click.argument("lang", required=False, type=click.Choice(["en", "sv"]))
@click.pass_obj
def user_language(ctx: Context, name: str, lang: str | None) -> None:
    """Set (or with no LANG, clear) NAME's language, en or sv: the language of the reply mail.
    Without one, RELAY_DEFAULT_LANGUAGE applies."""
    _in_transaction(
        ctx,
        lambda conn: queries.set_user_language(conn, _user_id(conn, name), lang or None),
    )
    click.echo(f"{name}: {lang or 'the relay default (RELAY_DEFAULT_LANGUAGE)'}")


# `relay live key …`: in its own module, registered last (it imports the helpers above).
from relay.live_cli import live  # noqa: E402

main.add_command(live)
