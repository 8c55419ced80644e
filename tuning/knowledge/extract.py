"""Text with its structure out of a document, then chunks for search (DESIGN §12).

`extract` turns a file into `Block`s: a paragraph with the heading path above it and, for a PDF,
its page. `chunk_blocks` packs consecutive paragraphs of one section and one page into chunks of
about KNOWLEDGE_CHUNK_CHARS, so every chunk can be cited by its section and page. Failures are
`ExtractionError`s whose message the uploader can act on ("is password-protected: …").
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

from django.conf import settings

from .files import decode_text

SEPARATOR = " › "


class ExtractionError(Exception):
    """Why a document cannot be indexed, in words the uploader can act on."""


@dataclass(frozen=True)
class Block:
    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True)
class ChunkText:
    text: str
    heading: str
    page: int | None


@dataclass
class Extracted:
    blocks: list[Block]
    pages: int | None = None


Progress = Callable[[int], None]


def _clean(text: str) -> str:
    return " ".join(text.replace("\x00", "").split())


class _Outline:
    """The heading path as headings of each level arrive."""

    def __init__(self) -> None:
        self.levels: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> None:
        self.levels = [(lvl, t) for lvl, t in self.levels if lvl < level] + [(level, _clean(title))]

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.levels if t)


# --- PDF --------------------------------------------------------------------------------------


@dataclass
class _Line:
    text: str
    size: float
    y: float | None


def _pdf_lines(page) -> list[_Line]:
    """The page's lines with their font size and height, from pypdf's text visitor."""
    lines: list[_Line] = []
    parts: list[str] = []
    sizes: list[float] = []
    ys: list[float] = []

    def close() -> None:
        text = _clean("".join(parts))
        if text:
            lines.append(_Line(text, max(sizes) if sizes else 0.0, ys[0] if ys else None))
        parts.clear()
        sizes.clear()
        ys.clear()

    def visit(text, cm, tm, font_dict, font_size) -> None:
        scale = (abs(tm[0] * tm[3]) ** 0.5 or 1.0) * (abs(cm[0] * cm[3]) ** 0.5 or 1.0)
        pieces = text.split("\n")
        for index, piece in enumerate(pieces):
            if index:
                close()
            if piece.strip():
                parts.append(piece)
                sizes.append(round(float(font_size) * scale, 1))
                ys.append(float(tm[5]) * (cm[3] or 1.0) + float(cm[5]))

    page.extract_text(visitor_text=visit)
    close()
    return lines


def _extract_pdf(data: bytes, progress: Progress | None) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("is password-protected: upload a copy without a password.")
        count = len(reader.pages)
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
            raise ExtractionError("is password-protected: upload a copy without a password.") from None
        raise ExtractionError(f"could not be read as a PDF ({exc}); export it again, or upload a DOCX.") from None
    cap = settings.KNOWLEDGE_MAX_PAGES
    if count > cap:
        raise ExtractionError(f"has {count} pages; documents are at most {cap} pages (KNOWLEDGE_MAX_PAGES). Split it.")
    if count == 0:
        raise ExtractionError("has no pages.")
    pages: list[list[_Line]] = []
    step = max(1, count // 10)
    for number, page in enumerate(reader.pages, start=1):
        try:
            pages.append(_pdf_lines(page))
        except Exception:  # noqa: BLE001 - one unreadable page must not lose the rest
            pages.append([_Line(_clean(t), 0.0, None) for t in (page.extract_text() or "").splitlines() if t.strip()])
        if progress is not None and (number % step == 0 or number == count):
            progress(int(number * 90 / count))
    weights: Counter[float] = Counter()
    for lines in pages:
        for line in lines:
            weights[line.size] += len(line.text)
    if not weights:
        raise ExtractionError("has no text layer (scanned images?): upload a PDF with text, or a DOCX.")
    body = weights.most_common(1)[0][0]
    heading_sizes = sorted({line.size for lines in pages for line in lines
                            if body and line.size >= body * 1.15 and len(line.text) <= 120}, reverse=True)
    level_of = {size: index + 1 for index, size in enumerate(heading_sizes[:6])}
    outline = _Outline()
    blocks: list[Block] = []
    for number, lines in enumerate(pages, start=1):
        paragraph: list[str] = []
        previous: _Line | None = None

        def flush(page_number: int = number, paragraph: list[str] = paragraph) -> None:
            if paragraph:
                blocks.append(Block(" ".join(paragraph), outline.path, page_number))
                paragraph.clear()

        for line in lines:
            level = level_of.get(line.size) if len(line.text) <= 120 else None
            if level is not None:
                flush()
                outline.enter(level, line.text)
                previous = None
                continue
            if previous is not None and previous.y is not None and line.y is not None and line.size:
                if abs(previous.y - line.y) > line.size * 1.75:
                    flush()
            paragraph.append(line.text)
            previous = line
        flush()
    return Extracted(blocks, pages=count)


# --- DOCX -------------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre|título)\s*(\d)$", re.IGNORECASE)


def _extract_docx(data: bytes, progress: Progress | None) -> Extracted:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - python-docx raises many kinds for a damaged file
        raise ExtractionError(f"could not be read as a DOCX ({type(exc).__name__}); save it again from Word.") from None
    outline = _Outline()
    blocks: list[Block] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = _clean(item.text)
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            match = _HEADING_STYLE.match(style.strip())
            if match or style.strip().lower() == "title":
                outline.enter(int(match.group(1)) if match else 0, text)
                continue
            blocks.append(Block(text, outline.path))
        elif isinstance(item, Table):
            for row in item.rows:
                cells: list[str] = []
                for cell in row.cells:
                    value = _clean(cell.text)
                    if value and (not cells or cells[-1] != value):  # merged cells repeat
                        cells.append(value)
                if cells:
                    blocks.append(Block(" | ".join(cells), outline.path))
    if progress is not None:
        progress(90)
    return Extracted(blocks)


# --- HTML -------------------------------------------------------------------------------------

_BLOCK_TAGS = {"p", "div", "section", "article", "header", "footer", "li", "ul", "ol", "tr", "table", "br",
               "blockquote", "pre", "dd", "dt", "dl", "main", "aside", "nav", "figure", "figcaption", "hr",
               "form", "address"}
_SKIPPED = {"script", "style", "noscript", "template", "svg", "head"}


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outline = _Outline()
        self.blocks: list[Block] = []
        self.buffer: list[str] = []
        self.skipping = 0
        self.heading_level: int | None = None
        self.title: list[str] = []
        self.in_title = False

    def flush(self) -> None:
        text = _clean(" ".join(self.buffer))
        self.buffer.clear()
        if not text:
            return
        if self.heading_level is not None:
            self.outline.enter(self.heading_level, text)
        else:
            self.blocks.append(Block(text, self.outline.path))

    def handle_starttag(self, tag, attrs) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
            return
        if tag == "title":
            self.in_title = True
        if re.fullmatch(r"h[1-6]", tag):
            self.flush()
            self.heading_level = int(tag[1])
        elif tag in _BLOCK_TAGS:
            self.flush()
        elif tag in ("td", "th"):
            self.buffer.append(" | " if self.buffer else "")

    def handle_startendtag(self, tag, attrs) -> None:
        if tag in _BLOCK_TAGS:
            self.flush()

    def handle_endtag(self, tag) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
            return
        if tag == "title":
            self.in_title = False
        if re.fullmatch(r"h[1-6]", tag):
            self.flush()
            self.heading_level = None
        elif tag in _BLOCK_TAGS:
            self.flush()

    def handle_data(self, data) -> None:
        if self.skipping:
            return
        self.buffer.append(data)


def _extract_html(text: str) -> Extracted:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    parser.flush()
    return Extracted(parser.blocks)


# --- Markdown, text, CSV -------------------------------------------------------------------------

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _paragraphs(lines: Iterator[str] | list[str]) -> Iterator[str]:
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line.strip())
        elif current:
            yield " ".join(current)
            current = []
    if current:
        yield " ".join(current)


def _extract_markdown(text: str) -> Extracted:
    outline = _Outline()
    blocks: list[Block] = []
    section: list[str] = []
    fenced = False

    def flush() -> None:
        for paragraph in _paragraphs(section):
            blocks.append(Block(_clean(paragraph), outline.path))
        section.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _MD_HEADING.match(line)
        if match:
            flush()
            outline.enter(len(match.group(1)), match.group(2))
        else:
            section.append(line)
    flush()
    return Extracted(blocks)


def _extract_text(text: str) -> Extracted:
    return Extracted([Block(_clean(p)) for p in _paragraphs(text.splitlines())])


def _extract_csv(text: str) -> Extracted:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    if not rows:
        return Extracted([])
    header = [_clean(cell) for cell in rows[0]]
    blocks = [Block(" | ".join(header))]
    for row in rows[1:]:
        cells = [f"{header[i]}: {_clean(cell)}" if i < len(header) and header[i] else _clean(cell)
                 for i, cell in enumerate(row) if cell.strip()]
        blocks.append(Block("; ".join(cells)))
    return Extracted(blocks)


def extract(*, data: bytes, file_type: str, progress: Progress | None = None) -> Extracted:
    """The blocks of a document of `file_type` (files.detect_type); ExtractionError when it has no
    text to index."""
    if file_type == "pdf":
        result = _extract_pdf(data, progress)
    elif file_type == "docx":
        result = _extract_docx(data, progress)
    else:
        text = decode_text(data)
        if text is None:
            raise ExtractionError("is not text in UTF-8; save it as UTF-8 text.")
        result = {"html": _extract_html, "md": _extract_markdown, "csv": _extract_csv}.get(
            file_type, _extract_text)(text)
    if not any(block.text for block in result.blocks):
        if file_type == "pdf":
            raise ExtractionError("has no text layer (scanned images?): upload a PDF with text, or a DOCX.")
        raise ExtractionError("has no text: it is empty, or all of it is in images.")
    return result


# --- chunks -----------------------------------------------------------------------------------


def _split_long(text: str, limit: int) -> Iterator[str]:
    """A paragraph longer than `limit`, cut at sentence ends (else at spaces)."""
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind(". "), window.rfind("! "), window.rfind("? "))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 4:
            cut = limit - 1
        yield text[:cut + 1].strip()
        text = text[cut + 1:].strip()
    if text:
        yield text


def chunk_blocks(blocks: list[Block], *, chunk_chars: int | None = None) -> list[ChunkText]:
    """Chunks of about `chunk_chars` on paragraph boundaries; a chunk never spans two sections or
    two pages, so its heading path and page are its citation."""
    limit = chunk_chars or settings.KNOWLEDGE_CHUNK_CHARS
    chunks: list[ChunkText] = []
    current: list[str] = []
    key: tuple[tuple[str, ...], int | None] | None = None

    def close() -> None:
        if current and key is not None:
            chunks.append(ChunkText("\n\n".join(current), SEPARATOR.join(key[0])[:500], key[1]))
        current.clear()

    for block in blocks:
        if not block.text:
            continue
        block_key = (block.headings, block.page)
        if block_key != key:
            close()
            key = block_key
        for piece in _split_long(block.text, limit):
            if current and sum(len(p) + 2 for p in current) + len(piece) > limit:
                close()
            current.append(piece)
    close()
    return chunks
