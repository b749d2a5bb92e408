"""DocumentHandler: a PDF gets a page-one preview when it can be drawn; every document is kept
and served byte for byte, and nothing about a PDF's content fails the item."""

from __future__ import annotations

import asyncio
import hashlib
import io
import multiprocessing
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageStat

from handlers import handler_for
from handlers.document import DocumentHandler
from relay.errors import MediaError
from relay.model import HandlerInput, HandlerOutput, Kind, Limits
from tests.handlers_support import run_handler

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


process = partial(run_handler, DocumentHandler)


def pillow_pdf(path: Path, *pages: tuple[tuple[int, int], str]) -> Path:
    """A PDF with one page per (size in points, colour), drawn by Pillow at 72 dpi."""
    images = [Image.new("RGB", size, colour) for size, colour in pages]
    images[0].save(path, "PDF", resolution=72, save_all=True, append_images=images[1:])
    return path


def handmade_pdf(page: bytes, content: bytes = b"", trailer: bytes = b"") -> bytes:
    """A minimal PDF with a correct cross-reference table, for page attributes Pillow cannot
    write (``/Rotate``) and for an ``/Encrypt`` dictionary."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R " + page + b" >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s >>\n" % (len(objects) + 1, trailer)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def encrypted_pdf(user_password: bytes, owner_password: bytes) -> bytes:
    """A PDF under the standard security handler, revision 2 (RC4, 40-bit), that needs
    ``user_password`` to open (PDF 1.7 §7.6.3, algorithms 2, 3 and 4)."""
    pad = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
    file_id = bytes(range(16))
    permissions = -4
    owner_key = hashlib.md5((owner_password + pad)[:32]).digest()[:5]
    owner_entry = rc4(owner_key, (user_password + pad)[:32])
    key = hashlib.md5(
        (user_password + pad)[:32]
        + owner_entry
        + permissions.to_bytes(4, "little", signed=True)
        + file_id
    ).digest()[:5]
    user_entry = rc4(key, pad)
    encrypt = (
        b"/Encrypt << /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >> /ID [<%s> <%s>]"
        % (
            owner_entry.hex().encode(),
            user_entry.hex().encode(),
            permissions,
            file_id.hex().encode(),
            file_id.hex().encode(),
        )
    )
    return handmade_pdf(b"/MediaBox [0 0 200 200]", trailer=encrypt)


def assert_kept_as_is(output: HandlerOutput) -> None:
    assert output.served_original is None
    assert output.served_original_mime is None


# --- PDF previews ------------------------------------------------------------------------------


def test_pdf_gets_a_page_one_preview(tmp_path: Path) -> None:
    source = pillow_pdf(tmp_path / "a4.pdf", ((595, 842), "red"), ((842, 595), "blue"))
    before = source.read_bytes()
    output = process(source, "application/pdf", tmp_path / "work")
    assert source.read_bytes() == before
    assert_kept_as_is(output)
    [preview] = output.renditions
    assert preview.name == "preview" and preview.mime == "image/jpeg"
    assert preview.path.parent == tmp_path / "work"
    assert (preview.width, preview.height) == (724, 1024)
    with Image.open(preview.path) as image:
        assert image.format == "JPEG" and image.size == (724, 1024)
        assert abs(image.width / image.height - 595 / 842) < 0.002
        red, green, blue = ImageStat.Stat(image).mean
        assert red > 230 and green < 25 and blue < 25  # page one, not page two
    assert preview.pages == 2


def test_preview_records_the_page_count(tmp_path: Path) -> None:
    # LinkedIn takes document posts of up to 300 pages: the relay must know before it uploads.
    source = pillow_pdf(tmp_path / "long.pdf", *[((60, 80), "white")] * 301)
    [preview] = process(source, "application/pdf", tmp_path / "work").renditions
    assert preview.pages == 301


def test_landscape_page(tmp_path: Path) -> None:
    source = pillow_pdf(tmp_path / "slides.pdf", ((960, 540), "white"))
    [preview] = process(source, "application/pdf", tmp_path / "work").renditions
    assert (preview.width, preview.height) == (1024, 576)


def test_small_page_is_drawn_at_full_preview_size(tmp_path: Path) -> None:
    # A PDF is vector: drawing a business card larger is sharper, not blurrier.
    source = pillow_pdf(tmp_path / "card.pdf", ((252, 144), "white"))
    [preview] = process(source, "application/pdf", tmp_path / "work").renditions
    assert (preview.width, preview.height) == (1024, 586)  # 585.14, rounded up by pdfium


def test_rotated_page_is_previewed_as_shown(tmp_path: Path) -> None:
    source = tmp_path / "rotated.pdf"
    # A wide page turned a quarter: shown tall. A red block fills the page's left half, which
    # /Rotate 90 (clockwise) puts at the top.
    content = b"1 0 0 rg 0 0 300 300 re f"
    source.write_bytes(handmade_pdf(b"/MediaBox [0 0 600 300] /Rotate 90", content))
    [preview] = process(source, "application/pdf", tmp_path / "work").renditions
    assert (preview.width, preview.height) == (512, 1024)
    with Image.open(preview.path) as image:
        top = ImageStat.Stat(image.crop((0, 0, 512, 480))).mean
        bottom = ImageStat.Stat(image.crop((0, 544, 512, 1024))).mean
    assert top[0] > 230 and top[1] < 25
    assert min(bottom) > 230


def test_preview_over_the_pixel_limit_is_skipped(tmp_path: Path) -> None:
    source = pillow_pdf(tmp_path / "a4.pdf", ((595, 842), "white"))
    output = process(source, "application/pdf", tmp_path / "work", limits=Limits(max_pixels=1000))
    assert output.renditions == []
    assert_kept_as_is(output)


def test_damaged_pdf_is_kept_without_preview(tmp_path: Path) -> None:
    source = tmp_path / "broken.pdf"
    source.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\n" + bytes(range(256)))
    output = process(source, "application/pdf", tmp_path / "work")
    assert output.renditions == []
    assert_kept_as_is(output)


def test_truncated_pdf_does_not_fail(tmp_path: Path) -> None:
    whole = pillow_pdf(tmp_path / "whole.pdf", ((595, 842), "white")).read_bytes()
    source = tmp_path / "half.pdf"
    source.write_bytes(whole[: len(whole) // 2])
    output = process(source, "application/pdf", tmp_path / "work")  # pdfium may repair it
    assert len(output.renditions) <= 1
    assert_kept_as_is(output)


def test_password_protected_pdf_is_kept_without_preview(tmp_path: Path) -> None:
    source = tmp_path / "secret.pdf"
    source.write_bytes(encrypted_pdf(b"user-secret", b"owner-secret"))
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(source)
    pdfium.PdfDocument(source, password="user-secret").close()  # it is a real, valid PDF
    output = process(source, "application/pdf", tmp_path / "work")
    assert output.renditions == []
    assert_kept_as_is(output)


def test_pdf_without_pages(tmp_path: Path) -> None:
    source = tmp_path / "nothing.pdf"
    document = pdfium.PdfDocument.new()
    document.save(source)
    document.close()
    output = process(source, "application/pdf", tmp_path / "work")
    assert output.renditions == []


def test_concurrent_previews_in_threads(tmp_path: Path) -> None:
    """run_blocking defaults to a thread, and PDFium is not thread-safe: renders take turns."""
    sources = [pillow_pdf(tmp_path / f"{n}.pdf", ((300 + 40 * n, 600), "white")) for n in range(6)]

    async def all_at_once() -> list[HandlerOutput]:
        handler = DocumentHandler()
        jobs = [
            HandlerInput(source, "application/pdf", source.name, tmp_path / f"work{n}")
            for n, source in enumerate(sources)
        ]
        return await asyncio.gather(*(handler.process(job) for job in jobs))

    outputs = asyncio.run(all_at_once())
    for n, output in enumerate(outputs):
        [preview] = output.renditions
        assert preview.height == 1024
        assert abs(preview.width - 1024 * (300 + 40 * n) / 600) < 1


# --- other documents ---------------------------------------------------------------------------


def test_office_document_is_kept_without_renditions(tmp_path: Path) -> None:
    source = tmp_path / "letter.docx"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as docx:
        docx.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        docx.writestr("word/document.xml", '<?xml version="1.0"?><w:document/>')
    source.write_bytes(buffer.getvalue())
    output = process(source, DOCX, tmp_path / "work")
    assert output.renditions == []
    assert_kept_as_is(output)


@pytest.mark.parametrize(
    "mime",
    [
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.oasis.opendocument.text",
        "application/rtf",
        "text/rtf",
    ],
)
def test_other_office_types(mime: str, tmp_path: Path) -> None:
    source = tmp_path / "doc"
    source.write_bytes(b"{\\rtf1 not really}")
    assert process(source, mime, tmp_path / "work") == HandlerOutput()


@pytest.mark.parametrize("mime", ["text/plain", "text/html", "application/zip"])
def test_non_documents_are_unsupported(mime: str, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    with pytest.raises(MediaError) as caught:
        process(source, mime, tmp_path / "work")
    assert caught.value.code == "media.unsupported"


def test_empty_file(tmp_path: Path) -> None:
    source = tmp_path / "empty.pdf"
    source.write_bytes(b"")
    with pytest.raises(MediaError) as caught:
        process(source, "application/pdf", tmp_path / "work")
    assert caught.value.code == "media.empty"


# --- the seam ----------------------------------------------------------------------------------


def test_registry_hands_out_the_document_handler() -> None:
    assert isinstance(handler_for(Kind.DOCUMENT), DocumentHandler)
    assert DocumentHandler.kind is Kind.DOCUMENT


def test_slow_preview_gives_up_and_keeps_the_document(tmp_path: Path) -> None:
    source = pillow_pdf(tmp_path / "a4.pdf", ((595, 842), "white"))

    async def never(fn: Callable[..., Any], *args: Any) -> Any:
        await asyncio.sleep(30)

    output = process(
        source, "application/pdf", tmp_path / "w", limits=Limits(timeout=0.05), run_blocking=never
    )
    assert output == HandlerOutput()


def test_preview_renders_in_a_spawned_process_pool(tmp_path: Path) -> None:
    source = pillow_pdf(tmp_path / "a4.pdf", ((595, 842), "green"))

    async def scenario() -> HandlerOutput:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            loop = asyncio.get_running_loop()

            async def in_pool(fn: Callable[..., Any], *args: Any) -> Any:
                return await loop.run_in_executor(pool, fn, *args)

            job = HandlerInput(source, "application/pdf", source.name, tmp_path / "work")
            job.run_blocking = in_pool
            return await DocumentHandler().process(job)

    [preview] = asyncio.run(scenario()).renditions
    assert (preview.width, preview.height) == (724, 1024)
    assert preview.path.is_file()
