"""``relay live``: stream keys for live broadcasting (relay/intake/live.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from relay.config import Settings

if TYPE_CHECKING:
    from relay.cli import Context


def key_urls(settings: Settings, key: str) -> dict[str, Any]:
    """What a broadcasting app is given: the full push URL (key included, as Larix takes it),
    and the server and key apart (as OBS and Streamlabs take them)."""
    from relay.intake import srt

    server = settings.rtmp_url
    return {
        "key": key,
        "server": server,
        "rtmp_url": f"{server}/{key}",
        # None with RELAY_SRT_LISTEN=off, or where libsrt is missing (the door is off then).
        "srt_url": settings.srt_url(key) if srt.available() else None,
    }


@click.group()
def live() -> None:
    """Live broadcasting: stream keys."""


@live.group()
def key() -> None:
    """Stream keys: each lets one user go live (RTMP or SRT)."""


@key.command("add")
@click.option("--user", "name", required=True)
@click.option("--title", default="", help="The title of the posts its broadcasts make.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def key_add(ctx: Context, name: str, title: str, as_json: bool) -> None:
    """Give a user a stream key (shown once; only its hash is kept)."""
    from relay.cli import _emit, _in_transaction, _user_id
    from relay.db import live as db_live

    _, value = _in_transaction(ctx, lambda conn: db_live.add_key(conn, _user_id(conn, name), title))
    urls = key_urls(ctx.settings(), value)
    _emit(
        as_json,
        urls,
        f"server: {urls['server']}\nkey:    {value}   (shown once; keep it)\n"
        f"url:    {urls['rtmp_url']}" + (f"\nsrt:    {urls['srt_url']}" if urls["srt_url"] else ""),
    )


@key.command("list")
@click.option("--user", "name", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def key_list(ctx: Context, name: str, as_json: bool) -> None:
    """A user's stream keys (their first characters: the keys themselves are not kept)."""
    from relay.cli import _emit, _in_transaction, _user_id
    from relay.db import live as db_live

    rows = _in_transaction(ctx, lambda conn: db_live.keys_of(conn, _user_id(conn, name)))
    found = [
        {"id": r["id"], "hint": r["hint"], "title": r["title"], "created_at": r["created_at"]}
        for r in rows
    ]
    text = "\n".join(f"{k['id']}  {k['hint']}…  {k['title']}" for k in found) or "no stream keys"
    _emit(as_json, {"keys": found}, text)


@key.command("revoke")
@click.argument("value")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def key_revoke(ctx: Context, value: str, as_json: bool) -> None:
    """Revoke a stream key: a sender using it is refused from now on."""
    from relay.cli import _emit, _in_transaction
    from relay.db import live as db_live

    if not _in_transaction(ctx, db_live.revoke_key, value.strip()):
        raise click.ClickException("no such live stream key")
    _emit(as_json, {"revoked": True}, "revoked")
