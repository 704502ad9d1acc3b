"""The employee handbook of the example, written as a small PDF by hand.

pypdf reads PDFs well but cannot lay out text, so this writes the few objects a PDF needs
(catalog, pages, a font, one text stream per page) with their byte offsets in the xref table.
"""

from __future__ import annotations

import textwrap

TITLE = "AgentOS Employee Handbook"

SECTIONS = {
    "Welcome": (
        "Welcome to AgentOS. We build AI tools that make it easier to create and deploy LLM "
        "agents. This handbook explains how we work together and what you can expect from us."
    ),
    "Working hours": (
        "Our core hours are 10am to 4pm in your local time zone. Outside of core hours you may "
        "organise your day as you like, as long as your team knows how to reach you."
    ),
    "Remote work": (
        "Every role at AgentOS can be done remotely. The company pays for a home office setup "
        "of up to 1,500 dollars and a monthly internet allowance of 50 dollars."
    ),
    "Vacation policy": (
        "Every full-time employee receives 25 days of paid vacation per year, plus public "
        "holidays. Vacation days accrue monthly and up to 5 unused days carry over into the "
        "next year. Request vacation at least two weeks in advance in the HR portal; your "
        "manager approves it within three working days."
    ),
    "Sick leave": (
        "If you are sick, stay home and tell your manager the same day. Up to 10 sick days per "
        "year are paid in full and need no doctor's note."
    ),
    "Parental leave": (
        "New parents receive 16 weeks of fully paid parental leave, to be taken within the "
        "first year after a birth or adoption."
    ),
    "Expenses": (
        "Business travel, conference tickets and books for work are reimbursed. Submit "
        "receipts in the finance tool within 30 days."
    ),
    "Code of conduct": (
        "Treat colleagues, customers and candidates with respect. Report harassment or "
        "discrimination to HR; reports are confidential and never held against you."
    ),
}

_LINES_PER_PAGE = 24


def handbook_lines() -> list[str]:
    """The handbook as lines of at most 80 characters; "" separates paragraphs."""
    lines = [TITLE, ""]
    for heading, body in SECTIONS.items():
        lines += [heading, *textwrap.wrap(body, 80), ""]
    return lines


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _page_stream(lines: list[str]) -> bytes:
    ops = ["BT", "/F1 11 Tf", "14 TL", "72 750 Td"]
    # A blank line is drawn as one space, so that text extraction keeps the paragraph break.
    ops += [f"({_escape(line) or ' '}) Tj T*" for line in lines]
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def handbook_pdf() -> bytes:
    """A valid PDF of the handbook, one text stream per page."""
    lines = handbook_lines()
    return text_pdf([lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)])


def text_pdf(pages: list[list[str]]) -> bytes:
    """A valid PDF of ``pages``, one text line per entry ("" draws a blank line)."""
    first_page = 4  # objects: 1 catalog, 2 page tree, 3 font, then (page, stream) pairs
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, page_lines in enumerate(pages):
        stream = _page_stream(page_lines)
        contents = first_page + 2 * index + 1
        page = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {contents} 0 R >>"
        )
        objects.append(page.encode())
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)
