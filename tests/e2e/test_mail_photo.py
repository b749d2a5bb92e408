"""Mail a phone photo to a secret address, as an iPhone sends it, and get working links."""

from __future__ import annotations

import hashlib
import io
import smtplib

import httpx
import pytest
from PIL import Image

from tests.media import GPS_IFD, iphone_mail, phone_jpeg
from tests.server import RelayServer


def assert_no_gps(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    assert not image.getexif().get_ifd(GPS_IFD), "a served image carries a GPS position"
    assert b"http://ns.adobe.com/xap/1.0/" not in data


def test_iphone_photo_becomes_an_upright_post_without_gps(relay: RelayServer) -> None:
    anna = relay.anna
    post_id = relay.send_mail(anna["address"], iphone_mail(anna["address"], phone_jpeg()))
    post = relay.wait_post(anna["token"], post_id)

    assert post["title"] == "Bild från invigningen – åäö"
    assert post["text"] == "Invigningen av torget i dag."
    assert post["url"] == f"{relay.url}/p/{post_id}"
    [item] = post["items"]
    assert (item["kind"], item["status"], item["error"]) == ("image", "ready", None)
    sizes = {r["name"]: (r["width"], r["height"]) for r in item["renditions"]}
    # 4032x3024 stored with Orientation 6 is a portrait 3024x4032 photo.
    # 3:4 is narrower than Instagram's 4:5, but nothing is padded until an Instagram delivery
    # needs it (tests/e2e/test_meta.py): anna has no Instagram channel.
    assert sizes == {"large": (1536, 2048), "medium": (768, 1024), "small": (240, 320)}

    urls = [item["original"]["url"]] + [r["url"] for r in item["renditions"]]
    for url in urls:
        assert url.startswith(relay.url + "/")
        response = httpx.get(url)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-type"] == "image/jpeg"
        assert_no_gps(response.content)
    # The checksum the API gives is that of the cleaned original one downloads.
    served = httpx.get(item["original"]["url"]).content
    assert item["original"]["sha256"] == hashlib.sha256(served).hexdigest()
    assert item["original"]["bytes"] == len(served)

    for rendition in item["renditions"]:
        image = Image.open(io.BytesIO(httpx.get(rendition["url"]).content))
        assert image.size == (rendition["width"], rendition["height"])
        # The red block at the stored top-left ends at the top-right once turned upright.
        r, g, b = image.convert("RGB").getpixel((image.width - 2, 1))
        assert r > 200 and g < 60 and b < 60
        assert image.getexif().get(0x0112) in (None, 1)


def test_unknown_recipient_and_other_domains_are_refused(relay: RelayServer) -> None:
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as smtp:
        smtp.ehlo("x")
        smtp.docmd("MAIL", "FROM:<x@example.org>")
        for rcpt in (
            "nosuchsecret@relay.localhost",
            "someone@example.org",
            relay.anna["address"].split("@")[0] + "@example.org",
        ):
            code, reply = smtp.docmd("RCPT", f"TO:<{rcpt}>")
            assert code == 550 and reply.startswith(b"5.1.1"), (rcpt, code, reply)


def test_message_over_the_size_limit_gets_552_5_3_4(start_relay) -> None:
    server = start_relay(RELAY_MAX_MESSAGE_BYTES="200000")
    anna = server.add_user("anna")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.ehlo("x")
        assert smtp.has_extn("size") and smtp.esmtp_features["size"] == "200000"
        code, reply = smtp.docmd("MAIL", "FROM:<a@example.org> SIZE=300000")
        assert (code, reply[:5]) == (552, b"5.3.4")
        smtp.rset()
        smtp.docmd("MAIL", "FROM:<a@example.org>")
        assert smtp.docmd("RCPT", f"TO:<{anna['address']}>")[0] == 250
        code, reply = smtp.data(b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 4000)
        assert (code, reply[:5]) == (552, b"5.3.4")
    # and the server keeps serving
    post_id = server.send_mail(anna["address"], b"Subject: small\r\n\r\nhello\r\n")
    assert server.wait_post(anna["token"], post_id)["title"] == "small"


def test_revoked_address_is_refused(relay: RelayServer) -> None:
    address = relay.cli("address", "add", "--user", "anna", "--json").stdout
    import json

    address = json.loads(address)["address"]
    relay.send_mail(address, b"Subject: first\r\n\r\nstill live\r\n")
    relay.cli("address", "revoke", address)
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as smtp:
        smtp.ehlo("x")
        smtp.docmd("MAIL", "FROM:<a@example.org>")
        assert smtp.docmd("RCPT", f"TO:<{address}>")[0] == 550


@pytest.mark.parametrize("folder", ["mail-gem", "mail-parser"])
def test_corpus_mail_never_breaks_the_server(relay: RelayServer, corpora, folder: str) -> None:
    anna = relay.anna
    files = sorted(p for p in (corpora / folder).rglob("*") if p.is_file() and p.name != "LICENSE")
    assert len(files) > 20
    post_ids = []
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=60) as smtp:
        for path in files:
            raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            smtp.ehlo("corpus")
            smtp.docmd("MAIL", "FROM:<corpus@example.org>")
            smtp.docmd("RCPT", f"TO:<{anna['address']}>")
            code, reply = smtp.data(raw)
            assert code == 250, (path, reply)
            post_ids.append(reply.decode().rsplit(" ", 1)[1])
    for post_id in post_ids:
        post = relay.wait_post(anna["token"], post_id, timeout=120)
        for item in post["items"]:
            assert item["status"] in ("ready", "failed")
            if item["status"] == "failed":
                assert item["error"]["code"] and item["error"]["message"]
    assert httpx.get(relay.url + "/healthz").status_code == 200
