"""The one contract every adapter keeps (relay/publish/__init__.py), run against each built-in
adapter's strict fake (tests/fakes/, tests/receivers.py for webhooks):

1. idempotent publish: a retry with the delivery's idempotency key after a lost answer, and a
   repeat after a success, make exactly one post, and the same remote id and URL;
2. temporary vs permanent: the service failing (5xx, 429) is a ``TransientPublishError`` that
   the delivery retries; a refusal (bad credentials) a plain ``PublishError`` with a stable code
   of relay/errors.py that stops it;
3. ``check()`` says which account it reached, and a bad credential is a ``PublishError``;
4. preflight: the post page's preview (``channel_preview``) is made without posting.

Every adapter in the registry must have a harness here: a new adapter joins the table or the
suite fails."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from standardwebhooks import Webhook

from relay.errors import CATALOG, PublishError, TransientPublishError
from relay.publish import Destination, Media, Outgoing, Published, _builtin, adapter_for
from relay.publish.net import Http
from relay.web.app.preview import ChannelPreview, channel_preview
from tests.clips import web_ready_mp4
from tests.fakes import LOST, Refuse
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.linkedin import FakeLinkedIn
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.meta import FakeMeta
from tests.fakes.micropub import fake_micropub
from tests.fakes.wordpress import fake_wordpress
from tests.fakes.x import FakeX, invalid
from tests.fakes.youtube import FakeYouTube, GoogleError
from tests.receivers import Received, webhook_receiver

PAGE = "http://relay.example/p/abc"
PHOTO_URL = "http://relay.example/m/item1/large.jpg"
KEY = "dlv_01CONTRACT"
WRONG = "wrong-credential-0000"


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 90, 200)).save(out, "JPEG")
    return out.getvalue()


JPEG = _jpeg()


@functools.cache
def _clip() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return web_ready_mp4(Path(folder) / "clip.mp4", "320x180", 1).read_bytes()


def _reader(data: bytes) -> Callable[[], AsyncIterator[bytes]]:
    async def read() -> AsyncIterator[bytes]:
        yield data

    return read


def photo() -> Media:
    return Media(
        "item1", "image", "image/jpeg", len(JPEG), PHOTO_URL, 64, 48, None,
        "Torget i solsken", _reader(JPEG),
    )  # fmt: skip


def clip() -> Media:
    data = _clip()
    return Media(
        "item1", "video", "video/mp4", len(data), "http://relay.example/m/item1/video.mp4",
        320, 180, 1.0, "", _reader(data),
    )  # fmt: skip


def outgoing(medium: Media, attempt: int = 1) -> Outgoing:
    post = {"id": "abc", "title": "Torget", "text": "Hej", "url": PAGE, "items": []}
    return Outgoing(KEY, KEY, attempt, post, PAGE, "Torget", "Hej", [medium])


@dataclass
class Harness:
    """One adapter at its running fake: what the contract's tests need of it."""

    destination: Destination
    bad: Destination
    """The same destination with a credential the service refuses."""
    medium: Callable[[], Media]
    copies: Callable[[], list[str]]
    """The ids of the posts the fake holds (for a webhook: the message ids it took, once each)."""
    requests: Callable[[], list[str]]
    """Every request the fake saw, as ``METHOD path``."""
    lose: Callable[[], None]
    """The next create does its work and its answer is lost."""
    fail: Callable[[int], None]
    """The next create answers this status and does nothing."""
    refuse: Callable[[], None]
    """The next create is refused as invalid, in the service's own words, and does nothing."""
    account: str
    """What ``check()`` names: the account (or, for a webhook, the URL) reached."""
    reads: set[str] = field(default_factory=set)
    """Paths a preview may read (never write)."""


# --- one harness per adapter -------------------------------------------------------------------


def _seen(fake: Any) -> Callable[[], list[str]]:
    return lambda: [f"{s.method} {s.path}" for s in fake.seen]


def _recorded(fake: Any) -> Callable[[], list[str]]:
    return lambda: [f"{r.method} {r.path}" for r in fake.requests]


@contextmanager
def webhook() -> Iterator[Harness]:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    verifier = Webhook(secret)
    failing: list[int] = []
    accepted: set[str] = set()

    def answer(received: Received) -> int:
        # A receiver as Standard Webhooks asks: it verifies the signature, takes each message id
        # once (a repeat is answered 200 and changes nothing), and may fail.
        try:
            verifier.verify(received.body, received.headers)
        except Exception:
            return 401
        if failing:
            return failing.pop(0)
        if json.loads(received.body)["type"] == "post.published":
            accepted.add(received.headers["webhook-id"])
        return 200

    with webhook_receiver(answer) as receiver:
        destination = Destination("h", "u", "webhook", receiver.url, secret, None, {})
        yield Harness(
            destination,
            replace(destination, secret="whsec_" + "A" * 32),
            photo,
            lambda: sorted(accepted),
            lambda: [f"{r.method} {r.path}" for r in receiver.requests],
            lambda: None,  # no answer to lose on this receiver: the repeat carries the same key
            failing.append,
            lambda: failing.append(422),
            receiver.url,
        )


@contextmanager
def mastodon() -> Iterator[Harness]:
    with FakeMastodon() as fake:
        destination = Destination("m", "u", "mastodon", fake.url, None, fake.token, {})
        yield Harness(
            destination,
            replace(destination, token=WRONG),
            photo,
            lambda: [str(s["id"]) for s in fake.statuses],
            _seen(fake),
            lambda: fake.lose("statuses.create"),
            lambda status: fake.fail("statuses.create", status, {"error": "Service Unavailable"}),
            lambda: fake.fail(
                "statuses.create", 422, {"error": "Validation failed: Text is not allowed"}
            ),
            "@anna",
            # the preview counts with the instance's own limits (a read, cached; nothing is posted)
            reads={"GET /api/v2/instance"},
        )


@contextmanager
def bluesky() -> Iterator[Harness]:
    with FakeBluesky() as fake:
        destination = Destination(
            "b", "u", "bluesky", fake.url, None, fake.app_password, {"handle": fake.handle}
        )
        yield Harness(
            destination,
            replace(destination, token=WRONG),
            photo,
            lambda: list(fake.records),
            _seen(fake),
            lambda: fake.lose("putRecord"),
            lambda status: fake.fail(
                "putRecord", status, {"error": "UpstreamFailure", "message": "Bad Gateway"}
            ),
            lambda: fake.fail(
                "putRecord",
                400,
                {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record"},
            ),
            fake.handle,
        )


@contextmanager
def wordpress() -> Iterator[Harness]:
    with fake_wordpress() as wp:
        destination = Destination(
            "w", "u", "wordpress", wp.url, None, wp.password, {"user": wp.user}
        )
        yield Harness(
            destination,
            replace(destination, token=WRONG),
            photo,
            lambda: [str(post_id) for post_id in wp.posts],
            _recorded(wp),
            lambda: wp.script("posts.create", LOST),
            lambda status: wp.script("posts.create", status),
            lambda: wp.script(
                "posts.create",
                Refuse(
                    400,
                    {
                        "code": "rest_invalid_param",
                        "message": "Invalid parameter(s): status",
                        "data": {"status": 400, "params": {"status": "status is not one of …"}},
                    },
                ),
            ),
            "signed in as Anna",
        )


@contextmanager
def micropub() -> Iterator[Harness]:
    # The spec has no idempotency; this server honours Idempotency-Key, as careful ones do
    # (tests/e2e/test_micropub.py covers the one that only lists its posts).
    with fake_micropub(idempotency=True) as mp:
        destination = Destination("p", "u", "micropub", mp.endpoint, None, mp.token, {})
        yield Harness(
            destination,
            replace(destination, token=WRONG),
            photo,
            lambda: [e["url"] for e in mp.entries],
            _recorded(mp),
            lambda: mp.script("create", LOST),
            lambda status: mp.script("create", status),
            lambda: mp.script(
                "create",
                Refuse(400, {"error": "invalid_request", "error_description": "No content."}),
            ),
            mp.me,
        )


def _meta(kind: str, create: str) -> Callable[[], AbstractContextManager[Harness]]:
    copy = {"facebook": "page_post", "instagram": "ig_media", "threads": "thread"}[kind]

    @contextmanager
    def harness() -> Iterator[Harness]:
        with FakeMeta(fetchable={PHOTO_URL: JPEG}) as fake:
            if kind == "facebook":
                destination = Destination(
                    "f", "u", kind, fake.facebook_url, None, fake.page_token,
                    {"page_id": fake.page_id},
                )  # fmt: skip
            elif kind == "instagram":
                destination = Destination(
                    "i", "u", kind, fake.facebook_url, None, fake.user_token,
                    {"ig_user_id": fake.ig_user_id},
                )  # fmt: skip
            else:
                destination = Destination(
                    "t", "u", kind, fake.threads_url, None, fake.threads_token,
                    {"threads_user_id": fake.threads_user_id},
                )  # fmt: skip
            body = {
                "error": {
                    "message": "An unexpected error has occurred. Please retry your request later.",
                    "type": "OAuthException",
                    "code": 2,
                    "is_transient": True,
                    "fbtrace_id": "Acontract",
                }
            }
            invalid = {
                "error": {
                    "message": "(#100) Invalid parameter",
                    "type": "OAuthException",
                    "code": 100,
                    "fbtrace_id": "Acontract",
                }
            }
            yield Harness(
                destination,
                replace(destination, token=WRONG),
                photo,
                lambda: [str(o["id"]) for o in fake.of_kind(copy)],
                _seen(fake),
                lambda: fake.lose(create),
                lambda status: fake.fail(create, status, body),
                lambda: fake.fail(create, 400, invalid),
                "Kommunen" if kind == "facebook" else "@kommunen",
            )

    return harness


@contextmanager
def linkedin() -> Iterator[Harness]:
    # A Page: its posts can be read back (r_organization_social) to find a lost one. A person's
    # need r_member_social, which LinkedIn grants few apps: there a lost answer can post twice.
    with FakeLinkedIn() as fake:
        destination = Destination(
            "l", "u", "linkedin", fake.url, None, fake.token, {"author": fake.organization}
        )
        yield Harness(
            destination,
            replace(destination, token=WRONG),
            photo,
            lambda: [p["id"] for p in fake.live()],
            _seen(fake),
            lambda: fake.lose("posts.create"),
            lambda status: fake.fail(
                "posts.create",
                status,
                {"status": status, "message": "Service unavailable", "code": "UNAVAILABLE"},
            ),
            lambda: fake.fail(
                "posts.create",
                422,
                {
                    "status": 422,
                    "serviceErrorCode": 100,
                    "code": "UNPROCESSABLE_ENTITY",
                    "message": "ERROR :: /commentary :: is too long",
                },
            ),
            "Kommunen",
        )


@contextmanager
def x() -> Iterator[Harness]:
    with FakeX() as fake:
        destination = Destination(
            "x", "u", "x", fake.url, None, fake.token, {"username": "kommunen"}
        )
        yield Harness(
            destination,
            replace(destination, token=WRONG),
            photo,
            lambda: [t["id"] for t in fake.live()],
            _seen(fake),
            lambda: fake.lose("tweets.create"),
            lambda status: fake.fail(
                "tweets.create",
                status,
                {
                    "title": "Service Unavailable",
                    "detail": "Service Unavailable",
                    "type": "about:blank",
                    "status": status,
                },
            ),
            lambda: fake.fail("tweets.create", 400, invalid("Invalid text", "text").body),
            "@kommunen",
        )


@contextmanager
def youtube() -> Iterator[Harness]:
    with FakeYouTube() as fake:
        destination = Destination("y", "u", "youtube", fake.url, None, fake.access_token, {})
        body = {
            "error": {
                "code": 503,
                "message": "The service is currently unavailable.",
                "errors": [
                    {"message": "Backend Error", "domain": "global", "reason": "backendError"}
                ],
            }
        }
        yield Harness(
            destination,
            replace(destination, token=WRONG),
            clip,
            lambda: [v["id"] for v in fake.live()],
            _seen(fake),
            lambda: fake.lose("videos.upload"),
            lambda status: fake.fail("videos.insert", status, body),
            lambda: fake.fail(
                "videos.insert",
                400,
                GoogleError(
                    400, "invalidTitle", "The request metadata specifies an invalid title."
                ).body,
            ),
            fake.channel_title,
        )


HARNESSES: dict[str, Callable[[], AbstractContextManager[Harness]]] = {
    "webhook": webhook,
    "mastodon": mastodon,
    "bluesky": bluesky,
    "wordpress": wordpress,
    "micropub": micropub,
    "facebook": _meta("facebook", "page.feed.create"),
    "instagram": _meta("instagram", "ig.publish"),
    "threads": _meta("threads", "threads.publish"),
    "linkedin": linkedin,
    "x": x,
    "youtube": youtube,
}


def run(destination: Destination, step: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        http = Http(allow_private=True)
        try:
            adapter = adapter_for(destination, http)
            if destination.type == "youtube":
                adapter.resume_pause = 0.01  # type: ignore[attr-defined]
            return await step(adapter)
        finally:
            await http.close()

    return asyncio.run(go())


def publish(h: Harness, attempt: int = 1) -> Published:
    out = outgoing(h.medium(), attempt)
    return run(h.destination, lambda adapter: adapter.publish(out))


# --- the contract ------------------------------------------------------------------------------


def test_every_registered_adapter_has_a_harness() -> None:
    assert set(_builtin()) == set(HARNESSES)


@pytest.mark.parametrize("name", HARNESSES)
def test_a_retry_after_a_lost_answer_and_a_repeat_make_one_post(name: str) -> None:
    with HARNESSES[name]() as h:
        h.lose()
        try:
            first: Published | None = publish(h)
        except TransientPublishError:
            first = None  # the answer was lost: the delivery tries again with the same key
        again = publish(h, attempt=2)
        repeat = publish(h, attempt=3)
        [copy] = h.copies()
    assert again == repeat
    assert first in (None, again)
    assert any(copy in str(said) for said in (again.remote_id, again.remote_url)), (copy, again)


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("name", HARNESSES)
def test_a_failing_service_is_temporary(name: str, status: int) -> None:
    with HARNESSES[name]() as h:
        h.fail(status)
        with pytest.raises(TransientPublishError) as raised:
            publish(h)
        assert raised.value.code in CATALOG
        assert h.copies() == []
        publish(h, attempt=2)  # the retry goes through
        assert len(h.copies()) == 1


@pytest.mark.parametrize("name", HARNESSES)
def test_refused_credentials_are_permanent_with_a_stable_code(name: str) -> None:
    with HARNESSES[name]() as h:
        out = outgoing(h.medium())
        with pytest.raises(PublishError) as raised:
            run(h.bad, lambda adapter: adapter.publish(out))
        assert not isinstance(raised.value, TransientPublishError), raised.value
        assert raised.value.code in CATALOG
        assert h.copies() == []
        assert WRONG not in json.dumps(raised.value.public())


@pytest.mark.parametrize("name", HARNESSES)
def test_a_refused_post_is_permanent_with_a_stable_code(name: str) -> None:
    with HARNESSES[name]() as h:
        h.refuse()
        with pytest.raises(PublishError) as raised:
            publish(h)
        assert not isinstance(raised.value, TransientPublishError), raised.value
        assert raised.value.code == "publish.rejected"
        assert h.copies() == []


@pytest.mark.parametrize("name", HARNESSES)
def test_check_names_the_account_and_refuses_a_bad_credential(name: str) -> None:
    with HARNESSES[name]() as h:
        said = run(h.destination, lambda adapter: adapter.check())
        assert isinstance(said, str) and h.account in said, said
        with pytest.raises(PublishError) as raised:
            run(h.bad, lambda adapter: adapter.check())
        assert raised.value.code in CATALOG
        assert h.copies() == []


@pytest.mark.parametrize("name", HARNESSES)
def test_the_preview_is_made_without_posting(name: str) -> None:
    with HARNESSES[name]() as h:
        out = outgoing(h.medium())

        async def preview() -> ChannelPreview:
            http = Http(allow_private=True)
            try:
                return await channel_preview(h.destination, http, out)
            finally:
                await http.close()

        shown = asyncio.run(preview())
        assert isinstance(shown, ChannelPreview)
        assert (shown.destination_id, shown.type) == (h.destination.id, name)
        assert not shown.refused and not shown.unknown
        assert "Torget" in shown.text
        assert set(h.requests()) <= h.reads
