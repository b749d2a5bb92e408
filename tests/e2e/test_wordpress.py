"""Cross-posting to WordPress (REST API, Application Password) against a strict local fake."""

from __future__ import annotations

import time

import httpx

from tests.fakes.wordpress import LOST, fake_wordpress
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
