"""Documents made the way people make them: PDFs written by fpdf2 (pages, headings, an image-only
one, an encrypted one with pypdf's writer), DOCX files by python-docx."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ..tuning.conftest import make_client, platform_catalog  # noqa: F401 - fixtures, by name

VOICE = "Desert Bloom speaks warmly and plainly, like a trusted friend who knows skincare."
TONE = "Never use urgency language such as 'last chance' or 'hurry'; invite, do not pressure."


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Stored files go to a directory of the test's own (the live tests' worker uses the default)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def worker_media(settings):
    """The MEDIA_ROOT a worker of the session reads (the default, as the server's): for tests whose
    documents a real worker may ingest."""
    from spokestack.settings import test

    settings.MEDIA_ROOT = test.MEDIA_ROOT
    return settings.MEDIA_ROOT


def pdf_bytes(pages: list[list[tuple[str, str]]]) -> bytes:
    """A PDF with one page per item; each page a list of (style, text): h1, h2 or p."""
    from fpdf import FPDF

    pdf = FPDF()
    for page in pages:
        pdf.add_page()
        for style, text in page:
            size = {"h1": 20, "h2": 15}.get(style, 11)
            pdf.set_font("helvetica", "B" if style != "p" else "", size)
            if style == "p":
                pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(5)
            else:
                pdf.cell(0, 10, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def guidelines_pdf() -> bytes:
    return pdf_bytes([
        [("h1", "Voice"), ("p", VOICE), ("h2", "Tone"), ("p", TONE)],
        [("h1", "Logo"), ("p", "The logo keeps clear space of one petal on every side; never recolour it.")],
        [("h2", "Colours"), ("p", "Primary colour is desert rose (#C98B7B); accents in sand and sage.")],
    ])


def png_bytes() -> bytes:
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def image_only_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.image(io.BytesIO(png_bytes()), x=10, y=10, w=50)
    return bytes(pdf.output())


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(guidelines_pdf())).pages:
        writer.add_page(page)
    writer.encrypt(user_password="s3cret", owner_password="owner-s3cret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(*, empty: bool = False) -> bytes:
    import docx

    document = docx.Document()
    if not empty:
        document.add_heading("Style guide", level=1)
        document.add_paragraph("Write in British English, in the active voice.")
        document.add_heading("Numbers", level=2)
        document.add_paragraph("Spell out numbers from one to nine; use digits from 10.")
        table = document.add_table(rows=2, cols=2)
        table.cell(0, 0).text, table.cell(0, 1).text = "Say", "Avoid"
        table.cell(1, 0).text, table.cell(1, 1).text = "glow", "flawless"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)
