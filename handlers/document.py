"""Documents: always kept and served byte for byte; a PDF also gets a preview of page one, which
records the document's page count (``pages``).

A document that cannot be previewed (damaged, password-protected, empty of pages, too costly)
still succeeds without renditions: the download is the point, the preview a courtesy. So nothing
about the PDF itself fails the item; only a type this handler does not know does.

The render runs in ``_render_pdf_preview`` through ``job.run_blocking`` (a process pool in
serve). PDFium keeps process-wide state and is not thread-safe, so every use of it in one process
goes through one lock, which matters when run_blocking is a thread.
"""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pypdfium2 as pdfium

from relay.errors import MediaError
from relay.model import HandlerInput, HandlerOutput, Kind, RenditionFile

PDF: Final = "application/pdf"
OFFICE_MIMES: Final[frozenset[str]] = frozenset(
    {
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/rtf",
        "text/rtf",  # what libmagic says for RTF
    }
)
OFFICE_PREFIXES: Final = (
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
)

PREVIEW: Final = "preview"
PREVIEW_LONG_SIDE: Final = 1024

_PDFIUM: Final = threading.Lock()


def accepts(mime: str) -> bool:
    """Whether DocumentHandler takes this sniffed type (plain text is not a document here)."""
    return mime == PDF or mime in OFFICE_MIMES or mime.startswith(OFFICE_PREFIXES)


class DocumentHandler:
    kind = Kind.DOCUMENT

    async def process(self, job: HandlerInput) -> HandlerOutput:
        if not accepts(job.mime):
            raise MediaError("media.unsupported", f"not a document type: {job.mime}")
        if job.source.stat().st_size == 0:
            raise MediaError("media.empty")
        if job.mime != PDF:
            return HandlerOutput()
        job.workdir.mkdir(parents=True, exist_ok=True)
        job.progress(0.0)
        target = job.workdir / f"{PREVIEW}.jpg"
        try:
            preview: _Preview | None = await asyncio.wait_for(
                job.run_blocking(
                    _render_pdf_preview,
                    job.source,
                    target,
                    job.limits.max_pixels,
                    job.limits.timeout,
                ),
                timeout=job.limits.timeout,
            )
        except TimeoutError:
            preview = None  # a PDF too costly to draw is still a document to download
        job.progress(1.0)
        if preview is None:
            return HandlerOutput()
        rendition = RenditionFile(
            PREVIEW,
            preview.path,
            "image/jpeg",
            width=preview.width,
            height=preview.height,
            pages=preview.pages,
        )
        return HandlerOutput(renditions=[rendition])


@dataclass(frozen=True, slots=True)
class _Preview:
    path: Path
    width: int
    height: int
    pages: int
    """The document's page count (LinkedIn takes document posts of up to 300 pages)."""


def _render_pdf_preview(
    source: Path, target: Path, max_pixels: int, wait: float
) -> _Preview | None:
    # A render stuck on a hostile PDF holds the lock; later ones give up instead of piling up.
    if not _PDFIUM.acquire(timeout=min(wait, threading.TIMEOUT_MAX)):
        return None
    try:
        try:
            pdf = pdfium.PdfDocument(source)
        except pdfium.PdfiumError:
            return None  # damaged, or needs a password
        try:
            return _render_first_page(pdf, target, max_pixels)
        except (pdfium.PdfiumError, ValueError, OSError):
            return None
        finally:
            pdf.close()
    finally:
        _PDFIUM.release()


def _render_first_page(pdf: pdfium.PdfDocument, target: Path, max_pixels: int) -> _Preview | None:
    if len(pdf) == 0:
        return None
    page = pdf[0]
    width, height = page.get_size()  # points, with the page's /Rotate applied
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        return None
    # pypdfium2 sizes the bitmap as ceil(side * scale); keep the long side from rounding past it.
    scale = (PREVIEW_LONG_SIDE - 1e-6) / max(width, height)
    if math.ceil(width * scale) * math.ceil(height * scale) > max_pixels:
        return None
    image = page.render(scale=scale).to_pil().convert("RGB")
    image.save(target, "JPEG", quality=85, optimize=True, progressive=True)
    return _Preview(target, image.width, image.height, len(pdf))
