"""Test inputs made on the spot: phone photos with EXIF, PDFs, mails as phones send them."""

from __future__ import annotations

import io
from email.message import EmailMessage
from email.policy import SMTP

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def phone_jpeg(width: int = 4032, height: int = 3024, orientation: int = 6) -> bytes:
    """A JPEG as an iPhone stores a portrait shot: landscape pixels, Orientation 6, a GPS
    position (Stockholm) and the camera's make and model. A red block marks the top-left of
    the stored pixels, so a test can tell where it ends up."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 4, height // 4), fill=(255, 0, 0))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 13"
    exif.get_ifd(GPS_IFD).update(
        {
            1: "N",
            2: (59.0, 19.0, 45.48),
            3: "E",
            4: (18.0, 4.0, 6.96),
        }
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def blank_pdf(pages: int) -> bytes:
    """A PDF of ``pages`` empty A4 pages (for page limits: pdfium writes hundreds at once)."""
    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(595, 842)
    out = io.BytesIO()
    document.save(out)
    document.close()
    return out.getvalue()


def pdf_bytes() -> bytes:
    out = io.BytesIO()
    page = Image.new("RGB", (595, 842), "white")
    ImageDraw.Draw(page).text((50, 50), "Protokoll", fill="black")
    page.save(out, "PDF", resolution=72)
    return out.getvalue()


def iphone_mail(to: str, jpeg: bytes, subject: str = "Bild från invigningen – åäö") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Anna Andersson <anna@example.se>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<4F1D2C3B-AAAA-BBBB-CCCC-000000000001@example.se>"
    msg["MIME-Version"] = "1.0"
    msg.set_content("Invigningen av torget i dag.\n\nSkickat från min iPhone\n")
    msg.add_attachment(
        jpeg, maintype="image", subtype="jpeg", filename="IMG_0042.jpeg", disposition="inline"
    )
    return msg.as_bytes(policy=SMTP)


def jpeg_part(width: int = 640, height: int = 480) -> tuple[str, bytes, str]:
    """A small upright phone photo as an upload's file part: (filename, bytes, type)."""
    return ("p.jpg", phone_jpeg(width, height, orientation=1), "image/jpeg")
