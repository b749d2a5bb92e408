"""kill -9 after 250: a restart finishes the post and loses nothing."""

from __future__ import annotations

from tests.media import iphone_mail, phone_jpeg


def test_kill_9_after_250_then_restart_finishes_the_post(start_relay, tmp_path) -> None:
    # No workers: the post is acknowledged but nothing has processed it when the kill comes.
    server = start_relay(tmp_path / "node", RELAY_WORKERS="0")
    anna = server.add_user("anna")
    server.send_mail(anna["address"], iphone_mail(anna["address"], phone_jpeg(1200, 900)))
    post_id = server.send_mail(anna["address"], iphone_mail(anna["address"], phone_jpeg(1200, 900)))
    server.kill()

    server.env["RELAY_WORKERS"] = "2"
    server.start()
    post = server.wait_post(anna["token"], post_id)
    assert post["title"] == "Bild från invigningen – åäö"
    assert [i["status"] for i in post["items"]] == ["ready"]
    with server.client(anna["token"]) as client:
        assert len(client.get("/api/v1/posts").json()["posts"]) == 2


def test_kill_9_while_processing_then_restart(start_relay, tmp_path) -> None:
    server = start_relay(tmp_path / "node")
    anna = server.add_user("anna")
    with server.client(anna["token"]) as client:
        posts = [
            client.post(
                "/api/v1/uploads",
                files={"file": (f"{n}.jpg", phone_jpeg(3000, 2000), "image/jpeg")},
            ).json()
            for n in range(3)
        ]
    server.kill()  # mid-processing, most likely
    server.start()
    for post in posts:
        done = server.wait_post(anna["token"], post["id"])
        assert [i["status"] for i in done["items"]] == ["ready"]
    leftovers = list((server.data_dir / "spool" / "ready").iterdir())
    assert leftovers == []
