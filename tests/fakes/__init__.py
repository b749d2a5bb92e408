"""Local stand-ins for the networks the relay posts to, each speaking its documented API strictly
on 127.0.0.1 (an aiohttp app on its own event loop in a thread, run by ``serve``), so that a real
``relay serve`` can deliver to them.

Two ways of scripting a fake to misbehave on a named route:

- ``FakeService`` (Mastodon, Bluesky): answer a status once without doing anything (``fail``), or
  do the work and then drop the connection before answering (``lose``), as when a proxy times out
  after the far side already posted.
- ``ScriptedFake`` (WordPress, Micropub): ``script(route, 503)`` answers a plain 503 page without
  doing anything; ``script(route, LOST)`` does the work, then answers 502, the way a proxy
  reports a response it lost; ``script(route, Refuse(400, body))`` answers the service's own JSON
  error without doing anything (a refusal, as the real service words it).
"""

from __future__ import annotations

import asyncio
import html
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOST = "lost"
# The REST route of a request whose route is not its path (WordPress's ``?rest_route=``).
REST_ROUTE = web.RequestKey("rest_route", str)


@contextmanager
def serve(app: web.Application, name: str = "fake") -> Iterator[str]:
    """Run an aiohttp app on 127.0.0.1 on an event loop in a thread of its own; yields its base
    URL. A failure to start is raised here."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock).start())
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    ready.wait(10)
    if failure:
        sock.close()
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@dataclass
class Seen:
    """One request as it arrived: what a test asserts on besides the fake's state."""

    route: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Fault:
    status: int | None = None
    body: Any = None
    lose: bool = False


@dataclass
class FakeService:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    _faults: dict[str, list[Fault]] = field(default_factory=dict)
    _running: ExitStack = field(default_factory=ExitStack)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    # Scripting -------------------------------------------------------------------------------

    def fail(self, route: str, status: int, body: Any = None, times: int = 1) -> None:
        """The next ``times`` requests to ``route`` get ``status`` and ``body``, and nothing
        happens on the far side."""
        self._faults.setdefault(route, []).extend(Fault(status, body) for _ in range(times))

    def lose(self, route: str, times: int = 1) -> None:
        """The next ``times`` requests to ``route`` do their work, then the connection drops."""
        self._faults.setdefault(route, []).extend(Fault(lose=True) for _ in range(times))

    def calls(self, route: str) -> list[Seen]:
        return [s for s in self.seen if s.route == route]

    # Running ---------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or request.path
        self.seen.append(Seen(route, request.method, request.path, dict(request.headers)))
        queued = self._faults.get(route)
        fault = queued.pop(0) if queued else None
        if fault is not None and fault.status is not None:
            return web.json_response(fault.body, status=fault.status)
        response = await handler(request)
        if fault is not None and fault.lose:
            # The work is done; the answer never reaches the client.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        return response

    def start(self) -> Self:
        app = web.Application(middlewares=[self._middleware], client_max_size=200 * 2**20)
        self.routes(app)
        self.url = self._running.enter_context(serve(app, type(self).__name__))
        return self

    def stop(self) -> None:
        self._running.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def error(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


def consent_page(
    query: Mapping[str, str],
    fields: tuple[str, ...],
    *,
    title: str,
    heading: str,
    asked: str,
    action: str,
    allow: str = "Allow",
    cancel: str = "deny",
) -> web.Response:
    """An OAuth consent screen (LinkedIn, Google, Facebook Login): what is ``asked``, and a form
    that posts the flow's ``fields`` back to ``action`` with ``choice`` allow or ``cancel``."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(query[name])}">'
        for name in fields
        if name in query
    )
    page = (
        f"<!doctype html><html lang=en><title>{title}</title><h1>{heading}</h1>"
        f'<p>{html.escape(asked)}</p><form method="post" action="{action}">{hidden}'
        f'<button name="choice" value="allow">{allow}</button>'
        f'<button name="choice" value="{cancel}">Cancel</button></form></html>'
    )
    return web.Response(text=page, content_type="text/html")


# --- the WordPress and Micropub fakes ------------------------------------------------------------


@dataclass
class Recorded:
    """One request as it arrived, body and all."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    route: str = ""
    """The REST route for fakes that have one apart from the path (WordPress's ``rest_route``)."""


class Answer(Exception):
    """Raised by a handler to answer at once with ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@web.middleware
async def answer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Answer as answer:
        return answer.response


def plain(status: int) -> Answer:
    """What a proxy in front of the site answers when the backend failed or its answer was lost."""
    page = f"<html><body><h1>{status}</h1></body></html>"
    return Answer(web.Response(text=page, status=status, content_type="text/html"))


def unique_slug(slug: str, taken: set[str]) -> str:
    """``slug``, or the first of ``slug-2``, ``slug-3``… not ``taken``."""
    if slug not in taken:
        return slug
    n = 2
    while f"{slug}-{n}" in taken:
        n += 1
    return f"{slug}-{n}"


@dataclass(frozen=True)
class Refuse:
    """A scripted refusal: ``body`` (the service's own JSON error) with ``status``, nothing done."""

    status: int
    body: dict[str, Any]


@dataclass
class ScriptedFake:
    """A fake whose handlers each begin with ``_record``: it keeps the request and plays the next
    scripted answer for the route, a status (raised as a plain page at once) or ``LOST`` (given
    back to the handler, which does the work and then answers 502). Files it was given are served
    back at their path by ``stored_file``."""

    max_body: ClassVar[int] = 64 << 20
    url: str = ""
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    scripted: dict[str, list[int | str | Refuse]] = field(default_factory=dict)

    def script(self, route: str, *answers: int | str | Refuse) -> None:
        self.scripted.setdefault(route, []).extend(answers)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _record(self, request: web.Request, route: str) -> str | None:
        body = await request.read()
        query = dict(request.query)
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                query,
                dict(request.headers),
                body,
                request.get(REST_ROUTE, ""),
            )
        )
        queue = self.scripted.get(route)
        if queue:
            action = queue.pop(0)
            if isinstance(action, int):
                raise plain(action)
            if isinstance(action, Refuse):
                raise Answer(web.json_response(action.body, status=action.status))
            return action
        return None

    async def stored_file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[1], content_type=found[0])

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body, middlewares=[answer_middleware])
        self.routes(app)
        return app

    @contextmanager
    def running(self) -> Iterator[Self]:
        with serve(self.app(), type(self).__name__) as url:
            self.url = url
            yield self
