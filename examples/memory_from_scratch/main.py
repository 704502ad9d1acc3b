"""Self-editing memory from scratch: the course's first lesson with the raw ``openai`` SDK.

No memgrid runtime here: the memory is a dict compiled into the system prompt, the model gets
one tool (``core_memory_save``) to edit it, and a loop calls the model, runs its tool calls
and stops when it answers in text. Run it::

    .venv/bin/python examples/memory_from_scratch/main.py

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set it talks to that model (``MEMGRID_MODEL``,
default gpt-4o-mini); with neither, to memgrid's scripted model following ``policy.py``.
"""

from __future__ import annotations

import json
import os
import sys

from openai import OpenAI

from agents.scripted import ScriptedModel

# --- the agent's state: a memory dict and a tool that edits it ---------------------------

agent_memory = {"human": "", "agent": ""}


def core_memory_save(section: str, memory: str) -> str:
    """Append ``memory`` to a section of the agent's memory."""
    agent_memory[section] += "\n" + memory if agent_memory[section] else memory
    return f"Saved to {section}."


core_memory_save_schema = {
    "type": "function",
    "function": {
        "name": "core_memory_save",
        "description": "Save important information about you, the agent or the human you are "
        "chatting with.",
        "parameters": {
            "type": "object",
            "properties": {
                "section": {
                    "type": "string",
                    "enum": ["human", "agent"],
                    "description": "Must be either 'human' (to save information about the "
                    "human) or 'agent' (to save information about yourself)",
                },
                "memory": {"type": "string", "description": "Memory to save in the section"},
            },
            "required": ["section", "memory"],
        },
    },
}

system_prompt = (
    "You are a chatbot. You have a section of your context called [MEMORY] that contains "
    "information relevant to your conversation. When you learn something new about the human, "
    "save it with core_memory_save. Either call a tool or answer the user; do not take the "
    "same action twice."
)


def agent_step(client: OpenAI, model: str, user_message: str) -> str:
    """One user message: call the model until it answers in text, running its tool calls."""
    messages: list[dict] = [{"role": "user", "content": user_message}]
    while True:
        system = {"role": "system", "content": f"{system_prompt}\n[MEMORY]\n{agent_memory}"}
        response = client.chat.completions.create(
            model=model, messages=[system, *messages], tools=[core_memory_save_schema]
        )
        message = response.choices[0].message
        if not message.tool_calls:  # no tool call: this is the answer
            return message.content or ""
        calls = [call.model_dump() for call in message.tool_calls]
        messages.append({"role": "assistant", "content": message.content, "tool_calls": calls})
        for call in message.tool_calls:
            arguments = json.loads(call.function.arguments)
            print(f"  tool call: {call.function.name}({arguments})")
            result = core_memory_save(**arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


def main() -> int:
    real = bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
    scripted = None
    if real:  # OPENAI_BASE_URL alone is fine: local servers (vLLM, Ollama...) need no key
        client = OpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "not-needed")
        model = os.environ.get("MEMGRID_MODEL", "gpt-4o-mini").removeprefix("openai/")
    else:
        from policy import policy

        scripted = ScriptedModel.start_in_thread(policy)
        client = OpenAI(base_url=scripted.base_url, api_key="not-needed")
        model = "scripted"
        print(
            "No OPENAI_API_KEY or OPENAI_BASE_URL is set: using memgrid's SCRIPTED MODEL, a "
            "stand-in that follows the fixed rules in policy.py.\n"
        )
    try:
        answers = []
        for user_message in ("What is my name?", "My name is Bob", "What is my name?"):
            print(f"user: {user_message}")
            answers.append(agent_step(client, model, user_message))
            print(f"assistant: {answers[-1]}")
            print(f"  memory: {agent_memory}\n")
    finally:
        if scripted is not None:
            scripted.stop()
    learned = "Bob" in agent_memory["human"] and "Bob" in answers[-1]
    print("The agent saved the name and used it." if learned else "The name was NOT learned.")
    return 0 if learned or real else 1


if __name__ == "__main__":
    sys.exit(main())
