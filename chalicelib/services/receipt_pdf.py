"""A one-page PDF of a signed receipt, for customers who file paper rather than JSON.

Written by hand with the standard library only (no reportlab/fpdf in the Lambda bundle): PDF 1.4, one A4
page, the base-14 Helvetica / Helvetica-Bold / Courier fonts in WinAnsiEncoding (nothing embedded). Text is
wrapped with the fonts' AFM widths so nothing runs off the page, and whatever still does not fit is cut with
an ellipsis: the output is always exactly one page. No wall-clock time is read (CreationDate is the receipt's
``generatedAt``), so the same view always renders the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.deltas import format_delta

__all__ = ["render_receipt_pdf"]

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN = 50
VALUE_X = 180  # where values start, right of their labels
BOTTOM = MARGIN
ELLIPSIS = "\u2026"  # WinAnsi 0x85
STATEMENT_COLUMNS, STATEMENT_LINES = 120, 12  # Courier 6.5 pt: 120 characters fill the text width

# Resource names → base-14 fonts. Widths per 1000 em of the printable ASCII range (32 to 126), from Adobe's
# core AFM files; every other WinAnsi glyph is at most 1000 wide, which is what we assume for it.
FONTS = {"F1": "Helvetica", "F2": "Helvetica-Bold", "F3": "Courier"}
REGULAR, BOLD, MONO = "F1", "F2", "F3"
_ASCII_WIDTHS = {
    REGULAR: (
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556,
        556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278,
        500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469,
        556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500,
        278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584),
    BOLD: (
        278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556,
        556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278,
        556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584,
        556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556,
        333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584),
}
_OTHER_WIDTH = 1000


@dataclass(frozen=True)
class _Segment:
    font: str
    size: float
    x: float
    width: float  # the room this text may take, for the ellipsis when the page runs out
    text: str


@dataclass(frozen=True)
class _Line:
    segments: tuple[_Segment, ...]
    leading: float  # distance from the previous baseline


def winansi(text: str) -> str:
    """The text as WinAnsi can show it: anything else (and control characters) becomes '?'."""
    clean = "".join("?" if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in text)
    return clean.encode("cp1252", errors="replace").decode("cp1252")


def text_width(text: str, font: str, size: float) -> float:
    if font == MONO:
        return len(text) * 600 * size / 1000
    widths = _ASCII_WIDTHS[font]
    return sum(widths[ord(c) - 32] if 32 <= ord(c) < 127 else _OTHER_WIDTH for c in text) * size / 1000


def _fit(text: str, font: str, size: float, width: float) -> int:
    """How many leading characters of ``text`` fit in ``width`` (at least one, so wrapping always advances)."""
    n = 1
    while n < len(text) and text_width(text[:n + 1], font, size) <= width:
        n += 1
    return n


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap; a word wider than the line (ids, hashes, URLs) is broken where it reaches the edge."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if text_width(candidate, font, size) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while text_width(current, font, size) > width:
            cut = _fit(current, font, size, width)
            lines.append(current[:cut])
            current = current[cut:]
    lines.append(current)
    return lines


def with_ellipsis(text: str, font: str, size: float, width: float) -> str:
    """``text`` shortened until it and a trailing ellipsis fit in ``width``."""
    while text and text_width(text + ELLIPSIS, font, size) > width:
        text = text[:-1]
    return text.rstrip() + ELLIPSIS


def _cap(lines: list[str], limit: int, font: str, size: float, width: float) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit - 1], with_ellipsis(lines[limit - 1], font, size, width)]


def wrap_capped(text: str, font: str, size: float, width: float, max_lines: int) -> list[str]:
    """At most ``max_lines`` wrapped lines, the last ending in an ellipsis when text was left out. Only as
    many characters as could ever fit are wrapped (the narrowest glyph is 191/1000 em), so a huge value
    costs no more than a long one."""
    per_line = int(width * 1000 / (191 * size)) + 1
    return _cap(wrap(winansi(text[:max_lines * per_line + 1]), font, size, width), max_lines, font, size, width)


class _Layout:
    """Builds the page top-down as lines of positioned text segments."""

    def __init__(self) -> None:
        self.lines: list[_Line] = []

    def text(self, text: str, font: str = REGULAR, size: float = 10, *, leading: float = 14,
             max_lines: int = 3) -> None:
        width = PAGE_WIDTH - 2 * MARGIN
        for i, part in enumerate(wrap_capped(text, font, size, width, max_lines)):
            self.lines.append(_Line((_Segment(font, size, MARGIN, width, part),), leading if i == 0 else size + 3))

    def heading(self, text: str) -> None:
        self.text(text, BOLD, 11, leading=24)

    def field(self, label: str, value: str, font: str = REGULAR, size: float = 10, *, max_lines: int = 3) -> None:
        """A bold label on the left and its value wrapped in the column to its right."""
        width = PAGE_WIDTH - MARGIN - VALUE_X
        values = wrap_capped(value, font, size, width, max_lines)
        label_segment = _Segment(BOLD, 9, MARGIN, VALUE_X - MARGIN - 6, winansi(label))
        for i, part in enumerate(values):
            segment = _Segment(font, size, VALUE_X, width, part)
            self.lines.append(_Line((label_segment, segment) if i == 0 else (segment,), 14 if i == 0 else size + 3))

    def placed(self, top: float) -> list[tuple[float, _Segment]]:
        """Baselines for every segment from ``top`` down; when the page runs out, the last line that fits
        ends in an ellipsis and the rest is dropped."""
        placed: list[tuple[float, _Segment]] = []
        y = top
        for line in self.lines:
            if y - line.leading < BOTTOM:
                if placed:
                    y_last, last = placed[-1]
                    placed[-1] = (y_last, _Segment(last.font, last.size, last.x, last.width,
                                                   with_ellipsis(last.text, last.font, last.size, last.width)))
                break
            y -= line.leading
            placed += [(y, segment) for segment in line.segments]
        return placed


def _show(value: Any) -> str:
    """Amounts as exact decimal text (no exponent), absent values as 'none'."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Decimal):
        return format_delta(value)
    if isinstance(value, float):
        return format_delta(Decimal(repr(value)))
    return str(value)


def _layout(view: dict[str, Any]) -> _Layout:
    page = _Layout()
    page.heading("Summary")
    page.field("Customer", _show(view.get("customerId")))
    page.field("Period", _show(view.get("period")))
    page.field("Start date", _show(view.get("startDate")))
    page.field("End date (exclusive)", _show(view.get("endDate")))
    page.field("Starting balance", _show(view.get("startingBalance")), BOLD)
    page.field("Net change", _show(view.get("netChange")), BOLD)
    page.field("Final balance", _show(view.get("finalBalance")), BOLD)

    page.heading("Activity")
    page.field("Deltas", _show(view.get("deltaCount")))
    page.field("Verified", _show(view.get("verifiedCount")))
    page.field("Failed", _show(view.get("failedCount")))
    page.field("Awaiting verification", _show(view.get("awaitingVerification")))
    page.field("First sequence", _show(view.get("firstSequence")))
    page.field("Last sequence", _show(view.get("lastSequence")))

    page.heading("Latest checkpoint")
    checkpoint = view.get("latestCheckpoint")
    if checkpoint:
        page.field("Checkpoint id", _show(checkpoint.get("checkpointId")), MONO, 9)
        page.field("Root", _show(checkpoint.get("root")), MONO, 9)
        page.field("Tree size", _show(checkpoint.get("treeSize")))
    else:
        page.field("Checkpoint", "none")

    page.heading("Signature")
    page.field("Receipt id", _show(view.get("receiptId")), MONO, 9)
    page.field("Generated at", _show(view.get("generatedAt")))
    page.field("Key id", _show(view.get("keyId")), MONO, 9)
    page.text("Signature (Ed25519, base64)", BOLD, 9, leading=18)
    signature = winansi(_show(view.get("signature"))[:6 * 44 + 1])
    chunks = [signature[i:i + 44] for i in range(0, len(signature), 44)] or [""]
    for chunk in _cap(chunks, 6, MONO, 10, PAGE_WIDTH - 2 * MARGIN):
        page.text(chunk, MONO, 10, leading=13, max_lines=1)
    page.field("Verification keys", _show(view.get("verificationKeysUrl")), MONO, 9)
    statement = view.get("statement")
    if isinstance(statement, dict):  # the exact signed bytes, cut at fixed widths: join the lines to check
        from chalicelib.domain.fingerprints import canonical

        text = winansi(canonical(statement).decode())
        page.text("Signed statement (RFC 8785; join these lines without breaks)", BOLD, 8, leading=14)
        for chunk in _cap([text[i:i + STATEMENT_COLUMNS] for i in range(0, len(text), STATEMENT_COLUMNS)],
                          STATEMENT_LINES, MONO, 6.5, PAGE_WIDTH - 2 * MARGIN):
            page.text(chunk, MONO, 6.5, leading=8, max_lines=1)
    page.text("To check: the signature is Ed25519 over the signed statement above (the JSON receipt's "
              "`statement`); its key is Key id at the URL above.", REGULAR, 7.5, leading=20, max_lines=2)
    return page


def _literal(text: str) -> bytes:
    """A PDF literal string in WinAnsi bytes: `\\`, `(` and `)` escaped, non-ASCII bytes as octal escapes."""
    out = bytearray(b"(")
    for byte in winansi(text).encode("cp1252"):
        if byte in b"\\()":
            out += b"\\" + bytes([byte])
        elif 32 <= byte < 127:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    return bytes(out + b")")


def _info_string(text: str) -> bytes:
    """A text string for /Info: plain ASCII literal, otherwise UTF-16BE with a byte-order mark."""
    if all(32 <= ord(c) < 127 for c in text):
        return _literal(text)
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def _pdf_date(iso: str) -> bytes:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    return _literal(moment.strftime("D:%Y%m%d%H%M%SZ00'00'"))


def _number(value: float) -> bytes:
    return (b"%.2f" % value).rstrip(b"0").rstrip(b".")


def _content(view: dict[str, Any]) -> bytes:
    title_y = PAGE_HEIGHT - MARGIN - 18
    ops = [b"BT /%s 20 Tf 1 0 0 1 %d %d Tm %s Tj ET" % (BOLD.encode(), MARGIN, title_y, _literal("Tally receipt")),
           b"0.5 w %d %d m %d %d l S" % (MARGIN, title_y - 8, PAGE_WIDTH - MARGIN, title_y - 8)]
    for y, seg in _layout(view).placed(title_y - 8):
        ops.append(b"BT /%s %s Tf 1 0 0 1 %s %s Tm %s Tj ET" % (
            seg.font.encode(), _number(seg.size), _number(seg.x), _number(y), _literal(seg.text)))
    return b"\n".join(ops)


def render_receipt_pdf(view: dict[str, Any]) -> bytes:
    """The receipt (the dict ``receipt_view`` returns) as a deterministic one-page PDF 1.4 document."""
    content = _content(view)
    fonts = [b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>" % name.encode()
             for name in FONTS.values()]
    title = f"Tally receipt {view.get('receiptId') or ''}".strip()
    info = b"<< /Title %s /Producer (Tally) /CreationDate %s >>" % (
        _info_string(title), _pdf_date(str(view["generatedAt"])))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << %s >> >> /Contents 7 0 R >>" % (
            PAGE_WIDTH, PAGE_HEIGHT, b" ".join(b"/%s %d 0 R" % (key.encode(), 4 + i) for i, key in enumerate(FONTS))),
        *fonts,
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        info,
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # the comment's high bytes mark the file as binary
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, len(objects), xref)
    return bytes(out)
