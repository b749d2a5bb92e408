"""The web app at ``/``: sign in, your posts (sessions and CSRF: relay/web/auth.py)."""

from relay.web.app.views import setup

__all__ = ["setup"]
