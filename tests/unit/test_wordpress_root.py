"""Where the WordPress adapter sends each route: under a ``/wp-json/`` root or, on a site with
plain permalinks, in the ``rest_route`` query parameter; and which answers mean the credentials
did not count."""

from __future__ import annotations

import pytest

from relay.publish.wordpress import _as_visitor, api_root, given_root, route_url


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
