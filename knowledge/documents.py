"""Turning uploads into items: TXT and Markdown (split into chunks), CSV and JSONL (one item per
row, `q` and `a` columns), PDF (pypdf) and DOCX (python-docx) as text split into chunks, and
HTML pages fetched from a link (their visible text)."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import PurePath

from knowledge.retrieval import chunk_text

SUFFIXES = (".txt", ".md", ".markdown", ".csv", ".jsonl", ".pdf", ".docx")


class DocumentError(ValueError):
    """An upload that cannot be read; the message says why, for the admin user."""


def document_text(name: str, raw: bytes) -> str:
    """The plain text of a TXT, Markdown, PDF or DOCX file."""
    suffix = PurePath(name).suffix.lower()
    try:
        if suffix == ".pdf":
            from pypdf import PdfReader

            reader = PdfReader(io.BytesIO(raw))
            return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
        if suffix == ".docx":
            import docx

            document = docx.Document(io.BytesIO(raw))
            return "\n\n".join(p.text for p in document.paragraphs if p.text.strip())
    except Exception as exc:  # any parser failure: "cannot read this file"
        raise DocumentError(f"{name}: cannot read this file ({type(exc).__name__}).") from None
    return _decoded(name, raw)


def _decoded(name: str, raw: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentError(f"{name}: not UTF-8 or GB18030 text.")


def qa_rows(name: str, raw: bytes) -> list[tuple[str, str]]:
    """(q, a) rows of a CSV (header `q,a`, or the first two columns) or JSONL file."""
    text = _decoded(name, raw)
    if PurePath(name).suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise DocumentError(f"{name}: line {number} is not JSON.") from None
            if not isinstance(record, dict) or not isinstance(record.get("q"), str):
                raise DocumentError(f"{name}: line {number} has no text 'q'.")
            rows.append((record["q"], str(record.get("a") or "")))
        return rows
    records = list(csv.reader(io.StringIO(text)))
    if records and [cell.strip().lower() for cell in records[0][:2]] in (["q", "a"], ["q"]):
        records = records[1:]
    return [(row[0], row[1] if len(row) > 1 else "") for row in records if row and row[0].strip()]


def file_chunks(name: str, raw: bytes, *, size: int, overlap: int) -> list[tuple[str, str]]:
    """The (q, a) items of one uploaded file."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise DocumentError(f"{name}: unsupported file type (use {', '.join(SUFFIXES)}).")
    if suffix in (".csv", ".jsonl"):
        return qa_rows(name, raw)
    return [
        (chunk, "") for chunk in chunk_text(document_text(name, raw), size=size, overlap=overlap)
    ]


class _VisibleText(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "section"}:
            self.parts.append("\n")

    def handle_endtag(self, tag) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()
