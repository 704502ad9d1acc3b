"""The scripted model's rules for this example: a stand-in that follows fixed rules.

A memgrid agent speaks through ``send_message``; a memory tool called with
``request_heartbeat=true`` gets it another step, which arrives as a heartbeat message.

- "my name is actually X"  -> core_memory_replace the old "Name: ..." line with "Name: X"
- "my name is X"           -> core_memory_append "Name: X" to the human block
- a heartbeat after an edit -> send_message greeting the name now in core memory
- "what is my name?"       -> send_message with the name from core memory
"""

from __future__ import annotations

import re

from agents.scripted import ChatRequest, Outcome, say, tool_call


def _remembered(request: ChatRequest) -> str | None:
    """The name in the human block, as compiled into the system prompt."""
    found = re.search(r"Name: (\w+)", request.system_prompt)
    return found.group(1) if found else None


def policy(request: ChatRequest) -> Outcome:
    """Decide the next reply from the request, like a (very simple) model would."""
    said = request.last_user_text or ""
    name = _remembered(request)
    if '"type": "heartbeat"' in said:  # the step after a memory edit
        edited = request.last_tool_result
        if edited is not None and edited.name == "core_memory_replace":
            return say(f"Sorry about that, {name}! I've corrected my memory.")
        return say(f"Nice to meet you, {name}!")
    correction = re.search(r"my name is actually (\w+)", said, re.IGNORECASE)
    if correction and name:
        return tool_call(
            "core_memory_replace",
            label="human",
            old_content=f"Name: {name}",
            new_content=f"Name: {correction[1]}",
            request_heartbeat=True,
            thought="My memory of their name is wrong; correct it.",
        )
    introduced = re.search(r"my name is (\w+)", said, re.IGNORECASE)
    if introduced:
        return tool_call(
            "core_memory_append",
            label="human",
            content=f"Name: {introduced[1]}",
            request_heartbeat=True,
            thought="A new fact about the user: save their name in core memory.",
        )
    if "my name" in said.lower():
        return say(f"Your name is {name}." if name else "I don't know your name yet.")
    return say("Tell me about yourself!")
