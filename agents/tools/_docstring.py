"""A forgiving parser for Google-style docstrings.

It reads what tool authors actually write: the summary paragraph, an ``Args:`` section
(also ``Arguments:``, ``Parameters:``, ``Params:``, ``Attributes:`` for classes) whose entries
are ``name (type): description`` or ``name: description`` with indented continuation lines,
and it tolerates docstrings whose indentation was lost (every line flush left, as in the
course's examples). Other sections (``Returns:``, ``Raises:``, ``Example:``...) are skipped.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

_ARG_SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "attributes",
        "keyword args",
        "keyword arguments",
        "other parameters",
    }
)
_OTHER_SECTIONS = frozenset(
    {
        "returns",
        "return",
        "yields",
        "yield",
        "raises",
        "raise",
        "example",
        "examples",
        "note",
        "notes",
        "see also",
        "warning",
        "warnings",
        "todo",
        "references",
        "methods",
    }
)
_HEADER = re.compile(r"^([A-Za-z][A-Za-z ]*):\s*$")
_NAME = re.compile(r"\*{0,2}([A-Za-z_]\w*)\s*")
_OPTIONAL = re.compile(r"(?:^|,)\s*optional\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DocParam:
    """One documented parameter: its type as written (if any) and its description."""

    type_text: str | None
    description: str


@dataclass(frozen=True, slots=True)
class ParsedDoc:
    """What a docstring says: the summary paragraph and the documented parameters."""

    summary: str = ""
    params: dict[str, DocParam] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _header(line: str) -> str | None:
    match = _HEADER.match(line.strip())
    if match is None:
        return None
    name = match.group(1).strip().lower()
    return name if name in _ARG_SECTIONS or name in _OTHER_SECTIONS else None


def split_entry(text: str) -> tuple[str, str | None, str] | None:
    """Split ``name (type): description`` into its parts; None when it is not an entry."""
    match = _NAME.match(text)
    if match is None:
        return None
    name, rest = match.group(1), text[match.end() :]
    type_text: str | None = None
    if rest.startswith("("):
        depth = 0
        for index, char in enumerate(rest):
            depth += (char in "([{") - (char in ")]}")
            if depth == 0:
                type_text, rest = rest[1:index].strip(), rest[index + 1 :].lstrip()
                break
        else:
            # Unbalanced brackets (a typo such as ``(list[int)``): the type ends at "):".
            end = rest.find("):")
            if end < 0:
                return None
            type_text, rest = rest[1:end].strip(), rest[end + 1 :]
    if not rest.startswith(":"):
        return None
    if type_text is not None:
        type_text = _OPTIONAL.sub("", type_text).strip() or None
    return name, type_text, rest[1:].strip()


def _normalise(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def parse_docstring(doc: str | None) -> ParsedDoc:
    """Parse a Google-style docstring; an empty or missing one gives an empty result."""
    if not doc or not doc.strip():
        return ParsedDoc()
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    index = 0
    while index < len(lines) and lines[index].strip() and _header(lines[index]) is None:
        summary.append(lines[index])
        index += 1
    params: dict[str, DocParam] = {}
    section: str | None = None
    header_indent = entry_indent = -1
    current: tuple[str, str | None, list[str]] | None = None

    def close() -> None:
        if current is not None:
            name, type_text, parts = current
            params.setdefault(name, DocParam(type_text, _normalise(parts)))

    for line in lines[index:]:
        if not line.strip():
            continue
        indent = _indent(line)
        header = _header(line)
        if header is not None and (section is None or indent <= header_indent):
            close()
            current = None
            section, header_indent, entry_indent = header, indent, -1
            continue
        if section not in _ARG_SECTIONS:
            continue
        if entry_indent < 0:
            entry_indent = indent
        if entry_indent > header_indent and indent <= header_indent:
            # A paragraph back at the header's level ends an indented Args block.
            close()
            current, section = None, None
            continue
        entry = split_entry(line.strip()) if indent <= entry_indent else None
        if entry is not None:
            close()
            current = (entry[0], entry[1], [entry[2]])
        elif current is not None:
            current[2].append(line.strip())
    close()
    return ParsedDoc(summary=_normalise(summary), params=params)


__all__ = ("DocParam", "ParsedDoc", "parse_docstring", "split_entry")
