"""Local stand-ins for the networks the relay posts to, each speaking its documented API strictly
on 127.0.0.1 (an aiohttp app on its own event loop in a thread), so that a real ``relay serve``
can deliver to them.

Every fake can be scripted to misbehave on a named route: answer a status once without doing
anything (``fail``), or do the work and then drop the connection before answering (``lose``), as
when a proxy times out after the far side already posted.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

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
        started = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            app = web.Application(middlewares=[self._middleware], client_max_size=200 * 2**20)
            self.routes(app)
            self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = self._runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name=type(self).__name__)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def error(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)
