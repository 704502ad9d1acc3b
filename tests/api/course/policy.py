"""The scripted model's rules for the course's client code: a stand-in for gpt-4o-mini.

It reads what a real model gets (the compiled system prompt with the memory blocks, the
messages, the tools offered) and decides the next tool call from them, like a very literal
model would. One policy serves every agent of the course: which rules apply follows from the
agent's persona and tools, never from ids known in advance.
"""

from __future__ import annotations

import json
import re

from agents.scripted import ChatRequest, Outcome, say, text, tool_call
from agents.scripted.protocol import MessageToolCall

__all__ = ("course_policy",)

HEARTBEAT = '"type": "heartbeat"'
SKILLS = ("react", "typescript", "software engineer", "engineering")


def _user_text(message_text: str) -> str:
    """A Letta-style packed user message ``{"type": "user_message", "message": ...}``
    unwrapped; anything else as it is."""
    try:
        packed = json.loads(message_text)
    except ValueError:
        return message_text
    if isinstance(packed, dict) and isinstance(packed.get("message"), str):
        return str(packed["message"])
    return message_text


def _turn(request: ChatRequest) -> tuple[str, list[MessageToolCall], str | None]:
    """The user's (or other agent's) message that started this turn, the tool calls made
    since, and the last tool result's text (``None`` before any)."""
    calls: list[MessageToolCall] = []
    said = ""
    for message in reversed(request.messages):
        if message.role == "user" and HEARTBEAT not in message.text:
            said = _user_text(message.text)
            break
        if message.role == "assistant" and message.tool_calls:
            calls[:0] = message.tool_calls
    result = request.last_tool_result
    after_tool = bool(calls) and result is not None
    return said, calls, result.content if after_tool and result is not None else None


def _called(calls: list[MessageToolCall], name: str) -> int:
    return sum(1 for call in calls if call.function.name == name)


def _returned(result: str | None) -> str:
    """The ``message`` of a tool result (memgrid wraps returns as ``{"status", "message"}``)."""
    if result is None:
        return ""
    try:
        return str(json.loads(result)["message"])
    except (ValueError, KeyError, TypeError):
        return result


def _block(request: ChatRequest, label: str) -> str:
    found = re.search(
        rf"<{label}>.*?<value>\n?(?P<value>.*?)\n?</value>", request.system_prompt, re.S
    )
    return found.group("value").strip() if found else ""


def _archival_answer(result: str | None) -> Outcome:
    found = _returned(result)
    try:
        hits = [str(hit["content"]) for hit in json.loads(found)]
    except (ValueError, TypeError, KeyError):
        hits = []
    if not hits:
        return say(f"I found nothing in archival memory 🤔 ({found})")
    return say("From my archival memory 📚: " + " | ".join(hits[:3]))


def _evaluator(
    request: ChatRequest, said: str, calls: list[MessageToolCall], result: str | None
) -> Outcome:
    resume = said.removeprefix("Evaluate:").strip()
    name = resume.splitlines()[0].strip() if resume else "the candidate"
    if _called(calls, "reject"):
        return text(f"I rejected {name}: none of the skills we need.")
    if _called(calls, "send_message_to_agent_and_wait_for_reply"):
        # Reached only when the exit_loop rule did not end the turn at the tool's return.
        return text(f"I sent {name} to the outreach agent: {_returned(result)}")
    strong = [skill for skill in SKILLS if skill in resume.lower()]
    outreach = re.search(r"agent ID (?P<id>agent-[\w-]+)", request.system_prompt)
    if strong and outreach:
        return tool_call(
            "send_message_to_agent_and_wait_for_reply",
            message=f"Please reach out to {name}. Strong fit: {', '.join(strong)}.",
            other_agent_id=outreach.group("id"),
            thought=f"{name} has {', '.join(strong)}: the outreach agent drafts the email.",
        )
    return tool_call(
        "reject",
        candidate_name=name,
        request_heartbeat=True,
        thought=f"{name} has none of the skills we need.",
    )


def _outreach(
    request: ChatRequest, said: str, calls: list[MessageToolCall], result: str | None
) -> Outcome:
    company = re.search(r"called (?P<name>\w+)", _block(request, "company"))
    current = company.group("name") if company else "our company"
    rebrand = re.search(r"rebranded to (?P<new>\w+)", said)
    if rebrand:
        if result is not None:
            return say(f"Noted: we are {current} now ✅")
        return tool_call(
            "core_memory_replace",
            label="company",
            old_content=current,
            new_content=rebrand.group("new"),
            request_heartbeat=True,
            thought="The shared company block must carry the new name.",
        )
    candidate = re.search(r"reach out to (?P<name>[A-Z]\w*(?: [A-Z]\w*)*)", said)
    if candidate is None:
        return say("I draft emails for candidates the evaluator sends me.")
    who = candidate.group("name")
    if _called(calls, "draft_candidate_email"):
        return say(f"I drafted an email to {who}: {_returned(result)}")
    return tool_call(
        "draft_candidate_email",
        content=(
            f"Hi {who.split()[0]}, I'm reaching out from {current}. Your experience stood out "
            f"to us; would you have 20 minutes this week? Best, the {current} team"
        ),
        request_heartbeat=True,
        thought=f"Personalise the email for {who} with the company name from memory.",
    )


def course_policy(request: ChatRequest) -> Outcome:
    """The next reply for any agent of the course."""
    if not request.tools:  # a summary request
        return text("Earlier messages were summarised; recall memory has them all.")
    said, calls, result = _turn(request)
    lowered = said.lower()
    if "responsible for evaluating candidates" in request.system_prompt:
        return _evaluator(request, said, calls, result)
    if "responsible for drafting emails" in request.system_prompt:
        return _outreach(request, said, calls, result)

    rename = re.search(r"my name actually is (?P<name>\w+)", said, re.I)
    if rename and request.offers("core_memory_replace"):
        new = rename.group("name")
        if result is not None:
            return say(f"Got it, {new}! I updated my memory 😊")
        old = re.search(r"name is (?P<name>\w+)", _block(request, "human"))
        return tool_call(
            "core_memory_replace",
            label="human",
            old_content=old.group("name") if old else "",
            new_content=new,
            request_heartbeat=True,
            thought="The user corrected their name: fix the human block.",
        )
    save = re.search(r"save the information that '(?P<fact>[^']+)' to archival", said, re.I)
    if save:
        if result is not None:
            if '"status": "OK"' not in result:
                return say(f"I could not save that: {_returned(result)}")
            return say("Saved it to my archival memory 💾")
        return tool_call(
            "archival_memory_insert",
            content=save.group("fact"),
            request_heartbeat=True,
            thought="The user wants this kept in archival memory.",
        )
    if "search archival" in lowered:
        if result is not None:
            return _archival_answer(result)
        wanted = re.search(r"archival (?:memory )?for (?P<query>.+)", said, re.I)
        query = (
            wanted.group("query") if wanted else re.sub(r"search archival\.?", "", said, flags=re.I)
        )
        return tool_call(
            "archival_memory_search",
            query=query.strip().rstrip("?."),
            request_heartbeat=True,
            thought="The answer should be in my archival memory.",
        )
    if "agent id" in lowered and request.offers("get_agent_id"):
        if result is not None:
            return say(f"My agent id is {_returned(result)} 🆔")
        return tool_call("get_agent_id", request_heartbeat=True, thought="Look up my own id.")
    if request.offers("task_queue_push"):
        tasks = re.findall(r"'([^']+)'", said)
        pushed = _called(calls, "task_queue_push")
        if pushed < len(tasks):
            return tool_call(
                "task_queue_push",
                task_description=tasks[pushed],
                request_heartbeat=True,
                thought=f"Queue task {pushed + 1} of {len(tasks)}.",
            )
        return say(f"I added {len(tasks)} tasks to my queue.")
    return say("It's going great! 😊 How can I help you today?")
