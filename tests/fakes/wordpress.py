"""A WordPress REST API (``/wp-json/wp/v2``) on 127.0.0.1, as strict as WordPress 6.x.

What it enforces, with WordPress's own error codes and messages:
- Application Passwords: HTTP Basic ``user:password`` on every call that needs a user; the
  password is compared with its spaces and punctuation removed, as WordPress does (it shows them
  in groups of four). A wrong one is ``401 incorrect_password``, an unknown user
  ``401 invalid_username``, none at all ``401 rest_cannot_create`` / ``rest_not_logged_in``.
- ``POST /wp/v2/media``: the raw file as the body with ``Content-Type`` and
  ``Content-Disposition`` carrying a filename (``rest_upload_no_content_type``,
  ``rest_upload_no_content_disposition``, ``rest_upload_invalid_disposition``,
  ``rest_upload_no_data``); WordPress also takes a multipart ``file`` part, which the adapter
  does not use and this fake refuses. The bytes must really be of the declared image type
  (WordPress checks with finfo: ``500 rest_upload_sideload_error``). The attachment's slug comes
  from the file name, made unique with ``-2``… like ``wp_unique_post_slug``.
  ``POST /wp/v2/media/<id>`` updates ``alt_text``.
- ``POST /wp/v2/posts``: a JSON body (``rest_invalid_json``), a known ``status``
  (``rest_invalid_param``), an existing attachment as ``featured_media``
  (``rest_invalid_featured_media``), and not all of title and content empty (``empty_content``).
  A published post's slug is made unique with ``-2``…; a draft keeps the slug it was given.
- ``GET /wp/v2/posts?slug=…&status=any&context=edit``: statuses other than ``publish`` and the
  edit context need a signed-in user (``400 rest_invalid_param`` / ``401
  rest_forbidden_context``); ``any`` leaves out trash, as WordPress does.

Discovery and permalinks, as WordPress documents them: the site's front page (``GET``/``HEAD /``)
sends ``Link: <…>; rel="https://api.w.org/"`` (among its other Link headers) naming the REST root:
``/wp-json/`` with pretty permalinks (the default here), ``/?rest_route=/`` with
``permalinks="plain"``, where ``/wp-json/…`` is the theme's 404 page and every route goes in the
``rest_route`` query parameter. An unknown route is ``404 rest_no_route``.

Credentials that do not count: ``application_passwords=False`` serves every request as a
visitor's, as WordPress does when Application Passwords are unavailable (a site without HTTPS)
or the web server drops the ``Authorization`` header. ``status=any`` then gets the real
``400 rest_invalid_param`` whose ``data.details.status`` is ``rest_forbidden_status`` (401).

The application-password authorization flow, as WordPress 6.x serves it: ``GET
/wp-admin/authorize-application.php`` with ``app_name``, ``app_id`` (a UUID or nothing),
``success_url`` and ``reject_url`` (not ``http://`` unless ``environment="local"``, as
``wp_is_authorize_application_redirect_url_valid`` says; the default is WordPress's
``production``) shows the signed-in user a form (approve or reject); approving makes an
application password (24 letters and digits; it then works on every route like ``password``)
and redirects to ``success_url`` with ``site_url``, ``user_login`` and ``password``; rejecting
redirects to ``reject_url`` with ``success=false``. Its scripting route is ``authorize``.

Scripting: ``fake.script("posts.create", 503)`` answers the next create with a 503 without doing
it; ``fake.script("posts.create", LOST)`` creates the post and then answers 502, the way a proxy
reports a response it lost. Routes: ``posts.create``, ``posts.list``, ``media.create``,
``media.update``, ``media.list``, ``users.me``.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp.multipart import parse_content_disposition

from tests.fakes import LOST, REST_ROUTE, Answer, Recorded, ScriptedFake, plain, unique_slug

AUTHORIZE_FIELDS = ("app_name", "app_id", "success_url", "reject_url")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
PASSWORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
STATUSES = ("publish", "future", "draft", "pending", "private")
# What WordPress's finfo check would see, by declared type.
MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


@dataclass
class FakeWordPress(ScriptedFake):
    user: str = "anna"
    password: str = "abcd EFGH 1234 ijkl MNOP 5678"
    posts: dict[int, dict[str, Any]] = field(default_factory=dict)
    media: dict[int, dict[str, Any]] = field(default_factory=dict)
    permalinks: str = "pretty"
    application_passwords: bool = True
    front_redirect: bool = False
    """True: ``/`` answers ``301`` to ``/home/``, where the front page is, as sites moved to
    another address or behind an https redirect do."""
    discoveries: list[str] = field(default_factory=list)
    """The methods of the front-page requests (discovery), kept apart from ``requests``."""
    _next_id: int = 100
    environment: str = "production"
    """``wp_get_environment_type()``: ``local`` lets the authorization flow return to http."""
    app_passwords: list[dict[str, str]] = field(default_factory=list)
    """Made by the authorization flow: ``name``, ``app_id``, ``password``."""
    _nonces: set[str] = field(default_factory=set)

    def created(self, route: str) -> list[Recorded]:
        method, rest_route = {
            "posts.create": ("POST", "/wp/v2/posts"),
            "media.create": ("POST", "/wp/v2/media"),
        }[route]
        return [r for r in self.requests if (r.method, r.route) == (method, rest_route)]

    @property
    def api_root(self) -> str:
        return f"{self.url}/?rest_route=/" if self.permalinks == "plain" else f"{self.url}/wp-json/"

    # --- helpers --------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _all_slugs(self) -> set[str]:
        return {p["slug"] for p in self.posts.values()} | {m["slug"] for m in self.media.values()}

    def _signed_in(self, request: web.Request) -> bool:
        """True for the right user and password, False for none; a wrong one raises 401."""
        header = request.headers.get("Authorization", "")
        if not header or not self.application_passwords:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            raise _error(401, "incorrect_password", "Malformed Basic credentials.") from None
        if user != self.user:
            raise _error(
                401, "invalid_username", "Unknown username. Check again or try your email address."
            )
        given = re.sub(r"[^a-z\d]", "", password, flags=re.I)
        known = [self.password, *(p["password"] for p in self.app_passwords)]
        if given not in [re.sub(r"[^a-z\d]", "", k, flags=re.I) for k in known]:
            raise _error(
                401,
                "incorrect_password",
                "The provided password is an invalid application password.",
            )
        return True

    def _attachment(self, attachment: dict[str, Any], edit: bool) -> dict[str, Any]:
        shown = dict(attachment)
        if not edit:
            shown["title"] = {"rendered": attachment["title"]["raw"]}
        return shown

    def _post_json(self, post: dict[str, Any], edit: bool) -> dict[str, Any]:
        shown = json.loads(json.dumps(post))
        if not edit:
            for key in ("title", "content"):
                shown[key].pop("raw", None)
        return shown

    # --- routes ---------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": "Fake WordPress",
                "url": self.url,
                "namespaces": ["wp/v2"],
                "authentication": {
                    "application-passwords": {
                        "endpoints": {
                            "authorization": f"{self.url}/wp-admin/authorize-application.php"
                        }
                    }
                },
            }
        )

    async def users_me(self, request: web.Request) -> web.Response:
        await self._record(request, "users.me")
        if not self._signed_in(request):
            raise _error(401, "rest_not_logged_in", "You are not currently logged in.")
        me: dict[str, Any] = {"id": 1, "name": self.user.title(), "slug": self.user}
        if request.query.get("context") == "edit":
            me.update(
                username=self.user,
                roles=["author"],
                capabilities={"upload_files": True, "publish_posts": True, "edit_posts": True},
            )
        return web.json_response(me)

    async def media_create(self, request: web.Request) -> web.Response:
        action = await self._record(request, "media.create")
        if not self._signed_in(request):
            raise _error(401, "rest_cannot_create", "Sorry, you are not allowed to upload media.")
        body = self.requests[-1].body
        content_type = request.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            # WordPress also takes a multipart ``file`` part; the adapter sends raw bodies.
            raise _error(400, "rest_upload_no_data", "This fake takes raw uploads only.")
        if not content_type:
            raise _error(400, "rest_upload_no_content_type", "No Content-Type supplied.")
        disposition = request.headers.get("Content-Disposition")
        if not disposition:
            raise _error(
                400, "rest_upload_no_content_disposition", "No Content-Disposition supplied."
            )
        _, params = parse_content_disposition(disposition)
        filename = params.get("filename")
        if not filename:
            raise _error(
                400,
                "rest_upload_invalid_disposition",
                "Invalid Content-Disposition supplied. Content-Disposition needs to be formatted "
                'as `attachment; filename="image.png"` or similar.',
            )
        if not body:
            raise _error(400, "rest_upload_no_data", "No data supplied.")
        mime = content_type.split(";")[0].strip()
        if mime not in MAGIC or not body.startswith(MAGIC[mime]):
            raise _error(
                500,
                "rest_upload_sideload_error",
                "Sorry, you are not allowed to upload this file type.",
            )
        stem = filename.rsplit(".", 1)[0]
        slug = unique_slug(sanitize_title(stem), self._all_slugs())
        now = datetime.now(UTC)
        path = f"/wp-content/uploads/{now:%Y/%m}/{filename}"
        self.files[path] = (mime, body)
        attachment_id = self._new_id()
        attachment = {
            "id": attachment_id,
            "date_gmt": now.strftime("%Y-%m-%dT%H:%M:%S"),
            "slug": slug,
            "status": "inherit",
            "type": "attachment",
            "link": f"{self.url}/{slug}/",
            "title": {"raw": stem, "rendered": stem},
            "author": 1,
            "alt_text": "",
            "caption": {"raw": "", "rendered": ""},
            "media_type": "image",
            "mime_type": mime,
            "media_details": {
                "filesize": len(body),
                "file": path.removeprefix("/wp-content/uploads/"),
            },
            "source_url": f"{self.url}{path}",
        }
        size = _jpeg_size(body) if mime == "image/jpeg" else None
        if size:
            attachment["media_details"].update(width=size[0], height=size[1])
        self.media[attachment_id] = attachment
        if action == LOST:
            raise plain(502)
        return web.json_response(
            attachment,
            status=201,
            headers={"Location": f"{self.url}/wp-json/wp/v2/media/{attachment_id}"},
        )

    async def media_update(self, request: web.Request) -> web.Response:
        await self._record(request, "media.update")
        if not self._signed_in(request):
            raise _error(401, "rest_cannot_edit", "Sorry, you are not allowed to edit this post.")
        attachment = self.media.get(int(request[REST_ARGS]["id"]))
        if attachment is None:
            raise _error(404, "rest_post_invalid_id", "Invalid post ID.")
        fields = _json_body(self.requests[-1])
        if "alt_text" in fields:
            if not isinstance(fields["alt_text"], str):
                raise _error(400, "rest_invalid_param", "Invalid parameter(s): alt_text")
            attachment["alt_text"] = fields["alt_text"]
        return web.json_response(attachment)

    async def media_list(self, request: web.Request) -> web.Response:
        await self._record(request, "media.list")
        edit = request.query.get("context") == "edit"
        if edit and not self._signed_in(request):
            raise _forbidden_context()
        slugs = _slugs(request)
        found = [
            self._attachment(m, edit)
            for m in sorted(self.media.values(), key=lambda m: -m["id"])
            if not slugs or m["slug"] in slugs
        ]
        return web.json_response(found, headers={"X-WP-Total": str(len(found))})

    async def posts_list(self, request: web.Request) -> web.Response:
        await self._record(request, "posts.list")
        signed_in = self._signed_in(request)
        statuses = [s for s in request.query.get("status", "publish").split(",") if s]
        for status in statuses:
            if status not in (*STATUSES, "any", "trash"):
                raise _error(400, "rest_invalid_param", "Invalid parameter(s): status")
            if status != "publish" and not signed_in:
                # rest_authorization_required_code(): 401 for a visitor
                raise _invalid_status("rest_forbidden_status", "Status is forbidden.", 401)
        edit = request.query.get("context") == "edit"
        if edit and not signed_in:
            raise _forbidden_context()
        wanted = set(STATUSES) if "any" in statuses else set(statuses)
        slugs = _slugs(request)
        found = [
            self._post_json(p, edit)
            for p in sorted(self.posts.values(), key=lambda p: -p["id"])
            if p["status"] in wanted and (not slugs or p["slug"] in slugs)
        ]
        return web.json_response(found, headers={"X-WP-Total": str(len(found))})

    async def posts_create(self, request: web.Request) -> web.Response:
        action = await self._record(request, "posts.create")
        if not self._signed_in(request):
            raise _error(
                401,
                "rest_cannot_create",
                "Sorry, you are not allowed to create posts as this user.",
            )
        if request.content_type != "application/json":
            raise _error(400, "rest_invalid_json", "This fake takes JSON bodies only.")
        fields = _json_body(self.requests[-1])
        status = fields.get("status", "draft")
        if status not in STATUSES:
            raise _invalid_status(
                "rest_not_in_enum", "status is not one of publish, future, draft, pending, private."
            )
        title = _raw(fields.get("title", ""))
        content = _raw(fields.get("content", ""))
        if not title.strip() and not content.strip():
            raise _error(400, "empty_content", "Content, title, and excerpt are empty.")
        featured = fields.get("featured_media", 0)
        if featured and (not isinstance(featured, int) or featured not in self.media):
            raise _error(400, "rest_invalid_featured_media", "Invalid featured media ID.")
        slug = sanitize_title(str(fields.get("slug") or title))
        if status not in ("draft", "pending"):
            slug = unique_slug(slug, {p["slug"] for p in self.posts.values()})
        post_id = self._new_id()
        now = datetime.now(UTC)
        link = (
            f"{self.url}/{now:%Y/%m/%d}/{slug}/"
            if status == "publish"
            else f"{self.url}/?p={post_id}"
        )
        post = {
            "id": post_id,
            "date_gmt": now.strftime("%Y-%m-%dT%H:%M:%S"),
            "guid": {"rendered": f"{self.url}/?p={post_id}"},
            "slug": slug,
            "status": status,
            "type": "post",
            "link": link,
            "title": {"raw": title, "rendered": title},
            "content": {"raw": content, "rendered": content, "protected": False},
            "author": 1,
            "featured_media": featured or 0,
            "format": "standard",
        }
        self.posts[post_id] = post
        if action == LOST:
            raise plain(502)
        return web.json_response(
            self._post_json(post, True),
            status=201,
            headers={"Location": f"{self.url}/wp-json/wp/v2/posts/{post_id}"},
        )

    async def posts_update(self, request: web.Request) -> web.Response:
        """``WP_REST_Posts_Controller::update_item``: only the fields sent change."""
        action = await self._record(request, "posts.update")
        post = self.posts.get(int(request[REST_ARGS]["id"]))
        if post is None:
            raise _error(404, "rest_post_invalid_id", "Invalid post ID.")
        if not self._signed_in(request):
            raise _error(401, "rest_cannot_edit", "Sorry, you are not allowed to edit this post.")
        if request.content_type != "application/json":
            raise _error(400, "rest_invalid_json", "This fake takes JSON bodies only.")
        fields = _json_body(self.requests[-1])
        if "status" in fields and fields["status"] not in STATUSES:
            raise _invalid_status(
                "rest_not_in_enum", "status is not one of publish, future, draft, pending, private."
            )
        changed = False
        for key in ("title", "content"):
            if key in fields:
                value = _raw(fields[key])
                changed = changed or post[key]["raw"] != value
                post[key].update(raw=value, rendered=value)
        if changed:  # WordPress saves a revision only when the content differs
            post["revisions"] = post.get("revisions", 0) + 1
        if "status" in fields:
            post["status"] = fields["status"]
        if action == LOST:
            raise plain(502)
        return web.json_response(self._post_json(post, True))

    async def posts_delete(self, request: web.Request) -> web.Response:
        """``delete_item``: without ``force`` the post goes to the trash; trashing it again is
        ``410 rest_already_trashed``; ``force=true`` deletes it for good."""
        action = await self._record(request, "posts.delete")
        post = self.posts.get(int(request[REST_ARGS]["id"]))
        if post is None:
            raise _error(404, "rest_post_invalid_id", "Invalid post ID.")
        if not self._signed_in(request):
            raise _error(
                401, "rest_cannot_delete", "Sorry, you are not allowed to delete this post."
            )
        if request.query.get("force") in ("true", "1"):
            del self.posts[post["id"]]
            shown = {"deleted": True, "previous": self._post_json(post, True)}
        else:
            if post["status"] == "trash":
                raise _error(410, "rest_already_trashed", "The post has already been deleted.")
            post["status"] = "trash"
            shown = self._post_json(post, True)
        if action == LOST:
            raise plain(502)
        return web.json_response(shown)

    async def front_page(self, request: web.Request) -> web.StreamResponse:
        """The site's home page, or (plain permalinks) any route given as ``?rest_route=``."""
        if self.permalinks == "plain" and "rest_route" in request.query:
            return await self._dispatch(request, request.query["rest_route"])
        if self.front_redirect and request.path == "/":
            raise Answer(web.Response(status=301, headers={"Location": f"{self.url}/home/"}))
        self.discoveries.append(request.method)
        response = web.Response(
            text="<!doctype html><title>Fake WordPress</title><p>Hello world!</p>",
            content_type="text/html",
        )
        # WordPress sends each as a header of its own (rest_output_link_header and friends)
        response.headers.add("Link", f'<{self.api_root}>; rel="https://api.w.org/"')
        response.headers.add(
            "Link",
            f"<{self.api_root.rstrip('/')}"
            + ("/wp/v2/pages/2" if self.permalinks == "pretty" else "wp/v2/pages/2")
            + '>; rel="alternate"; title="JSON"; type="application/json"',
        )
        response.headers.add("Link", f"<{self.url}/>; rel=shortlink")
        return response

    async def pretty(self, request: web.Request) -> web.StreamResponse:
        if self.permalinks != "pretty":
            raise _not_found_page()
        return await self._dispatch(request, request.match_info["route"] or "/")

    async def _dispatch(self, request: web.Request, rest_route: str) -> web.StreamResponse:
        handlers = {
            "index": self.index,
            "users.me": self.users_me,
            "media.create": self.media_create,
            "media.list": self.media_list,
            "media.update": self.media_update,
            "posts.list": self.posts_list,
            "posts.create": self.posts_create,
            "posts.update": self.posts_update,
            "posts.delete": self.posts_delete,
        }
        for method, pattern, name in REST_ROUTES:
            match = re.fullmatch(pattern, rest_route)
            if match and request.method in (method, "HEAD" if method == "GET" else method):
                request[REST_ROUTE] = rest_route
                request[REST_ARGS] = match.groupdict()
                return await handlers[name](request)
        raise _error(
            404, "rest_no_route", "No route was found matching the URL and request method."
        )

    # --- the application-password authorization flow (wp-admin/authorize-application.php) ----

    def _authorize_error(self, message: str) -> Answer:
        page = f"<!doctype html><title>WordPress &rsaquo; Error</title><p>Error: {message}</p>"
        return Answer(web.Response(text=page, status=400, content_type="text/html"))

    def _redirect_ok(self, url: str) -> bool:
        scheme = urlsplit(url).scheme.lower()
        if not scheme or scheme in ("javascript", "data"):
            return False
        return scheme != "http" or self.environment == "local"

    def _authorize_request(self, params: Any) -> dict[str, str]:
        """What ``wp_is_authorize_application_password_request_valid`` accepts."""
        found = {k: str(params.get(k, "")) for k in AUTHORIZE_FIELDS}
        for key in ("success_url", "reject_url"):
            if found[key] and not self._redirect_ok(found[key]):
                raise self._authorize_error("The URL must be served over a secure connection.")
        if found["app_id"] and not UUID.fullmatch(found["app_id"]):
            raise self._authorize_error("The application ID must be a UUID.")
        return found

    async def authorize_page(self, request: web.Request) -> web.Response:
        await self._record(request, "authorize")
        if not self.application_passwords:
            raise self._authorize_error("Application passwords are not available.")
        found = self._authorize_request(request.query)
        nonce = f"nonce-{len(self.app_passwords)}-{self._new_id()}"
        self._nonces.add(nonce)
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in found.items()
        )
        page = f"""<!doctype html><html lang="en"><title>Authorize Application</title>
<main><h1>Authorize Application</h1>
<p>Would you like to give {html.escape(found["app_name"] or "this application")} access to your
account, {html.escape(self.user)}?</p>
<form method="post" action="/wp-admin/authorize-application.php">
<input type="hidden" name="action" value="authorize_application_password">
<input type="hidden" name="_wpnonce" value="{nonce}">{hidden}
<label for="app_name">New Application Password Name</label>
<input id="app_name" name="app_name" value="{html.escape(found["app_name"])}" required>
<button type="submit" name="approve" value="1">Yes, I approve of this connection</button>
<button type="submit" name="reject" value="1">No, I do not approve of this connection</button>
</form></main></html>"""
        return web.Response(text=page, content_type="text/html")

    async def authorize(self, request: web.Request) -> web.Response:
        await self._record(request, "authorize")
        form = await request.post()
        nonce = str(form.get("_wpnonce", ""))
        if form.get("action") != "authorize_application_password" or nonce not in self._nonces:
            raise self._authorize_error("The link you followed has expired.")
        self._nonces.discard(nonce)
        found = self._authorize_request(form)
        if form.get("reject"):
            target = found["reject_url"] or f"{self.url}/wp-admin/"
            sep = "&" if "?" in target else "?"
            raise web.HTTPFound(target + sep + urlencode({"success": "false"}))
        if not found["app_name"]:
            raise self._authorize_error("An application name is required.")
        password = "".join(secrets.choice(PASSWORD_CHARS) for _ in range(24))
        self.app_passwords.append(
            {"name": found["app_name"], "app_id": found["app_id"], "password": password}
        )
        if not found["success_url"]:
            page = f"<p>Your new password for {html.escape(found['app_name'])} is: {password}</p>"
            return web.Response(text=page, content_type="text/html")
        target = found["success_url"]
        sep = "&" if "?" in target else "?"
        query = {"site_url": self.url, "user_login": self.user, "password": password}
        raise web.HTTPFound(target + sep + urlencode(query))

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/", self.front_page)
        app.router.add_route("*", "/home/", self.front_page)
        app.router.add_route("*", "/wp-json{route:/?.*}", self.pretty)
        app.router.add_get("/wp-content/uploads/{path:.+}", self.stored_file)
        app.router.add_get("/wp-admin/authorize-application.php", self.authorize_page)
        app.router.add_post("/wp-admin/authorize-application.php", self.authorize)


REST_ARGS = web.RequestKey("rest_args", dict)
REST_ROUTES = [
    ("GET", r"/?", "index"),
    ("GET", r"/wp/v2/users/me", "users.me"),
    ("POST", r"/wp/v2/media", "media.create"),
    ("GET", r"/wp/v2/media", "media.list"),
    ("POST", r"/wp/v2/media/(?P<id>\d+)", "media.update"),
    ("GET", r"/wp/v2/posts", "posts.list"),
    ("POST", r"/wp/v2/posts", "posts.create"),
    ("POST", r"/wp/v2/posts/(?P<id>\d+)", "posts.update"),
    ("PUT", r"/wp/v2/posts/(?P<id>\d+)", "posts.update"),
    ("PATCH", r"/wp/v2/posts/(?P<id>\d+)", "posts.update"),
    ("DELETE", r"/wp/v2/posts/(?P<id>\d+)", "posts.delete"),
]


def _not_found_page() -> Answer:
    """What a plain-permalinks site serves for ``/wp-json/…``: its theme's 404 page."""
    return Answer(
        web.Response(
            text="<!doctype html><title>Page not found</title>",
            status=404,
            content_type="text/html",
        )
    )


def _error(status: int, code: str, message: str, **data: Any) -> Answer:
    body = {"code": code, "message": message, "data": {"status": status, **data}}
    return Answer(web.json_response(body, status=status))


def _invalid_status(code: str, message: str, status: int = 400) -> Answer:
    """A ``status`` WordPress will not take, as ``WP_REST_Request::sanitize_params`` reports it:
    the message in ``data.params``, the error itself (with its own status) in ``data.details``."""
    return _error(
        400,
        "rest_invalid_param",
        "Invalid parameter(s): status",
        params={"status": message},
        details={"status": {"code": code, "message": message, "data": {"status": status}}},
    )


def _forbidden_context() -> Answer:
    """``context=edit`` without a signed-in user."""
    return _error(
        401, "rest_forbidden_context", "Sorry, you are not allowed to edit posts in this post type."
    )


def sanitize_title(text: str) -> str:
    """WordPress's ``sanitize_title_with_dashes`` for ASCII: underscores stay, the rest of the
    punctuation goes, spaces become dashes."""
    slug = re.sub(r"<[^>]*>", "", text).lower()
    slug = re.sub(r"[^%a-z0-9 _-]", "", slug)
    slug = re.sub(r"\s+", "-", slug)
    return re.sub(r"-+", "-", slug).strip("-")


def _json_body(seen: Recorded) -> dict[str, Any]:
    try:
        fields = json.loads(seen.body or b"{}")
    except ValueError:
        raise _error(400, "rest_invalid_json", "Invalid JSON body passed.") from None
    if not isinstance(fields, dict):
        raise _error(400, "rest_invalid_json", "Invalid JSON body passed.")
    return fields


def _raw(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("raw", "")
    if not isinstance(value, str):
        raise _error(400, "rest_invalid_param", "Invalid parameter(s): title, content")
    return value


def _slugs(request: web.Request) -> set[str]:
    return {s for s in request.query.get("slug", "").split(",") if s}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None


def fake_wordpress(**settings: Any) -> AbstractContextManager[FakeWordPress]:
    return FakeWordPress(**settings).running()
