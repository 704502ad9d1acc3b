"""The tools that edit core memory: MemGPT's (``core_memory_append``, ``core_memory_replace``)
and Letta's v2 set (``memory_insert``, ``memory_replace``, ``memory_rethink``, and ``memory``,
which edits blocks as files with str_replace-style commands).

Every edit is a compare-and-set write of the block keyed by the step and tool call
(:meth:`agents.tools.base.ToolContext.edit`), so a redelivered step cannot apply it twice, and
an edit that would break the block's limit or touch a read-only block is refused with what to
do instead.
"""

from __future__ import annotations

from typing import Literal

from agents.tools.base import ToolContext, ToolError

__all__ = (
    "core_memory_append",
    "core_memory_replace",
    "memory",
    "memory_insert",
    "memory_replace",
    "memory_rethink",
)

_PATH_PREFIX = "/memories/"


async def core_memory_append(ctx: ToolContext, label: str, content: str) -> str:
    """Append text to the end of a core memory block, on a new line.

    Args:
        label: The label of the block to edit, e.g. "human" or "persona".
        content: The text to append; keep it short and factual.
    """
    if not content.strip():
        raise ToolError("content is empty; pass the text to append")
    block = await ctx.edit(label, lambda value: f"{value}\n{content}" if value else content)
    return f"Appended to block {label!r}; it now has {len(block.value)}/{block.limit} characters."


def _replace_once(label: str, value: str, old: str, new: str) -> str:
    if not old:
        raise ToolError("the text to replace is empty; copy the exact text from the block")
    count = value.count(old)
    if count == 0:
        raise ToolError(
            f"the text {old!r} is not in block {label!r}. Copy the exact text (case and "
            "punctuation included) from the block as shown in your core memory."
        )
    if count > 1:
        raise ToolError(
            f"the text {old!r} appears {count} times in block {label!r}; include more of the "
            "surrounding text so that it matches exactly once."
        )
    return value.replace(old, new, 1)


async def core_memory_replace(
    ctx: ToolContext, label: str, old_content: str, new_content: str
) -> str:
    """Replace text in a core memory block. To delete text, pass an empty new_content.

    Args:
        label: The label of the block to edit, e.g. "human" or "persona".
        old_content: The exact text to replace; it must appear exactly once in the block.
        new_content: The text to put in its place.
    """
    block = await ctx.edit(label, lambda v: _replace_once(label, v, old_content, new_content))
    return (
        f"Replaced text in block {label!r}; it now has {len(block.value)}/{block.limit} characters."
    )


async def memory_replace(ctx: ToolContext, label: str, old_str: str, new_str: str) -> str:
    """Replace a unique piece of text in a memory block.

    Args:
        label: The label of the block to edit.
        old_str: The exact text to replace; it must appear exactly once in the block.
        new_str: The replacement text (empty to delete).
    """
    block = await ctx.edit(label, lambda v: _replace_once(label, v, old_str, new_str))
    return (
        f"Replaced text in block {label!r}; it now has {len(block.value)}/{block.limit} characters."
    )


async def memory_insert(ctx: ToolContext, label: str, new_str: str, insert_line: int = -1) -> str:
    """Insert text into a memory block at a given line.

    Args:
        label: The label of the block to edit.
        new_str: The text to insert.
        insert_line: The line number after which to insert (0 inserts at the top, -1 at the
            end).
    """
    block = await ctx.edit(label, lambda v: _insert_at(label, v, new_str, insert_line))
    return f"Inserted into block {label!r}; it now has {len(block.value)}/{block.limit} characters."


async def memory_rethink(ctx: ToolContext, label: str, new_memory: str) -> str:
    """Rewrite a memory block completely, e.g. to reorganise or condense it.

    Args:
        label: The label of the block to rewrite.
        new_memory: The complete new content of the block.
    """
    block = await ctx.edit(label, lambda _value: new_memory)
    return f"Rewrote block {label!r}; it now has {len(block.value)}/{block.limit} characters."


def _insert_at(label: str, value: str, text: str, insert_line: int) -> str:
    lines = value.split("\n") if value else []
    if insert_line == -1:
        position = len(lines)
    elif 0 <= insert_line <= len(lines):
        position = insert_line
    else:
        raise ToolError(
            f"insert_line {insert_line} is outside block {label!r}, which has {len(lines)} "
            "lines; use 0 for the top, -1 for the end, or a line number in between."
        )
    return "\n".join([*lines[:position], text, *lines[position:]])


async def memory(
    ctx: ToolContext,
    command: Literal["str_replace", "insert", "create", "delete", "rename"],
    path: str,
    old_str: str | None = None,
    new_str: str | None = None,
    insert_line: int = -1,
    insert_text: str | None = None,
    file_text: str | None = None,
) -> str:
    """Edit a memory block as a file at /memories/<label>.

    Args:
        command: "str_replace" replaces old_str with new_str; "insert" inserts insert_text
            after line insert_line; "create" rewrites the block with file_text. Blocks are
            not deleted or renamed from here.
        path: The block as /memories/<label>, e.g. /memories/human.
        old_str: For str_replace: the exact text to replace; it must appear exactly once.
        new_str: For str_replace: the replacement text (empty to delete).
        insert_line: For insert: the line after which to insert (0 for the top, -1 the end).
        insert_text: For insert: the text to insert.
        file_text: For create: the complete new content of the block.
    """
    label = path.removeprefix(_PATH_PREFIX).strip("/")
    ctx.block(label)  # an unknown label is refused with the labels there are
    if command == "str_replace":
        if old_str is None:
            raise ToolError("str_replace needs old_str: the exact text to replace")
        new = new_str or ""
        block = await ctx.edit(label, lambda v: _replace_once(label, v, old_str, new))
    elif command == "insert":
        if insert_text is None:
            raise ToolError("insert needs insert_text: the text to insert")
        text = insert_text
        block = await ctx.edit(label, lambda v: _insert_at(label, v, text, insert_line))
    elif command == "create":
        if file_text is None:
            raise ToolError("create needs file_text: the complete new content of the block")
        content = file_text
        block = await ctx.edit(label, lambda _value: content)
    else:
        raise ToolError(
            f"{command} is not available: memory blocks are created, renamed and deleted by "
            "the people who run you. Use str_replace, insert or create on an existing block."
        )
    size = f"{len(block.value)}/{block.limit}"
    return f"Edited {_PATH_PREFIX}{label} ({command}); it now has {size} characters."
