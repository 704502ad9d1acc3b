"""Typed views of raw Redis stream replies (redis-py types them loosely)."""

from __future__ import annotations

from typing import Any

Fields = dict[bytes, bytes]
Entry = tuple[str, Fields]


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entries(raw: Any) -> list[Entry]:
    """``[(id, {field: value})]`` from an XRANGE / XAUTOCLAIM entry list (deleted ones skipped)."""
    out: list[Entry] = []
    for item in raw or ():
        entry_id, fields = item[0], item[1]
        if fields is None:
            continue
        out.append((_str(entry_id), {bytes(k): bytes(v) for k, v in fields.items()}))
    return out


def read_reply(raw: Any) -> list[tuple[str, list[Entry]]]:
    """``[(stream, entries)]`` from an XREAD / XREADGROUP reply."""
    out: list[tuple[str, list[Entry]]] = []
    for stream, items in raw or ():
        out.append((_str(stream), entries(items)))
    return out


def autoclaim_entries(raw: Any) -> tuple[str, list[Entry]]:
    """``(next start id, entries)`` from an XAUTOCLAIM reply."""
    return _str(raw[0]), entries(raw[1])
