"""Shaping a fenced commit's commands so that none can fail inside the commit script.

A Lua script is not rolled back when a command errors: the writes made before it stay. So
:func:`bus.lease.fenced` never sends a command that could fail there. Variadic commands (SADD,
ZADD, HSET, DEL, RPUSH, MSET...) are split here, in Python, into chunks well below the ~8,000
values that Lua's ``unpack`` can spread into ``redis.call``; a command that cannot be split
and is still too long is refused before anything is sent. The script checks key types before
its first write (see ``_COMMIT`` in :mod:`bus.lease`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from bus.errors import CommitRefused

__all__ = ("MAX_ARGS", "split")

# Arguments per command sent to the script: far below Lua's unpack limit (LUAI_MAXCSTACK,
# 8000), large enough that a 60 KB message's ~9,000 terms make a handful of commands.
MAX_ARGS = 2048

# Command -> (arguments before the repeated part, size of one repeated group). Splitting
# keeps the order of the groups, so RPUSH still appends in order and MSET's last write wins.
_VARIADIC: dict[str, tuple[int, int]] = {
    "SADD": (2, 1),
    "SREM": (2, 1),
    "ZREM": (2, 1),
    "HDEL": (2, 1),
    "HSET": (2, 2),
    "HMSET": (2, 2),
    "RPUSH": (2, 1),
    "LPUSH": (2, 1),
    "DEL": (1, 1),
    "UNLINK": (1, 1),
    "MSET": (1, 2),
    "ZADD": (2, 2),
}
_ZADD_FLAGS = frozenset({"NX", "XX", "GT", "LT", "CH"})


def _name(arg: object) -> str:
    return (arg.decode() if isinstance(arg, bytes) else str(arg)).upper()


def split(commands: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """``commands`` with every long variadic command cut into runs of at most
    :data:`MAX_ARGS` arguments; the effect of running them in order is unchanged.

    Raises:
        CommitRefused: a command that cannot be split has more than :data:`MAX_ARGS`
            arguments, or a variadic command has a broken argument count.
    """
    out: list[list[Any]] = []
    for command in commands:
        if len(command) <= MAX_ARGS:
            out.append(list(command))
        else:
            out.extend(_chunks(command))
    return out


def _chunks(command: Sequence[Any]) -> Iterator[list[Any]]:
    name = _name(command[0])
    shape = _VARIADIC.get(name)
    if shape is None:
        raise CommitRefused(
            f"{name} has {len(command) - 1} arguments, more than a commit can carry in one "
            f"command ({MAX_ARGS - 1}); stage it as several smaller commands"
        )
    head, group = shape
    if name == "ZADD":
        while head < len(command) and _name(command[head]) in _ZADD_FLAGS:
            head += 1
    body = command[head:]
    if not body or len(body) % group:
        raise CommitRefused(f"{name} has {len(command) - 1} arguments, not whole groups")
    step = (MAX_ARGS - head) // group * group
    for start in range(0, len(body), step):
        yield [*command[:head], *body[start : start + step]]
