"""Items' companions and captions' languages (migration 13), on SQLite and (with
RELAY_TEST_DATABASE_URL) PostgreSQL: a database of version 11 gains both columns, items and
renditions there before have none, and a captions rendition keeps its language."""

from __future__ import annotations

import json

from sqlalchemy import text

from relay.auth import new_id
from relay.db import Database, migrations, queries
from relay.model import Item, Post, Rendition


def test_a_database_of_version_11_gains_companions_and_caption_languages(
    database: Database,
) -> None:
    with database.begin() as conn:
        anna = queries.add_user(conn, "anna")
        post = Post(id=new_id(), user_id=anna, title="", text="")
        queries.insert_post(conn, post, spool_name=None, state="published")
        old = Item(id=new_id(), post_id=post.id, position=0, filename="a.jpg", declared_mime=None)
        queries.insert_item(conn, old, "spool-a")
        conn.execute(text("ALTER TABLE items DROP COLUMN companions"))
        conn.execute(text("ALTER TABLE renditions DROP COLUMN lang"))
        conn.execute(text("UPDATE relay_schema_version SET version = 11"))
    assert database.migrate() == 11
    with database.begin() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        assert queries.item_row(conn, old.id)["companions"] is None
        clip = Item(id=new_id(), post_id=post.id, position=1, filename="t.mp4", declared_mime=None)
        companions = [{"role": "captions", "spool_name": "s", "filename": "t.srt", "lang": "sv"}]
        queries.insert_item(conn, clip, "spool-t", json.dumps(companions))
        queries.replace_renditions(
            conn, clip.id, [Rendition("captions", "k/captions.sv.vtt", "text/vtt", 10, lang="sv")]
        )
    with database.begin() as conn:
        assert json.loads(queries.item_row(conn, clip.id)["companions"]) == companions
        [item] = [i for i in queries.load_items(conn, [post.id])[post.id] if i.id == clip.id]
        assert [(r.name, r.lang) for r in item.renditions] == [("captions", "sv")]
        # A restart keeps the spooled captions of an item not processed yet.
        assert {"spool-t", "s"} <= queries.spool_names_in_use(conn)
        queries.delete_queued_item(conn, old.id)
        assert queries.item_row(conn, old.id) is None
