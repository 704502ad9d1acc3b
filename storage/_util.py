"""Small helpers shared by storage modules."""

from __future__ import annotations

from collections.abc import Iterable


def text(value: bytes | str) -> str:
    """A Redis reply as str (clients run with ``decode_responses=False``)."""
    return value.decode() if isinstance(value, bytes) else value


def texts(values: Iterable[bytes | str]) -> list[str]:
    return [text(v) for v in values]
