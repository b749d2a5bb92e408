"""A video post embeds: its page carries og:video and a Twitter player card, /oembed answers
``type: video`` with an iframe of /embed/{id}, and the embed page is a framable player."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx

from tests.clips import ffmpeg, picture, tone
from tests.e2e.test_pages import Head
from tests.server import RelayServer


def _video_post(relay: RelayServer, tmp_path: Path, **data: str) -> dict:
    clip = tmp_path / "clip.webm"
    ffmpeg(*picture("320x240", 1), *tone(), "-c:v", "libvpx-vp9", "-deadline", "realtime",
           "-c:a", "libopus", "-shortest", str(clip))  # fmt: skip
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads", files={"file": ("clip.webm", clip.read_bytes())}, data=data
        )
    assert response.status_code == 202, response.text
    return relay.wait_post(relay.anna["token"], response.json()["id"])


def _renditions(post: dict) -> dict[str, dict]:
    return {r["name"]: r for r in post["items"][0]["renditions"]}


class Body(Head):
    """The head's tags, and the body's video and links."""

    def __init__(self) -> None:
        super().__init__()
        self.videos: list[dict[str, str]] = []
        self.anchors: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        a = {k: v or "" for k, v in attrs}
        if tag == "video":
            self.videos.append(a)
        if tag == "a":
            self.anchors.append(a)


def test_a_video_post_unfurls_as_a_player(relay: RelayServer, tmp_path: Path) -> None:
    post = _video_post(relay, tmp_path, title='Konsert "i parken" <b>live</b>')
    renditions = _renditions(post)
    mp4, poster = renditions["mp4"], renditions["poster"]
    embed_url = f"{relay.url}/embed/{post['id']}"

    page = Body()
    page.feed(httpx.get(post["url"]).text)
    assert page.meta["og:video"] == mp4["url"]
    assert page.meta["og:video:type"] == "video/mp4"
    assert (page.meta["og:video:width"], page.meta["og:video:height"]) == ("320", "240")
    assert "og:video:secure_url" not in page.meta  # this relay is plain http
    assert page.meta["og:image"] == poster["url"]
    assert page.meta["twitter:card"] == "player"
    assert page.meta["twitter:player"] == embed_url
    assert (page.meta["twitter:player:width"], page.meta["twitter:player:height"]) == ("320", "240")

    oembed = httpx.get(f"{relay.url}/oembed", params={"url": post["url"]})
    assert oembed.status_code == 200
    body = oembed.json()
    assert (body["type"], body["width"], body["height"]) == ("video", 320, 240)
    assert body["title"] == 'Konsert "i parken" <b>live</b>'
    assert body["html"] == (
        f'<iframe src="{embed_url}" width="320" height="240" '
        'title="Konsert &quot;i parken&quot; &lt;b&gt;live&lt;/b&gt;" frameborder="0" '
        'allow="fullscreen; picture-in-picture" allowfullscreen></iframe>'
    )
    assert body["thumbnail_url"]
    smaller = httpx.get(f"{relay.url}/oembed", params={"url": post["url"], "maxwidth": 160}).json()
    assert (smaller["width"], smaller["height"]) == (160, 120)
    assert 'width="160" height="120"' in smaller["html"]

    embed = httpx.get(embed_url)
    assert embed.status_code == 200 and embed.headers["content-type"].startswith("text/html")
    csp = embed.headers["content-security-policy"]
    assert "frame-ancestors *" in csp and "unsafe-inline" not in csp
    assert "x-frame-options" not in embed.headers
    assert embed.headers["x-content-type-options"] == "nosniff"
    player = Body()
    player.feed(embed.text)
    [video] = player.videos
    assert (video["src"], video["poster"]) == (mp4["url"], poster["url"])
    assert post["url"] in [a.get("href") for a in player.anchors]
    assert "&lt;b&gt;live&lt;/b&gt;" in embed.text
    assert "<b>" not in embed.text


def test_no_embed_for_private_drafts_pictures_or_unknown_posts(
    relay: RelayServer, tmp_path: Path
) -> None:
    private = _video_post(relay, tmp_path, title="Hemlig", private="true")
    draft = _video_post(relay, tmp_path, title="Utkast", draft="true")
    with relay.client(relay.anna["token"]) as client:
        text = client.post("/api/v1/uploads", data={"title": "Bara text"}).json()
    for post_id in (private["id"], draft["id"], text["id"], "nosuchpost"):
        response = httpx.get(f"{relay.url}/embed/{post_id}", headers={"Accept": "text/html"})
        assert response.status_code == 404, post_id
        assert response.headers["content-type"].startswith("text/html")  # a page, in words
    page = Body()
    page.feed(httpx.get(private["url"]).text)
    assert page.meta["twitter:card"] != "player" and "og:video" not in page.meta
    oembed = httpx.get(f"{relay.url}/oembed?url={quote(text['url'], safe='')}").json()
    assert oembed["type"] == "link"
