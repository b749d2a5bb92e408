"""The OpenAPI description of a post's life agrees with what the server accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from pydantic import ValidationError

from relay.web.posts import PostPatch

SPEC = json.loads((Path(__file__).resolve().parents[2] / "relay" / "openapi.json").read_text())


def _schema(name: str) -> dict[str, Any]:
    return {**SPEC["components"]["schemas"][name], "components": SPEC["components"]}


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"title": "t", "text": "x", "tags": ["a"], "private": False}, True),
        ({"draft": False}, True),
        ({"publish_at": "2026-12-24T09:00:00+01:00"}, True),
        ({"publish_at": None}, True),
        ({"items": [{"id": "i1", "alt": "Ko"}]}, True),
        ({"colour": "red"}, False),
        ({"title": 5}, False),
        ({"private": "yes"}, False),
        ({"tags": "a,b"}, False),
        ({"items": [{"id": "i1", "extra": 1}]}, False),
        ({"items": [{"alt": "no id"}]}, False),
    ],
)
def test_the_patch_schema_and_the_server_agree(body: dict[str, Any], ok: bool) -> None:
    described = OAS31Validator(_schema("PostPatch")).is_valid(body)
    try:
        PostPatch.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert described is ok and accepted is ok


def test_the_new_paths_are_described() -> None:
    paths = SPEC["paths"]
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/posts/{post_id}"])
    assert "post" in paths["/api/v1/posts/{post_id}/publish"]
    assert "get" in paths["/api/v1/posts/{post_id}/events"]
    assert paths["/api/v1/posts/{post_id}"]["delete"]["responses"]["204"]
    assert set(SPEC["components"]["schemas"]["Post"]["properties"]["state"]["enum"]) == {
        "draft",
        "scheduled",
        "published",
        "deleted",
    }
