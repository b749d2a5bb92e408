"""Docs are part of the feature: every setting is documented."""

from __future__ import annotations

from pathlib import Path

from relay.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


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


def test_openapi_describes_every_route() -> None:
    import json

    from relay.app import make_app
    from relay.config import load_settings

    spec = json.loads((Path(__file__).resolve().parents[2] / "relay" / "openapi.json").read_text())
    app = make_app(load_settings(), smtp=False, workers=False)
    routes = {
        (r.method.lower(), r.resource.canonical.replace("{key:.+}", "{key}"))
        for r in app.router.routes()
        if r.method != "HEAD"
    }
    described = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == described
    assert "/oembed" in spec["paths"] and spec["openapi"].startswith("3.")
