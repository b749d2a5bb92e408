"""WordPress through its REST API, signed in with an Application Password (HTTP Basic
``user:application-password``; the user comes from ``--set user=NAME``).

Each image goes to ``/wp/v2/media`` as the raw body with ``Content-Disposition: attachment;
filename=…``, gets its alt text by a follow-up update of that attachment, and the post is created
on ``/wp/v2/posts`` with the text as HTML paragraphs, the images as figures, a link to the relay's
page, and the first image as ``featured_media``.

WordPress takes no idempotency key, so the delivery's key is written into names WordPress keeps
and can be asked for: the post's ``slug`` is ``relay-<key>`` and each image is uploaded as
``relay-<key>-<n>.<ext>``, whose attachment slug is ``relay-<key>-<n>``. Before creating anything
the adapter asks for that slug (``status=any``, so a draft or pending post counts too) and takes
what it finds; a retry after a lost answer lands on what the first try made.

The REST root is discovered as WordPress documents it: a HEAD (then a GET) of the site's URL,
whose ``Link: <…>; rel="https://api.w.org/"`` header names it, ``https://site/wp-json/`` with
pretty permalinks and ``https://site/?rest_route=/`` without (there ``/wp-json/`` is a 404). A
site that sends no such header gets ``/wp-json`` appended, as before; a ``--url`` that already is
a REST root is used as it is. The root is found once per adapter, that is once per delivery run.

Everything the relay sends is HTML to WordPress: the post's title and content, and the
attachment's alt text, are escaped. An Application Password usually belongs to an
administrator, whose HTML WordPress does not filter, so a mailed subject like
``<img src=x onerror=…>`` would otherwise become live script on the site.
"""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any, ClassVar, NoReturn
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from relay.errors import PublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote
from relay.publish.net import Http, raise_for_status

STATUSES = ("publish", "draft", "pending", "private")
MAX_IMAGES = 20  # a bound on one delivery's uploads, not a WordPress limit
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/avif": ".avif",
}
# Upload failures WordPress reports as 500 although retrying cannot help (type not allowed,
# quota): treated as refusals so the delivery stops and says why instead of retrying for a day.
API_REL = "https://api.w.org/"
DISCOVERY_REDIRECTS = 5
# An answer WordPress gives a visitor where a signed-in user was meant: a status such as ``any``
# that only authors may ask for. It means the credentials never counted.
VISITOR_CODES = {"rest_forbidden_status", "rest_forbidden_context", "rest_cannot_view"}
PERMANENT_CODES = {
    "rest_upload_sideload_error",
    "rest_upload_file_too_big",
    "rest_upload_limited_space",
    "rest_upload_user_quota_exceeded",
}


def given_root(url: str) -> str | None:
    """The URL itself when it already is a REST root (``…/wp-json`` or ``…?rest_route=…``)."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/wp-json"):
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/"))
    if any(key == "rest_route" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    return None


def api_root(url: str) -> str:
    """The REST root a site without a discovery header most likely has: its ``/wp-json/``."""
    return given_root(url) or url.rstrip("/") + "/wp-json/"


def route_url(root: str, route: str) -> str:
    """``route`` (``wp/v2/posts``) under ``root``: appended to a ``/wp-json/`` root, or as the
    ``rest_route`` query parameter of a plain-permalinks root (``/?rest_route=/``)."""
    parts = urlsplit(root)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "rest_route" for key, _ in query):
        query = [(k, "/" + route if k == "rest_route" else v) for k, v in query]
        return urlunsplit(parts._replace(query=urlencode(query, safe="/")))
    return root.rstrip("/") + "/" + route


def attachment_filename(slug: str, mime: str) -> str:
    """The upload's file name, made of the slug's characters only (``[a-z0-9-]``), so it goes in
    ``Content-Disposition`` without quoting questions and no user text reaches the header or
    the attachment's title (WordPress makes it from the file name)."""
    return re.sub(r"[^a-z0-9-]", "-", slug.lower()) + EXTENSIONS.get(mime, "")


def delivery_slug(key: str) -> str:
    """``relay-`` and the key in the characters a slug keeps as they are, so WordPress stores
    exactly what the adapter will ask for."""
    return "relay-" + re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def _paragraphs(text: str) -> str:
    blocks = [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]
    return "".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in block.splitlines()) + "</p>\n"
        for block in blocks
    )


def _figure(attachment: dict[str, Any], alt: str) -> str:
    details = attachment.get("media_details") or {}
    size = ""
    if details.get("width") and details.get("height"):
        size = f' width="{int(details["width"])}" height="{int(details["height"])}"'
    # wp-image-ID lets WordPress add srcset and sizes for its own resized copies
    return (
        '<figure class="wp-block-image">'
        f'<img src="{html.escape(str(attachment["source_url"]))}" alt="{html.escape(alt)}"'
        f'{size} class="wp-image-{int(attachment["id"])}"></figure>\n'
    )


def _linked_medium(media: Media) -> str:
    src = html.escape(media.url)
    if media.kind == "video":
        return f'<figure class="wp-block-video"><video controls src="{src}"></video></figure>\n'
    return f'<figure class="wp-block-audio"><audio controls src="{src}"></audio></figure>\n'


def _linked(outgoing: Outgoing) -> list[Media]:
    # Video and audio stay on the relay (WordPress sites often cap uploads at a few MB): the
    # post plays them from there.
    return [m for m in outgoing.media if m.kind in ("video", "audio")]


def content_html(outgoing: Outgoing, figures: list[str], linked: list[Media]) -> str:
    page = html.escape(outgoing.page_url)
    return (
        _paragraphs(outgoing.text)
        + "".join(figures)
        + "".join(_linked_medium(m) for m in linked)
        + f'<p><a href="{page}">{page}</a></p>\n'
    )


def _as_visitor(body: Any) -> bool:
    """Whether a ``400 rest_invalid_param`` says a parameter is only for signed-in users: the
    answer WordPress gives ``status=any`` when the credentials did not count."""
    if not isinstance(body, dict) or body.get("code") != "rest_invalid_param":
        return False
    details = (body.get("data") or {}).get("details") or {}
    return isinstance(details, dict) and any(
        isinstance(detail, dict)
        and (
            detail.get("code") in VISITOR_CODES
            or (detail.get("data") or {}).get("status") in (401, 403)
        )
        for detail in details.values()
    )


class WordPressAdapter:
    type: ClassVar[str] = "wordpress"
    accepts: ClassVar[Accepts] = Accepts(links_only=False, max_images=MAX_IMAGES)

    def __init__(self, destination: Destination, http: Http) -> None:
        user = str(destination.config.get("user") or "").strip()
        if not destination.url or not user or not destination.token:
            raise PublishError(
                "publish.rejected",
                "a wordpress destination needs --url SITE, --set user=NAME and "
                "--token APPLICATION_PASSWORD",
            )
        self.status = str(destination.config.get("status") or "publish")
        if self.status not in STATUSES:
            raise PublishError(
                "publish.rejected", f"status must be one of {', '.join(STATUSES)}: {self.status}"
            )
        if ":" in user:  # RFC 7617: the user-id of Basic auth cannot hold a colon
            raise PublishError("publish.rejected", "a WordPress user name cannot contain ':'")
        credentials = f"{user}:{destination.token}".encode()
        self.authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
        self.site = destination.url.rstrip("/")
        self.api: str | None = given_root(destination.url)
        self.http = http

    async def root(self) -> str:
        """The REST root, discovered once from the site's ``Link`` header."""
        if self.api is None:
            self.api = await self._discover() or api_root(self.site)
        return self.api

    async def _discover(self) -> str | None:
        # HEAD first, as WordPress recommends; some servers and caches answer HEAD without the
        # page's headers (or with 405), so a GET follows, read no further than its headers.
        for method in ("HEAD", "GET"):
            response = await self.http.request(
                method, self.site + "/", follow=DISCOVERY_REDIRECTS, headers={"Accept": "text/html"}
            )
            async with response:
                # rel may list several relation types, separated by spaces (RFC 8288)
                link = next(
                    (v for k, v in response.links.items() if API_REL in str(k).split()), None
                )
                final = str(response.url)
            if link is None:
                continue
            found = urljoin(final, str(link.get("url", "")))
            # The password goes wherever the root is: never in clear when the site is https.
            if urlsplit(self.site).scheme == "https" and urlsplit(found).scheme != "https":
                return None
            return found if urlsplit(found).scheme in ("http", "https") else None
        return None

    async def _call(
        self, method: str, route: str, *, ok: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> Any:
        url = route_url(await self.root(), route)
        headers = {
            "Authorization": self.authorization,
            "Accept": "application/json",
            **kwargs.pop("headers", {}),
        }
        response = await self.http.request(method, url, headers=headers, **kwargs)
        async with response:
            text = await response.text(errors="replace")
            location = response.headers.get("Location")
            status = response.status
        if status in ok:
            try:
                return json.loads(text)
            except ValueError:
                # A 200 that is not JSON: the URL is a web page, not a WordPress REST API.
                raise PublishError(
                    "publish.rejected", f"{url}: not a WordPress REST API answer", text[:200]
                ) from None
        self._raise(status, text, url, location)

    def _raise(self, status: int, text: str, url: str, location: str | None) -> NoReturn:
        if 300 <= status < 400:
            # Redirects are not followed (net.py); say where to point the destination instead.
            target = urljoin(url, location or "")
            raise PublishError("publish.rejected", f"{url}: {status}", f"redirected to {target}")
        remote = text
        code = ""
        body: Any = None
        try:
            body = json.loads(text)
            if isinstance(body, dict) and "code" in body:
                code = str(body["code"])
                remote = f"{code}: {body.get('message', '')}"
        except ValueError:
            pass
        if code in PERMANENT_CODES:
            raise PublishError("publish.rejected", f"{url}: {status}", remote)
        if _as_visitor(body):
            # WordPress served the request as a visitor's: the password did not count.
            raise PublishError(
                "publish.unauthorized",
                f"{url}: {status}",
                f"{remote} (WordPress did not take the credentials: a wrong application "
                "password, Application Passwords unavailable on a site without HTTPS, or a "
                "web server that drops the Authorization header)",
            )
        raise_for_status(status, remote, url)
        raise PublishError("publish.rejected", f"{url}: unexpected {status}", remote)

    async def _by_slug(self, route: str, slug: str, **params: str) -> dict[str, Any] | None:
        found = await self._call(
            "GET", route, ok=(200,), params={"slug": slug, "context": "edit", **params}
        )
        if not isinstance(found, list):
            raise PublishError(
                "publish.rejected", f"{route_url(await self.root(), route)}: not a list"
            )
        return next((entry for entry in found if entry.get("slug") == slug), None)

    async def _upload(self, media: Media, slug: str) -> dict[str, Any]:
        existing = await self._by_slug("wp/v2/media", slug)
        if existing is not None:
            return existing
        filename = attachment_filename(slug, media.mime)
        return await self._call(
            "POST",
            "wp/v2/media",
            ok=(201,),
            # The length is known, so no chunked body: PHP behind some servers drops those.
            data=media.read(),
            headers={
                "Content-Type": media.mime,
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Content-Length": str(media.bytes),
            },
        )

    async def _figures(self, outgoing: Outgoing, slug: str) -> tuple[list[str], int | None]:
        """The post's images as figures, uploaded once (found again by their slugs, which come
        from the delivery's key) with their alt text set, and the first one's id (featured)."""
        figures = []
        featured = None
        images = [m for m in outgoing.media if m.kind == "image"][:MAX_IMAGES]
        for n, media in enumerate(images):
            attachment = await self._upload(media, f"{slug}-{n}")
            # Items rarely carry alt text yet; the post's title describes a photo post better
            # than nothing.
            alt = media.alt or outgoing.title
            # Escaped like everything else: WordPress stores alt text with entities itself
            # (sanitize_text_field) and its escaping functions do not encode them twice.
            if alt and attachment.get("alt_text") != html.escape(alt):
                attachment = await self._call(
                    "POST",
                    f"wp/v2/media/{int(attachment['id'])}",
                    json={"alt_text": html.escape(alt)},
                )
            figures.append(_figure(attachment, alt))
            featured = featured or int(attachment["id"])
        return figures, featured

    async def publish(self, outgoing: Outgoing) -> Published:
        slug = delivery_slug(outgoing.idempotency_key)
        existing = await self._by_slug("wp/v2/posts", slug, status="any")
        if existing is not None:
            return Published(remote_url=existing.get("link"), remote_id=str(existing["id"]))

        figures, featured = await self._figures(outgoing, slug)
        linked = _linked(outgoing)

        body: dict[str, Any] = {
            # WordPress shows the title as HTML (unfiltered for administrators)
            "title": html.escape(outgoing.title),
            "content": content_html(outgoing, figures, linked),
            "status": self.status,
            "slug": slug,
        }
        if featured is not None:
            body["featured_media"] = featured
        created = await self._call("POST", "wp/v2/posts", ok=(201,), json=body)
        return Published(remote_url=created.get("link"), remote_id=str(created["id"]))

    # --- edit and trash (relay.publish.Editor, Retractor) -------------------------------------

    def _post_route(self, remote: Remote) -> str:
        if not remote.remote_id or not remote.remote_id.isdigit():
            raise PublishError("publish.rejected", f"no post id kept for {remote.delivery_id}")
        return f"wp/v2/posts/{int(remote.remote_id)}"

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        """``POST /wp/v2/posts/<id>`` with the new title and content, escaped as on publish. The
        images are the ones the publish uploaded (found again by their slugs, which come from
        the delivery's key), their alt text updated where it changed. Setting the same fields
        twice changes nothing, so a repeat after a lost answer is safe."""
        slug = delivery_slug(remote.delivery_id)
        figures, _ = await self._figures(outgoing, slug)
        linked = _linked(outgoing)
        updated = await self._call(
            "POST",
            self._post_route(remote),
            ok=(200,),
            json={
                "title": html.escape(outgoing.title),
                "content": content_html(outgoing, figures, linked),
            },
        )
        return Published(
            remote_url=updated.get("link") or remote.remote_url, remote_id=str(updated["id"])
        )

    async def retract(self, remote: Remote, post_id: str) -> None:
        """Trash the post (``DELETE`` without ``force``: the site's owner can still restore it).
        ``410 rest_already_trashed`` (an earlier try trashed it) and ``404 rest_post_invalid_id``
        (someone deleted it for good) both mean it is down: success."""
        route = self._post_route(remote)
        url = route_url(await self.root(), route)
        response = await self.http.request(
            "DELETE",
            url,
            headers={"Authorization": self.authorization, "Accept": "application/json"},
        )
        async with response:
            text = await response.text(errors="replace")
            status, location = response.status, response.headers.get("Location")
        if status == 200:
            return
        try:
            code = str(json.loads(text).get("code", ""))
        except (ValueError, AttributeError):
            code = ""
        if (status, code) in ((410, "rest_already_trashed"), (404, "rest_post_invalid_id")):
            return
        self._raise(status, text, url, location)

    async def check(self) -> str:
        me = await self._call("GET", "wp/v2/users/me", ok=(200,), params={"context": "edit"})
        said = f"{self.site}: signed in as {me.get('name') or me.get('slug')} (id {me.get('id')})"
        capabilities = me.get("capabilities") or {}
        missing = [c for c in ("upload_files", "publish_posts") if not capabilities.get(c)]
        if capabilities and missing:  # capabilities absent: an old WordPress, nothing to judge
            said += f"; this user lacks {', '.join(missing)}"
        return said


ADAPTER = WordPressAdapter
