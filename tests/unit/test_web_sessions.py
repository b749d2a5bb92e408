"""The web app's parts without a browser: migration 7, the posts page's keyset pages and
filters (SQLite, and PostgreSQL when RELAY_TEST_DATABASE_URL is set), session cookies, the
timing-safe password check, and the choice of language."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import select, text

from relay.db import Database, migrations, queries
from relay.db.schema import users
from relay.model import Post, PostState, PostStatus
from relay.web import auth
from relay.web.app import i18n


def test_users_of_version_5_migrate_without_password_nor_admin(database: Database) -> None:
    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
        for name in ("password_hash", "admin", "session_gen"):
            conn.execute(text(f"ALTER TABLE users DROP COLUMN {name}"))
        conn.execute(text("UPDATE relay_schema_version SET version = 5"))
    assert database.migrate() == 5
    with database.begin() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        row = conn.execute(select(users).where(users.c.id == user_id)).mappings().one()
        assert (row["password_hash"], row["admin"], row["session_gen"]) == (None, False, 0)
        assert queries.user_session(conn, user_id) == ("anna", 0, False, False)
        queries.end_sessions(conn, user_id)
        assert queries.user_session(conn, user_id) == ("anna", 1, False, False)


def _post(conn, user_id: str, n: int, state: PostState = PostState.PUBLISHED) -> str:
    post = Post(
        id=f"p{n:03d}",
        user_id=user_id,
        title=f"post {n}",
        text="",
        status=PostStatus.READY,
        # Pairs share a second: the keyset must still neither skip nor repeat one.
        created_at=datetime.fromtimestamp(1_800_000_000 + n // 2, UTC),
    )
    queries.insert_post(conn, post, state=state.value, draft=state == PostState.DRAFT)
    return post.id


def test_posts_pages_walk_every_post_once_newest_first_and_filter(database: Database) -> None:
    with database.begin() as conn:
        anna, bo = queries.add_user(conn, "anna"), queries.add_user(conn, "bo")
        made = [_post(conn, anna, n) for n in range(25)]
        draft = _post(conn, anna, 90, PostState.DRAFT)
        scheduled = _post(conn, anna, 91, PostState.SCHEDULED)
        _post(conn, anna, 92, PostState.DELETED)
        _post(conn, bo, 93)
    seen: list[str] = []
    after = None
    while True:
        with database.begin(write=False) as conn:
            page = queries.posts_page(conn, anna, 4, after)
        if not page:
            break
        seen += [post.id for post in page]
        after = page[-1].id
    assert seen == [scheduled, draft, *reversed(made)]  # no deleted post, none of bo's
    with database.begin(write=False) as conn:
        assert [p.id for p in queries.posts_page(conn, anna, 10, show="draft")] == [draft]
        assert [p.id for p in queries.posts_page(conn, anna, 10, show="scheduled")] == [scheduled]
        assert queries.posts_page(conn, anna, 10, show="failed") == []
        assert [p.id for p in queries.posts_by_ids(conn, bo, [made[0], "p093"])] == ["p093"]


def test_session_cookies_are_signed_expire_and_carry_the_generation() -> None:
    sessions = auth.Sessions(b"k" * 32, lifetime=60, secure=False)
    cookie = sessions.issue("user1", 3, now=1000)
    assert sessions.check(cookie, now=1030) == ("user1", 3)
    assert sessions.check(cookie, now=1061) is None  # expired
    user, generation, expires, mac = cookie.split(".")
    assert sessions.check(f"user2.{generation}.{expires}.{mac}", now=1030) is None
    assert sessions.check(f"{user}.4.{expires}.{mac}", now=1030) is None
    assert sessions.check(f"{user}.{generation}.9999999.{mac}", now=1030) is None
    other = auth.Sessions(b"o" * 32, lifetime=60, secure=False)
    assert other.check(cookie, now=1030) is None
    assert sessions.check("", now=1030) is None and sessions.check(None) is None


def test_an_unknown_user_costs_the_same_argon2_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = auth.hash_password("right password")
    assert auth.verify_password(hashed, "right password")
    assert not auth.verify_password(hashed, "wrong password")
    calls: list[str] = []
    real = auth._HASHER

    class Counting:
        def hash(self, password: str) -> str:
            return real.hash(password)

        def verify(self, hash_: str, password: str) -> bool:
            calls.append(hash_)
            return real.verify(hash_, password)

    monkeypatch.setattr(auth, "_HASHER", Counting())
    assert not auth.verify_password(None, "anything")
    assert not auth.verify_password(hashed, "wrong password")
    assert len(calls) == 2 and calls[0].startswith("$argon2id$") and calls[1] == hashed


@pytest.mark.parametrize(
    ("header", "cookie", "expected"),
    [
        ("sv-SE,sv;q=0.9,en;q=0.8", None, "sv"),
        ("de-DE,en;q=0.5,sv;q=0.7", None, "sv"),
        ("en-US,en;q=0.9", None, "en"),
        ("fr-FR", None, "en"),
        ("sv;q=0", None, "en"),
        ("sv-SE", "en", "en"),
        ("en", "sv", "sv"),
        ("en", "xx", "en"),
    ],
)
def test_language_from_the_cookie_then_accept_language(
    header: str, cookie: str | None, expected: str
) -> None:
    headers = {"Accept-Language": header}
    if cookie:
        headers["Cookie"] = f"{i18n.LANG_COOKIE}={cookie}"
    request = make_mocked_request("GET", "/", headers=headers)
    assert i18n.choose_language(request, "en") == expected


def test_the_swedish_catalogue_compiles_and_covers_the_contract_labels() -> None:
    sv = i18n.translations("sv")
    assert [sv.gettext(s) for s in ("User name", "Password", "Sign in")] == [
        "Användarnamn",
        "Lösenord",
        "Logga in",
    ]


def test_every_string_of_the_web_app_has_a_swedish_translation() -> None:
    """Every ``_("…")`` in the web app's Python and templates, the public post page and its
    error pages, and the reply mail is in a Swedish catalogue (a room that forgets its ``.po``
    entries fails here, not in front of a Swedish reader)."""
    from babel.messages.extract import extract_from_dir, extract_from_file
    from babel.messages.pofile import read_po

    import relay.reply

    web = Path(i18n.__file__).parent.parent
    method_map = [
        ("app/**.py", "python"),
        ("pages.py", "python"),
        ("templates/app/**.html", "jinja2"),
        ("templates/*.html", "jinja2"),
    ]
    i18n.translations("sv")  # compiles, and refuses a message translated two ways
    translated = set()
    for po in (i18n.LOCALE_DIR / "sv" / "LC_MESSAGES").glob("*.po"):
        with po.open("rb") as f:
            translated |= {
                m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.string
            }
    missing = []
    found = [
        (filename, message)
        for filename, _lineno, message, _comments, _context in extract_from_dir(
            str(web), method_map=method_map
        )
    ]
    assert any(filename.endswith("pages.py") for filename, _ in found)
    assert any(filename.endswith("post.html") for filename, _ in found)
    found += [
        ("reply.py", message)
        for _lineno, message, _comments, _context in extract_from_file(
            "python", relay.reply.__file__
        )
    ]
    assert any(filename == "reply.py" for filename, _ in found)
    import relay.notice

    found += [
        ("notice.py", message)
        for _lineno, message, _comments, _context in extract_from_file(
            "python", relay.notice.__file__
        )
    ]
    for filename, message in found:
        singular = message[0] if isinstance(message, tuple) else message
        if singular and singular not in translated:
            missing.append(f"{filename}: {singular}")
    assert missing == []
