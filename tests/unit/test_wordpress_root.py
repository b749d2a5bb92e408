"""Where the WordPress adapter sends each route: under a ``/wp-json/`` root or, on a site with
plain permalinks, in the ``rest_route`` query parameter; and which answers mean the credentials
did not count."""

from __future__ import annotations

import asyncio

import pytest

from relay.publish import Destination
from relay.publish.net import Http
from relay.publish.wordpress import WordPressAdapter, _as_visitor, api_root, given_root, route_url
from tests.fakes.wordpress import fake_wordpress


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("https://blog.example/wp-json/", "https://blog.example/wp-json/wp/v2/posts"),
        ("https://example.org/blog/wp-json", "https://example.org/blog/wp-json/wp/v2/posts"),
        ("https://blog.example/?rest_route=/", "https://blog.example/?rest_route=/wp/v2/posts"),
        (
            "https://blog.example/index.php?lang=sv&rest_route=/",
            "https://blog.example/index.php?lang=sv&rest_route=/wp/v2/posts",
        ),
    ],
)
def test_route_url(root: str, expected: str) -> None:
    assert route_url(root, "wp/v2/posts") == expected


def test_given_and_guessed_roots() -> None:
    assert given_root("https://blog.example") is None
    assert given_root("https://blog.example/wp-json") == "https://blog.example/wp-json/"
    assert given_root("https://blog.example/?rest_route=/") == "https://blog.example/?rest_route=/"
    assert api_root("https://blog.example/") == "https://blog.example/wp-json/"


def test_visitor_answers() -> None:
    # WP_REST_Request::sanitize_params for status=any asked by a visitor
    visitor = {
        "code": "rest_invalid_param",
        "message": "Invalid parameter(s): status",
        "data": {
            "status": 400,
            "params": {"status": "Status is forbidden."},
            "details": {
                "status": {
                    "code": "rest_forbidden_status",
                    "message": "Status is forbidden.",
                    "data": {"status": 401},
                }
            },
        },
    }
    assert _as_visitor(visitor)
    # a real mistake in a parameter stays a refusal
    wrong = {
        "code": "rest_invalid_param",
        "message": "Invalid parameter(s): status",
        "data": {
            "status": 400,
            "details": {"status": {"code": "rest_not_in_enum", "message": "…", "data": None}},
        },
    }
    assert not _as_visitor(wrong)
    assert not _as_visitor(None) and not _as_visitor(["x"])


@pytest.mark.parametrize("permalinks", ["pretty", "plain"])
def test_discovery_follows_the_site_to_its_front_page_once(permalinks: str) -> None:
    with fake_wordpress(permalinks=permalinks, front_redirect=True) as wp:

        async def go() -> tuple[str, str]:
            http = Http(allow_private=True)
            try:
                adapter = WordPressAdapter(
                    Destination(
                        "w", "u", "wordpress", wp.url, None, wp.password, {"user": wp.user}
                    ),
                    http,
                )
                said = await adapter.check()
                await adapter.check()  # the root is kept: no second discovery
                return said, await adapter.root()
            finally:
                await http.close()

        said, root = asyncio.run(go())
        assert "signed in as Anna" in said
        assert root == wp.api_root
        assert wp.discoveries == ["HEAD"]
        assert [r.route for r in wp.requests] == ["/wp/v2/users/me"] * 2
