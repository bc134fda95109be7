"""The hand-written receipt PDF: parseable by a strict reader, one page whatever the values, deterministic,
WinAnsi-only text, and nothing drawn past the page's margins."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import pytest
from pypdf import PdfReader

from chalicelib.services.receipt_pdf import MARGIN, PAGE_WIDTH, render_receipt_pdf

SIGNATURE = "Zm9vYmFyYmF6cXV4" * 5 + "UmVjZWlwdHM="  # 88 characters, like a base64 Ed25519 signature


def view(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "receiptId": "rct_0000001AbCdEfGhIjKlMnOp", "customerId": "cust_a", "period": "2026-04",
        "startDate": "2026-04-01T00:00:00.000Z", "endDate": "2026-05-01T00:00:00.000Z",
        "deltaCount": 3, "verifiedCount": 2, "failedCount": 1, "awaitingVerification": 1,
        "firstSequence": 3, "lastSequence": 6, "generatedAt": "2026-05-05T12:00:00.000Z", "keyId": "key_2026a",
        "startingBalance": Decimal("15"), "finalBalance": Decimal("18.5"), "netChange": Decimal("3.5"),
        "latestCheckpoint": {"checkpointId": "ckp_0001", "root": "ab" * 32, "treeSize": 2, "sequence": 1},
        "statement": {"type": "tally.receipt/v1"}, "signature": SIGNATURE,
        "verificationKeysUrl": "https://api.tally.test/api/v1/verification-keys",
    }
    return {**base, **changes}


def read(pdf: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(pdf), strict=True)


def text_of(pdf: bytes) -> str:
    reader = read(pdf)
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_the_receipt_is_one_page_showing_every_figure():
    pdf = render_receipt_pdf(view())
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    text = text_of(pdf)
    for expected in ("Tally receipt", "cust_a", "2026-04", "2026-04-01T00:00:00.000Z", "2026-05-01T00:00:00.000Z",
                     "Starting balance 15", "Net change 3.5", "Final balance 18.5", "Deltas 3", "Verified 2",
                     "Failed 1", "Awaiting verification 1", "First sequence 3", "Last sequence 6", "ckp_0001",
                     "ab" * 32, "Tree size 2", "rct_0000001AbCdEfGhIjKlMnOp", "2026-05-05T12:00:00.000Z",
                     "key_2026a", "https://api.tally.test/api/v1/verification-keys", "RFC 8785", "Ed25519"):
        assert expected in text, expected
    lines = text.splitlines()
    pieces = [line for line in lines if line and line in SIGNATURE]
    assert len(pieces) > 1 and "".join(pieces) == SIGNATURE  # wrapped over several lines, nothing lost


def test_metadata_comes_from_the_receipt_not_the_clock():
    reader = read(render_receipt_pdf(view()))
    assert reader.metadata.title == "Tally receipt rct_0000001AbCdEfGhIjKlMnOp"
    assert reader.metadata.creation_date.isoformat() == "2026-05-05T12:00:00+00:00"
    assert reader.pdf_header == "%PDF-1.4"
    page = reader.pages[0]
    assert [float(v) for v in page.mediabox] == [0, 0, 595, 842]
    fonts = {f["/BaseFont"]: f["/Encoding"] for f in page["/Resources"]["/Font"].values()}
    assert fonts == {"/Helvetica": "/WinAnsiEncoding", "/Helvetica-Bold": "/WinAnsiEncoding",
                     "/Courier": "/WinAnsiEncoding"}


def test_the_same_view_renders_the_same_bytes():
    assert render_receipt_pdf(view()) == render_receipt_pdf(view())
    assert render_receipt_pdf(view()) != render_receipt_pdf(view(generatedAt="2026-05-05T12:00:01.000Z"))


def test_xref_offsets_point_at_their_objects():
    pdf = render_receipt_pdf(view())
    start = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", pdf).group(1))
    assert pdf[start:].startswith(b"xref\n0 9\n")
    entries = pdf[start:].split(b"\n")[2:11]
    assert entries[0] == b"0000000000 65535 f "
    for number, entry in enumerate(entries[1:], start=1):
        offset = int(entry[:10])
        assert entry.endswith(b" 00000 n ") and pdf[offset:].startswith(b"%d 0 obj\n" % number)
    read(pdf).pages[0].extract_text()  # and a strict reader accepts the whole file


def test_no_absent_checkpoint_or_sequence_breaks_the_page():
    text = text_of(render_receipt_pdf(view(latestCheckpoint=None, firstSequence=None, lastSequence=None,
                                           deltaCount=0, startingBalance=Decimal("0"))))
    assert "Checkpoint none" in text and "First sequence none" in text


def test_parentheses_and_backslashes_are_escaped():
    text = text_of(render_receipt_pdf(view(customerId="a(b)c\\d", keyId="k)(")))
    assert "a(b)c\\d" in text and "k)(" in text


def test_characters_outside_winansi_become_question_marks():
    text = text_of(render_receipt_pdf(view(customerId="caf\u00e9-\u20ac-\u2192-\u4e2d-\x07", keyId="\U0001f600")))
    assert "caf\u00e9-\u20ac-?-?-?" in text  # Latin-1 and WinAnsi's euro survive
    assert "Key id ?" in text


def test_long_values_wrap_and_stay_on_one_page():
    long = "x" * 1_000_000 + " words" * 400  # only what could fit is wrapped: this stays quick
    huge = view(**{key: long for key in ("customerId", "period", "startDate", "endDate", "receiptId", "keyId",
                                          "verificationKeysUrl")},
                latestCheckpoint={"checkpointId": long, "root": "f" * 5000, "treeSize": 10**400},
                signature="S" * 1_000_000, startingBalance=Decimal("1e500"))
    pdf = render_receipt_pdf(huge)
    text = text_of(pdf)
    assert "\u2026" in text  # cut, with an ellipsis
    assert_inside_margins(pdf)


@pytest.mark.parametrize("changes", [{}, {"customerId": "W" * 128}, {"verificationKeysUrl": "https://" + "w" * 300},
                                     {"signature": "M" * 400}, {"customerId": "\u00c6" * 128}])
def test_nothing_is_drawn_past_the_margins(changes):
    assert_inside_margins(render_receipt_pdf(view(**changes)))


def assert_inside_margins(pdf: bytes) -> None:
    """Every text run, measured with pypdf's own copy of the AFM widths, ends inside the right margin."""
    from pypdf._codecs.core_font_metrics import CORE_FONT_METRICS

    page = read(pdf).pages[0]
    fonts = {name: f["/BaseFont"][1:] for name, f in page["/Resources"]["/Font"].items()}
    runs: list[tuple[float, float, str, str]] = []

    def visit(text: str, cm: Any, tm: Any, font: Any, size: float) -> None:
        if text.strip():
            runs.append((tm[4], tm[5], text.strip(), font["/BaseFont"][1:]))  # less the spaces pypdf adds

    page.extract_text(visitor_text=visit)
    assert runs and set(fonts.values()) == {"Helvetica", "Helvetica-Bold", "Courier"}
    stream = page.get_contents().get_data().decode("latin-1")
    for x, y, text, font in runs:
        size = float(re.search(rf"/F\d ([\d.]+) Tf 1 0 0 1 {x:g} {y:g} Tm", stream).group(1))
        widths = CORE_FONT_METRICS[font].character_widths
        width = sum(widths.get(c, 1000) for c in text) * size / 1000
        assert MARGIN <= x <= x + width <= PAGE_WIDTH - MARGIN + 0.01, (text, x, width)
        assert MARGIN <= y <= 842 - MARGIN, (text, y)
