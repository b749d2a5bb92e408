"""Docs are part of the feature: every setting is documented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relay.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _spec() -> dict[str, Any]:
    return json.loads((ROOT / "relay" / "openapi.json").read_text())


def test_every_setting_is_in_the_readme() -> None:
    missing = [
        f"RELAY_{name.upper()}"
        for name in Settings.model_fields
        if f"`RELAY_{name.upper()}`" not in README
    ]
    assert missing == [], f"undocumented settings: {missing}"


def test_readme_starts_with_the_two_commands() -> None:
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert block == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/relay serve",
        "bash scripts/test.sh",
    ]


def _described_path(resource: object) -> str:
    from aiohttp import web

    if isinstance(resource, web.StaticResource):  # one route serves the folder's files
        return resource.canonical + "/{filename}"
    return resource.canonical.replace("{key:.+}", "{key}")


def test_openapi_describes_every_route() -> None:
    from relay.app import make_app
    from relay.config import load_settings

    spec = _spec()
    app = make_app(load_settings(), smtp=False, workers=False)
    gets = {(r.resource, r.handler) for r in app.router.routes() if r.method == "GET"}
    routes = {
        (r.method.lower(), _described_path(r.resource))
        for r in app.router.routes()
        # aiohttp adds a HEAD to each GET with the GET's handler; a HEAD of its own (tus's)
        # is an operation to describe.
        if r.method != "HEAD" or (r.resource, r.handler) not in gets
    }
    described = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == described
    assert ("head", "/api/v1/tus/{upload_id}") in routes
    assert "/oembed" in spec["paths"] and spec["openapi"].startswith("3.")


def test_openapi_document_is_valid() -> None:
    from openapi_spec_validator import validate

    validate(_spec())


def test_openapi_upload_form_has_every_field_the_door_reads() -> None:
    body = _spec()["paths"]["/api/v1/uploads"]["post"]["requestBody"]["content"]
    form = body["multipart/form-data"]["schema"]["properties"]
    from relay.intake import fields

    assert set(form) == {"file", "title", "text", *fields.NAMES}
    parameters = _spec()["paths"]["/api/v1/uploads"]["post"]["parameters"]
    assert {p["name"] for p in parameters if p["in"] == "query"} == {"title", "text", *fields.NAMES}
    assert {p["name"] for p in parameters if p["in"] == "header"} == set(fields.HEADERS.values())
