"""The upload page's form as a browser without JavaScript sends it: the channels ticked (and
none), a publish time on the person's own clock, and a form without its CSRF token."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.test_tus_session import _signed_in
from tests.media import jpeg_part
from tests.server import RelayServer


def test_channels_ticked_a_local_publish_time_and_the_csrf_check(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay(RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
    anna = server.add_user("anna")
    server.cli("user", "timezone", "anna", "Europe/Stockholm")
    news = server.add_destination("webhook", "http://127.0.0.1:9/news")
    blog = server.add_destination("webhook", "https://blog.example.org/hook")
    client, csrf = _signed_in(server, "anna")
    api = server.client(anna["token"])
    try:
        page = client.get("/upload")
        assert page.status_code == 200
        assert "Europe/Stockholm" in page.text
        assert page.text.count('name="destinations"') == 2
        assert f'value="{blog["id"]}" checked' in page.text  # every channel ticked at first
        assert "Webhook (blog.example.org)" in page.text  # the host, never the URL's path
        swedish = client.get("/upload", headers={"Accept-Language": "sv-SE"}).text
        assert "Välj foton, videor, ljud eller dokument" in swedish and ">Skicka<" in swedish

        def send(**fields: str | list[str]) -> int:
            answer = client.post(
                "/upload", files={"file": jpeg_part()}, data={"csrf_token": csrf, **fields}
            )
            return answer.status_code

        assert send(title="Only the news", channels_shown="1", destinations=[news["id"]]) == 303
        post = server.wait_post(anna["token"], api.get("/api/v1/posts").json()["posts"][0]["id"])
        assert [d["destination"] for d in post["deliveries"]] == [news["id"]]

        assert send(title="Nowhere else", channels_shown="1") == 303
        post = server.wait_post(anna["token"], api.get("/api/v1/posts").json()["posts"][0]["id"])
        assert post["title"] == "Nowhere else" and post["deliveries"] == []

        assert send(title="Midsummer", publish_local="2030-06-20T09:00") == 303
        post = api.get("/api/v1/posts").json()["posts"][0]
        assert post["title"] == "Midsummer" and post["state"] == "scheduled"
        assert post["publish_at"].startswith("2030-06-20T07:00:00")  # 09:00 in Stockholm

        bad_time = send(title="Never", publish_local="the day after tomorrow")
        assert bad_time == 422
        count = len(api.get("/api/v1/posts").json()["posts"])
        without = client.post("/upload", files={"file": jpeg_part()}, data={"title": "Forged"})
        assert without.status_code == 403
        assert "This form has expired" in without.text
        assert len(api.get("/api/v1/posts").json()["posts"]) == count
    finally:
        client.close()
        api.close()
