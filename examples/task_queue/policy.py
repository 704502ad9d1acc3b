"""The scripted model's rules for this example: a stand-in that follows fixed rules.

It reads the ``tasks`` block from the system prompt (core memory is compiled into it) and
the tool results since the user's last message:

- the user quotes tasks ('like this') -> task_queue_push each one not yet queued, then confirm
- the user asks to work on the tasks  -> task_queue_pop while the queue has tasks, then
                                         send_message with the result of every popped task
"""

from __future__ import annotations

import json
import re

from agents.scripted import ChatRequest, Outcome, say, tool_call

HAIKU = "Mickey, bright and bold\nround ears listening for joy\na name that stays young"


def _queued(request: ChatRequest) -> list[str]:
    found = re.search(r"<tasks>.*?<value>\n(.*?)\n</value>", request.system_prompt, re.DOTALL)
    return list(json.loads(found[1] or "[]")) if found else []


def _user_turn(request: ChatRequest) -> tuple[str, list[str]]:
    """The user's last real message (not a heartbeat) and the tool outputs since then."""
    outputs: list[str] = []
    for message in reversed(request.messages):
        if message.role == "tool":
            outputs.insert(0, json.loads(message.text)["message"])
        elif message.role == "user" and '"type": "heartbeat"' not in message.text:
            text = message.text
            if text.startswith("{"):  # memgrid packs user messages as JSON
                text = json.loads(text).get("message", text)
            return text, outputs
    return "", outputs


def _do(task: str) -> str:
    """What the agent says after doing a task."""
    if match := re.search(r"calling me (\w+)", task):
        return f"From now on I'll call you {match[1]}."
    if "haiku" in task:
        return f"Here is your haiku:\n{HAIKU}"
    return f"Done: {task}."


def policy(request: ChatRequest) -> Outcome:
    """Decide the next reply from the request, like a (very simple) model would."""
    said, outputs = _user_turn(request)
    queued = _queued(request)
    wanted = re.findall(r"'([^']+)'", said)
    if wanted:
        missing = [task for task in wanted if task not in queued]
        if missing:
            return tool_call("task_queue_push", task_description=missing[0], request_heartbeat=True)
        return say(f"I've added {len(wanted)} tasks to my queue.")
    if "task" in said.lower():
        if queued:
            return tool_call(
                "task_queue_pop", request_heartbeat=True, thought="Take the next task."
            )
        popped = [m[1] for o in outputs if (m := re.match(r"Next task: (.*?)\. Remaining", o))]
        if not popped:
            return say("My task queue is empty.")
        return say("\n".join(_do(task) for task in popped))
    return say("Give me tasks in quotes, like 'water the plants'.")
