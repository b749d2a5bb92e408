"""Connecting a Micropub site with IndieAuth (the IndieAuth spec, 2022): the person gives their
site's address; the relay reads it for its endpoints, sends them to their authorization
endpoint (authorization code with PKCE, S256), exchanges the code at the token endpoint and
checks the ``me`` that comes back.

Discovery, as the spec says: the ``indieauth-metadata`` link (HTTP ``Link`` header first, then
``<link>`` in the HTML) names a JSON document with ``issuer``, ``authorization_endpoint`` and
``token_endpoint``; sites from before it name ``authorization_endpoint`` and ``token_endpoint``
links themselves. The ``micropub`` link names where posts go. The relay's ``client_id`` is its
public URL; the redirect URI is under it, so the server needs no extra proof of it.

``me`` check: the profile URL the token endpoint answers may differ from the one typed (a
redirect, a canonical form); it counts only when discovery from it leads to the same
authorization endpoint, so one site's server cannot speak for another site.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from aiohttp import web

from relay.context import RELAY
from relay.errors import PublishError
from relay.publish.net import Http
from relay.web.app import connect

SCOPE = "create media"
RELS = ("indieauth-metadata", "authorization_endpoint", "token_endpoint", "micropub")
MAX_PAGE = 512 * 1024
"""Bytes of the person's home page read for ``<link>`` elements: they sit in its head."""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("link", "a"):
            return
        values = dict(attrs)
        href = values.get("href")
        for rel in (values.get("rel") or "").split():
            if rel in RELS and href is not None:
                self.found.setdefault(rel, href)


def _link_header(values: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            target, _, params = part.strip().partition(";")
            target = target.strip()
            if not (target.startswith("<") and target.endswith(">")):
                continue
            for param in params.split(";"):
                name, _, rel = param.strip().partition("=")
                if name.strip().lower() == "rel":
                    for one in rel.strip().strip('"').split():
                        if one in RELS:
                            found.setdefault(one, target[1:-1])
    return found


async def discover(client: Http, site: str) -> dict[str, str]:
    """The site's final URL (``me``) and its endpoints, absolute."""
    response = await client.request("GET", site, follow=5, headers={"Accept": "text/html"})
    async with response:
        final = str(response.url)
        if response.status != 200:
            raise connect.ConnectFailed("indieauth-unreachable")
        links = _link_header(response.headers.getall("Link", []))
        body = b""
        while len(body) < MAX_PAGE and not response.content.at_eof():
            body += await response.content.read(MAX_PAGE - len(body))
    parser = _Links()
    parser.feed(body.decode("utf-8", errors="replace"))
    for rel, href in parser.found.items():
        links.setdefault(rel, href)
    found = {rel: urljoin(final, href) for rel, href in links.items()}
    found["me"] = final
    if "indieauth-metadata" in found:
        status, metadata, _ = await connect.read_json(
            client, "GET", found["indieauth-metadata"], headers={"Accept": "application/json"}
        )
        if status == 200 and isinstance(metadata, dict):
            for key in ("issuer", "authorization_endpoint", "token_endpoint"):
                if isinstance(metadata.get(key), str):
                    found[key] = metadata[key]
    for key in ("authorization_endpoint", "token_endpoint", "micropub"):
        if not found.get(key, "").startswith(("http://", "https://")):
            raise connect.ConnectFailed("indieauth-no-endpoints")
    return found


def client_id(request: web.Request) -> str:
    return request.app[RELAY].settings.public_url + "/"


async def begin(request: web.Request, site: str, state: str) -> tuple[str, dict[str, Any]]:
    base = connect.normal_site(site)
    if not urlsplit(base).path:
        base += "/"  # a profile URL has a path, at least "/"
    found = await discover(connect.http(request), base)
    query = {
        "response_type": "code",
        "client_id": client_id(request),
        "redirect_uri": connect.callback_url(request, "micropub"),
        "state": state,
        "code_challenge": connect.code_challenge(connect.code_verifier(request, state)),
        "code_challenge_method": "S256",
        "scope": SCOPE,
        "me": found["me"],
    }
    page = found["authorization_endpoint"]
    kept = {
        "me": found["me"],
        "issuer": found.get("issuer", ""),
        "authorization_endpoint": found["authorization_endpoint"],
        "token_endpoint": found["token_endpoint"],
        "micropub": found["micropub"],
    }
    return f"{page}{'&' if '?' in page else '?'}{urlencode(query)}", kept


async def complete(request: web.Request, pending: connect.Pending) -> dict[str, Any]:
    code = connect.granted_code(request)
    data = pending.data
    # The spec's mix-up defence: a server that announced an issuer names itself in ``iss``.
    if data.get("issuer") and request.query.get("iss") != data["issuer"]:
        raise connect.ConnectFailed("indieauth-wrong-me")
    client = connect.http(request)
    status, answer, _ = await connect.read_json(
        client,
        "POST",
        data["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id(request),
            "redirect_uri": connect.callback_url(request, "micropub"),
            "code_verifier": connect.code_verifier(request, pending.state),
        },
        headers={"Accept": "application/json"},
    )
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        raise PublishError("publish.unauthorized", f"token endpoint answered {status}")
    me = str(answer.get("me") or "")
    if not me:
        raise connect.ConnectFailed("indieauth-wrong-me")
    if me != data["me"]:
        again = await discover(client, me)
        if again["authorization_endpoint"] != data["authorization_endpoint"]:
            raise connect.ConnectFailed("indieauth-wrong-me")
    return {
        "url": data["micropub"],
        "token": str(answer["access_token"]),
        "secret": None,
        "config": {"me": me},
        "account": me,
    }
