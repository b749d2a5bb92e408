"""Cross-posting to WordPress (REST API, Application Password) against a strict local fake."""

from __future__ import annotations

import html
import time

import httpx

from tests.fakes import life
from tests.fakes.wordpress import LOST, fake_wordpress
from tests.media import iphone_mail, phone_jpeg
from tests.server import crossposting_relay


def test_post_arrives_with_its_image_alt_text_featured_media_and_link(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_wordpress() as wp:
        destination_id = server.add_destination(
            "wordpress", wp.url, wp.password, f"user={wp.user}"
        )["id"]
        private = server.upload(token, title="Hej", private="true")
        post = server.wait_settled(
            token, server.upload(token, title="Hej", text="Rad ett\n\nTvå <b>")["id"]
        )
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"], delivery["error"]) == (
            "delivered",
            1,
            None,
        )

        [remote] = wp.posts.values()
        [attachment] = wp.media.values()
        assert delivery["remote_url"] == remote["link"]
        assert remote["status"] == "publish" and remote["title"]["raw"] == "Hej"
        assert remote["slug"].startswith("relay-")
        assert remote["featured_media"] == attachment["id"]
        content = remote["content"]["raw"]
        assert f'<a href="{post["url"]}">' in content
        assert f'<img src="{attachment["source_url"]}" alt="Hej"' in content
        assert "<p>Rad ett</p>" in content and "Två &lt;b&gt;" in content
        assert attachment["alt_text"] == "Hej" and attachment["mime_type"] == "image/jpeg"

        # the bytes that arrived are the relay's large rendition
        large = next(r for r in post["items"][0]["renditions"] if r["name"] == "large")
        path = attachment["source_url"].removeprefix(wp.url)
        [upload] = wp.created("media.create")
        assert "Transfer-Encoding" not in upload.headers  # a length, for PHP without chunked
        assert (
            upload.headers["Content-Disposition"] == f'attachment; filename="{path.split("/")[-1]}"'
        )
        assert wp.files[path][1] == httpx.get(large["url"]).content

        # the private post was never delivered, and nothing arrives twice
        assert server.wait_post(token, private["id"])["deliveries"] == []
        time.sleep(1)
        assert len(wp.created("posts.create")) == 1 and len(wp.posts) == 1

        checked = server.cli("destination", "test", destination_id)
        assert "signed in as Anna" in checked.stdout


def test_transient_failure_is_retried_into_one_post_without_reuploading(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_wordpress() as wp:
        wp.script("posts.create", 503)
        server.add_destination("wordpress", wp.url, wp.password, f"user={wp.user}")
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
        assert len(wp.created("posts.create")) == 2 and len(wp.posts) == 1
        # the image of the first try is found by its slug, not uploaded again
        assert len(wp.created("media.create")) == 1 and len(wp.media) == 1


def test_retry_after_a_lost_response_finds_the_post_by_its_slug(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_wordpress() as wp:
        wp.script("posts.create", LOST)  # created, then the answer is lost (502)
        # drafts too are found (status=any)
        server.add_destination("wordpress", wp.url, wp.password, f"user={wp.user}", "status=draft")
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
        [remote] = wp.posts.values()
        assert remote["status"] == "draft"
        assert delivery["remote_url"] == remote["link"]
        assert len(wp.created("posts.create")) == 1
        lookups = [
            r.query for r in wp.requests if r.path.endswith("/wp/v2/posts") and r.method == "GET"
        ]
        assert lookups[-1] == {"slug": remote["slug"], "context": "edit", "status": "any"}


def test_bad_application_password_stops_and_says_why(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_wordpress() as wp:
        destination_id = server.add_destination(
            "wordpress", wp.url, "wrong pass word", f"user={wp.user}"
        )["id"]
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
        assert delivery["error"]["code"] == "publish.unauthorized"
        assert "incorrect_password" in delivery["error"]["message"]
        time.sleep(1)  # a failed delivery is done: nothing follows
        assert wp.posts == {} and wp.media == {}
        assert len(wp.requests) == 1  # stopped at the first answer

        failed = server.cli("destination", "test", destination_id, check=False)
        assert failed.returncode != 0 and "publish.unauthorized" in failed.stderr


def test_private_address_is_refused_by_default(start_relay) -> None:
    server = start_relay()
    token = server.add_user("anna")["token"]
    with fake_wordpress() as wp:
        server.add_destination("wordpress", wp.url, wp.password, f"user={wp.user}")
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert delivery["status"] == "failed"
        assert delivery["error"]["code"] == "publish.private_address"
        assert wp.requests == []


def test_mailed_subject_with_markup_arrives_escaped(start_relay) -> None:
    """A subject like ``<img src=x onerror=…>`` must not become script on the site: the
    Application Password usually belongs to an administrator, whose HTML WordPress keeps."""
    server = start_relay(RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
    anna = server.add_user("anna")
    subject = '<img src=x onerror=alert(1)> "Hej" & <b>'
    with fake_wordpress() as wp:
        server.add_destination("wordpress", wp.url, wp.password, f"user={wp.user}")
        post_id = server.send_mail(
            anna["address"], iphone_mail(anna["address"], phone_jpeg(640, 480), subject=subject)
        )
        post = server.wait_settled(anna["token"], post_id)
        assert post["title"] == subject
        [delivery] = post["deliveries"]
        assert delivery["status"] == "delivered", delivery
        [remote] = wp.posts.values()
        [attachment] = wp.media.values()
        assert remote["title"]["raw"] == html.escape(subject)
        assert attachment["alt_text"] == html.escape(subject)  # the title stands in for alt text
        content = remote["content"]["raw"]
        assert "<img src=x" not in content and f'alt="{html.escape(subject)}"' in content


def test_site_with_plain_permalinks_is_found_by_its_link_header(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_wordpress(permalinks="plain") as wp:
        destination_id = server.add_destination(
            "wordpress", wp.url, wp.password, f"user={wp.user}"
        )["id"]
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["error"]) == ("delivered", None)
        [remote] = wp.posts.values()
        assert delivery["remote_url"] == remote["link"] and len(wp.media) == 1
        # every call went through ?rest_route= (there is no /wp-json/ on such a site), after
        # one look at the front page's Link header
        assert wp.discoveries == ["HEAD"]
        assert {r.path for r in wp.requests} == {"/"}
        assert [r.route for r in wp.requests if r.method == "POST"] == [
            "/wp/v2/media",
            "/wp/v2/media/" + str(remote["featured_media"]),
            "/wp/v2/posts",
        ]
        checked = server.cli("destination", "test", destination_id)
        assert "signed in as Anna" in checked.stdout


def test_credentials_wordpress_does_not_take_are_unauthorized_not_rejected(start_relay) -> None:
    """A site where Application Passwords are unavailable (no HTTPS), or behind a server that
    drops the Authorization header, treats the relay as a visitor: ``status=any`` then gets
    ``400 rest_invalid_param`` (rest_forbidden_status). That is a credentials problem."""
    server, token = crossposting_relay(start_relay)
    with fake_wordpress(application_passwords=False) as wp:
        destination_id = server.add_destination(
            "wordpress", wp.url, wp.password, f"user={wp.user}"
        )["id"]
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
        assert delivery["error"]["code"] == "publish.unauthorized"
        assert wp.posts == {} and wp.media == {}
        # destination test says the same
        failed = server.cli("destination", "test", destination_id, check=False)
        assert failed.returncode != 0 and "publish.unauthorized" in failed.stderr


# --- edits and deletions ------------------------------------------------------------------------


def test_an_edit_updates_the_post_once_and_a_delete_trashes_it(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_wordpress(permalinks="plain") as wp:
        server.add_destination("wordpress", wp.url, wp.password, f"user={wp.user}")
        post = server.upload(token, title="Stavfel", text="Hej")
        assert server.wait_delivery(token, post["id"])["status"] == "delivered"
        [remote] = wp.posts.values()
        [medium] = wp.media.values()
        wp.script("posts.update", LOST)  # updated, then the answer is lost (502)
        life.edit(
            server,
            token,
            post["id"],
            title="Rättat <b>",
            items=[{"id": post["items"][0]["id"], "alt": "Två kor"}],
        )
        life.wait_for(
            lambda: len([r for r in wp.requests if r.route.startswith("/wp/v2/posts/")]) >= 2,
            "the retried update",
        )
        life.wait_for(lambda: life.delivery(server, token, post["id"])["error"] is None, "done")
        assert remote["title"]["raw"] == html.escape("Rättat <b>")
        assert 'alt="Två kor"' in remote["content"]["raw"]
        assert medium["alt_text"] == "Två kor"
        assert remote.get("revisions") == 1  # the repeat changed nothing
        assert len(wp.posts) == 1 and len(wp.media) == 1  # nothing uploaded or posted again

        wp.script("posts.delete", LOST)  # trashed, then the answer is lost
        life.delete(server, token, post["id"])
        life.retracted(server, token, post["id"])
        assert remote["status"] == "trash" and len(wp.posts) == 1  # trashed, not destroyed
        deletes = [r for r in wp.requests if r.method == "DELETE"]
        assert len(deletes) == 2 and all("force" not in r.query for r in deletes)
