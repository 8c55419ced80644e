"""What an uploaded file is, decided by its content (DESIGN §12).

The name's extension never makes a file acceptable: a renamed executable, image or archive is
refused with what it looks like. Among text files (valid UTF-8 without NUL bytes) the extension
only chooses how the text is read: Markdown, CSV, HTML or plain text.
"""

from __future__ import annotations

import io
import zipfile
from typing import IO

from django.conf import settings

from spokestack.errors import InvalidInput

ACCEPTED = "a PDF, DOCX, HTML, Markdown, text or CSV file"
SNIFF_BYTES = 8192

# (magic bytes at offset 0, what the file looks like)
_MAGIC = [
    (b"MZ", "a Windows program (.exe/.dll)"),
    (b"\x7fELF", "a Linux program"),
    (b"\xcf\xfa\xed\xfe", "a macOS program"),
    (b"\xce\xfa\xed\xfe", "a macOS program"),
    (b"\xca\xfe\xba\xbe", "a macOS program or Java class"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office file (.doc/.xls/.ppt; save it as DOCX or PDF)"),
    (b"{\\rtf", "an RTF file (save it as DOCX or PDF)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"\x00asm", "a WebAssembly program"),
    (b"SQLite format 3\x00", "an SQLite database"),
]

TEXT_EXTENSIONS = {"md": "md", "markdown": "md", "csv": "csv", "html": "html", "htm": "html", "txt": "txt",
                   "text": "txt"}


def _looks_like(head: bytes) -> str | None:
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return {b"WEBP": "a WebP image", b"WAVE": "a WAV audio file", b"AVI ": "an AVI video"}[head[8:12]]
    if head[4:8] == b"ftyp":
        return "a video or HEIC image"
    return None


def _zip_kind(data: bytes) -> tuple[str | None, str]:
    """("docx", "") for a Word document; (None, what it looks like) for any other ZIP."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return None, "a damaged ZIP archive"
    if "word/document.xml" in names:
        return "docx", ""
    if "xl/workbook.xml" in names:
        return None, "an Excel workbook (export it as CSV)"
    if "ppt/presentation.xml" in names:
        return None, "a PowerPoint presentation (save it as PDF)"
    if any(name.startswith("META-INF/") for name in names) and "mimetype" in names:
        return None, "an OpenDocument or EPUB file (save it as DOCX or PDF)"
    return None, "a ZIP archive"


def decode_text(data: bytes) -> str | None:
    """The text of a UTF-8 file (a BOM dropped), or None when it is not text."""
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text[:SNIFF_BYTES] if ord(ch) < 32 and ch not in "\t\n\r\f")
    return None if controls > 2 else text


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def detect_type(*, name: str, data: bytes) -> str:
    """pdf, docx, html, md, csv or txt, from what the bytes are; InvalidInput (400) naming what the
    file looks like otherwise."""
    label = name or "the file"
    if not data:
        raise InvalidInput(f"{label}: the file is empty; upload {ACCEPTED} with content.", details={"file": ["empty"]})
    head = data[:SNIFF_BYTES]
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        kind, what = _zip_kind(data)
        if kind:
            return kind
    else:
        what = _looks_like(head) or ""
    text = decode_text(data) if not what else None
    if text is None:
        raise InvalidInput(f"{label}: is not {ACCEPTED} (it looks like {what or 'binary data'}).",
                           details={"file": [what or "binary data"]})
    by_name = TEXT_EXTENSIONS.get(_extension(name))
    if by_name:
        return by_name
    start = text.lstrip()[:200].lower()
    if start.startswith(("<!doctype html", "<html")):
        return "html"
    return "txt"


def read_upload(uploaded_file: IO[bytes], *, name: str, size: int | None) -> bytes:
    """The upload's bytes, refused (400, naming the cap) above KNOWLEDGE_MAX_UPLOAD_BYTES without
    reading more than the cap."""
    cap = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
    if size is not None and size > cap:
        raise InvalidInput(too_large(name, size, cap), code="too_large", details={"file": [f"at most {cap} bytes"]})
    if hasattr(uploaded_file, "seek"):
        uploaded_file.seek(0)
    data = uploaded_file.read(cap + 1)
    if len(data) > cap:
        raise InvalidInput(too_large(name, len(data), cap), code="too_large",
                           details={"file": [f"at most {cap} bytes"]})
    return data


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def too_large(name: str, size: int, cap: int) -> str:
    return (f"{name or 'the file'}: is {'over ' if size > cap else ''}{_mb(size)}; documents are at most {_mb(cap)} "
            f"({cap} bytes, KNOWLEDGE_MAX_UPLOAD_BYTES). Split it, or upload a smaller export.")
