"""The scripted model's rules for this example: a stand-in that follows fixed rules.

- "my name is X"           -> call core_memory_save(section="human", memory="The human's name is X")
- after a tool result      -> answer in text, greeting the name now in memory
- "what is my name?"       -> answer from the memory in the system prompt, or admit not knowing
"""

from __future__ import annotations

import re

from agents.scripted import ChatRequest, Outcome, text, tool_call


def _name_in_memory(request: ChatRequest) -> str | None:
    found = re.search(r"human's name is (\w+)", request.system_prompt)
    return found.group(1) if found else None


def policy(request: ChatRequest) -> Outcome:
    """Decide the next reply from the request, like a (very simple) model would."""
    if request.last_role == "tool":
        return text(f"Nice to meet you, {_name_in_memory(request) or 'friend'}! I'll remember.")
    said = request.last_user_text or ""
    introduced = re.search(r"my name is (\w+)", said, re.IGNORECASE)
    if introduced and request.offers("core_memory_save"):
        return tool_call(
            "core_memory_save", section="human", memory=f"The human's name is {introduced[1]}"
        )
    if "my name" in said.lower():
        name = _name_in_memory(request)
        return text(f"Your name is {name}." if name else "I'm sorry, I don't know your name.")
    return text("How can I help you today?")
