"""The upload page (``/upload``) in a real browser: a photo with its alt text and a title; a
30 MB clip whose connection is cut once in the middle, and one whose page is reloaded mid-way,
both resumed over tus where they stopped; several files as one post; accessibility (axe-core)
and both screen widths; and the same form without JavaScript."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from relay.web.app.upload import CHUNK_BYTES
from tests.browser.conftest import axe_violations, screenshots, sign_in
from tests.clips import ffmpeg
from tests.media import phone_jpeg
from tests.server import RelayServer

CLIP_BYTES = 30_000_000
PICK = "Pick photos, videos, sound or documents"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("files")
    photo = folder / "harbour.jpg"
    photo.write_bytes(phone_jpeg(1200, 900))
    pier = folder / "pier.jpg"
    pier.write_bytes(phone_jpeg(900, 1200, orientation=1))
    clip = folder / "opening.mp4"
    # Noise compresses badly: a short, small clip that still weighs 30 MB.
    ffmpeg(
        "-f", "lavfi", "-i", "nullsrc=s=640x360:d=6:r=25,geq=random(1)*255:128:128",
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
        "-fs", str(CLIP_BYTES), str(clip),
    )  # fmt: skip
    assert clip.stat().st_size > 3 * CHUNK_BYTES, clip.stat().st_size
    return {"photo": photo, "pier": pier, "clip": clip}


def _posts(web: RelayServer) -> list[dict]:
    with web.client(web.anna["token"]) as client:  # type: ignore[attr-defined]
        return client.get("/api/v1/posts").json()["posts"]


def _newest_processed(web: RelayServer) -> dict:
    """The newest post once its items are processed (their originals stored)."""
    return web.wait_post(web.anna["token"], _posts(web)[0]["id"], timeout=600)  # type: ignore[attr-defined]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(page: Page, cut: Callable[[int], bool] = lambda n: False) -> list[int | None]:
    """What the page sends to the tus door: None for each creation, the Upload-Offset of each
    PATCH; ``cut(n)`` says whether the n-th PATCH loses its connection before it arrives."""
    sent: list[int | None] = []

    def handle(route: Route) -> None:
        request = route.request
        if request.method == "POST":
            sent.append(None)
        elif request.method == "PATCH":
            sent.append(int(request.headers["upload-offset"]))
            if cut(sum(1 for s in sent if s is not None)):
                route.abort("connectionreset")
                return
        route.continue_()

    page.route("**/api/v1/tus/**", handle)
    return sent


def _file_row(page: Page, name: str) -> Locator:
    return page.get_by_role("listitem").filter(has_text=name)


def test_a_photo_with_alt_text_and_a_title(
    web: RelayServer, page: Page, files: dict[str, Path]
) -> None:
    before = len(_posts(web))
    sign_in(page, web)
    page.get_by_role("link", name="Upload").click()
    expect(page.get_by_role("heading", name="Upload")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "upload-empty")

    page.get_by_label(PICK).set_input_files(str(files["photo"]))
    alt = page.get_by_label("Alt text for harbour.jpg")
    expect(alt).to_be_visible()  # asked for, next to the file, not hidden
    alt.fill("Fishing boats in the harbour at dawn")
    page.get_by_label("Title").fill("Morning at the harbour")
    page.get_by_label("Tags").fill("harbour, morning")
    expect(_file_row(page, "harbour.jpg").get_by_role("status")).to_have_text("Uploaded")
    assert axe_violations(page) == []
    screenshots(page, "upload-photo")
    page.get_by_role("button", name="Send").click()

    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    expect(page.get_by_role("link", name="Morning at the harbour")).to_be_visible()
    assert len(_posts(web)) == before + 1
    post = _newest_processed(web)
    assert post["title"] == "Morning at the harbour"
    assert post["tags"] == ["harbour", "morning"]
    [item] = post["items"]
    assert item["filename"] == "harbour.jpg"
    assert item["alt"] == "Fishing boats in the harbour at dawn"
    assert item["kind"] == "image" and item["status"] == "ready"


def test_a_clip_cut_off_once_resumes_and_goes_with_a_photo_as_one_post(
    web: RelayServer, page: Page, files: dict[str, Path]
) -> None:
    sign_in(page, web)
    page.goto(web.url + "/upload")
    sent = _record(page, cut=lambda n: n == 2)  # the clip's second chunk never arrives
    page.get_by_label(PICK).set_input_files(str(files["clip"]))
    expect(_file_row(page, "opening.mp4").get_by_role("status")).to_have_text(
        "Uploaded", timeout=120_000
    )
    page.get_by_label(PICK).set_input_files(str(files["photo"]))
    page.get_by_label("Alt text for harbour.jpg").fill("The harbour from the pier")
    page.get_by_label("Title").fill("Opening night")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()

    size = files["clip"].stat().st_size
    # One creation for the clip; after the cut the same upload goes on from where it stopped,
    # never from zero, and never as a second upload.
    clip = sent[: sent.index(None, 1)]
    assert clip[0] is None and None not in clip[1:]
    assert clip[1:3] == [0, CHUNK_BYTES]  # the second PATCH, cut
    assert clip[3] == CHUNK_BYTES  # sent again from its offset
    assert clip[1:] == sorted(clip[1:]) and clip[-1] < size
    post = _newest_processed(web)
    assert post["title"] == "Opening night"
    assert [i["filename"] for i in post["items"]] == ["opening.mp4", "harbour.jpg"]
    assert post["items"][0]["original"]["sha256"] == _sha256(files["clip"])
    assert [i["alt"] for i in post["items"]] == [None, "The harbour from the pier"]
    expect(page.get_by_role("link", name="Opening night")).to_be_visible()


def test_a_reload_mid_upload_resumes_where_it_stopped(
    web: RelayServer, page: Page, files: dict[str, Path]
) -> None:
    sign_in(page, web)
    page.goto(web.url + "/upload")
    sent = _record(page, cut=lambda n: n >= 2)  # after the first chunk the line stays down
    page.get_by_label(PICK).set_input_files(str(files["clip"]))
    expect(_file_row(page, "opening.mp4").get_by_role("status")).to_contain_text(
        "trying again", timeout=60_000
    )
    screenshots(page, "upload-retrying")
    page.reload()  # with the line still down: no retry of the old page gets through
    page.unroute("**/api/v1/tus/**")
    after = _record(page)
    page.get_by_label(PICK).set_input_files(str(files["clip"]))  # a page forgets picked files
    status = _file_row(page, "opening.mp4").get_by_role("status")
    expect(status).to_have_text("Uploaded", timeout=120_000)
    assert sent[0] is None and sent[1] == 0
    assert None not in after  # no new upload: the stored one goes on
    assert after[0] == CHUNK_BYTES, (sent, after)
    page.get_by_label("Title").fill("Reloaded")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("link", name="Reloaded")).to_be_visible()
    post = _newest_processed(web)
    assert post["title"] == "Reloaded"
    assert post["items"][0]["original"]["sha256"] == _sha256(files["clip"])


def test_without_javascript_the_same_form_sends_the_files(
    web: RelayServer, browser: Browser, files: dict[str, Path]
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, web)
        page.goto(web.url + "/upload")
        page.get_by_label(PICK).set_input_files([str(files["photo"]), str(files["pier"])])
        page.get_by_label("Alt text: describe each picture").fill("First view\nSecond view")
        page.get_by_label("Title").fill("Sent without scripts")
        page.get_by_label("Keep as a draft").check()
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
        post = _posts(web)[0]
        assert post["title"] == "Sent without scripts"
        assert post["state"] == "draft"
        assert [i["alt"] for i in post["items"]] == ["First view", "Second view"]
        # Nothing picked and nothing written: the form says what to do, and keeps the page.
        page.goto(web.url + "/upload")
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("alert")).to_contain_text("Pick at least one file")
        expect(page.get_by_label("Alt text: describe each picture")).to_be_visible()
        screenshots(page, "upload-without-javascript")
    finally:
        context.close()
