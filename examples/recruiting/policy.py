"""The scripted model's rules for the recruiting demo: a stand-in, not an LLM.

It reads the same context a real model would (the system prompt with the memory blocks, the
messages) and answers with tool calls by fixed rules, so the whole system can be seen working
with no API key. Serve it with ``memgrid scripted-model --policy examples/recruiting/policy.py``
or let ``memgrid demo recruiting`` start it.
"""

from __future__ import annotations

import json
import re

from agents.scripted import ChatRequest, Outcome, say, text, tool_call

STRONG = ("react", "typescript", "python", "software engineer", "compiler", "full-stack")
REBRAND = re.compile(r"rebranded from (?P<old>[\w .-]+?) to (?P<new>[\w .-]+?)[.;,]", re.I)
COMPANY = re.compile(r"company is called (?P<name>[\w .-]+?) and", re.I)


def _last(request: ChatRequest) -> str:
    last = request.last_message
    return last.text if last is not None else ""


def _after_tool(request: ChatRequest) -> bool:
    return '"type": "heartbeat"' in _last(request)


def _company(request: ChatRequest) -> str:
    found = COMPANY.search(request.system_prompt)
    return found.group("name") if found else "our company"


def _evaluate(request: ChatRequest) -> Outcome:
    if _after_tool(request):
        result = request.last_tool_result
        return say(f"Done: {json.loads(result.content)['message'] if result else ''}")
    resume = _last(request)
    first = resume.strip().splitlines()[0] if resume.strip() else ""
    readable = first.replace(" ", "").isalpha() and len(first.split()) >= 2
    if not readable:
        return say(
            "This resume is unreadable (it looks like a corrupted upload); please send it again.",
            thought="I cannot read a name or any experience in this file.",
        )
    name = first.strip()
    skills = [s for s in STRONG if s in resume.lower()]
    if skills:
        return tool_call(
            "send_message_to_agent_async",
            message=(
                f"Please reach out to {name}. Strong fit: {', '.join(skills)}. "
                f"Resume summary: {' '.join(resume.split()[2:30])}"
            ),
            other_agent_id="outreach",
            thought=f"{name} has {', '.join(skills)}: forward to outreach.",
        )
    return tool_call(
        "reject",
        candidate_name=name,
        thought=f"{name} has none of the skills we need: reject.",
    )


def _outreach(request: ChatRequest) -> Outcome:
    said = _last(request)
    if _after_tool(request):
        return say(f"Updated: the company is now {_company(request)}.")
    rebrand = REBRAND.search(said)
    if rebrand:
        return tool_call(
            "core_memory_replace",
            label="company",
            old_content=rebrand.group("old").strip(),
            new_content=rebrand.group("new").strip(),
            request_heartbeat=True,
            thought="The shared company block must carry the new name.",
        )
    name = re.search(r"reach out to (?P<name>[A-Z][\w]*(?: [A-Z][\w]*)*)", said)
    fit = re.search(r"Strong fit: (?P<fit>[^.]+)\.", said)
    if not name:
        return say("I only draft emails for candidates the evaluator sends me.")
    who, company = name.group("name"), _company(request)
    email = (
        f"Hi {who.split()[0]}, I'm reaching out from {company}. Your experience with "
        f"{fit.group('fit') if fit else 'software'} stood out to us, and we would love to tell "
        f"you about what we are building. Would you have 20 minutes this week? Best, the "
        f"{company} team"
    )
    return tool_call(
        "draft_candidate_email",
        content=email,
        request_heartbeat=False,
        thought=f"Personalise the email for {who} with the company name from memory.",
    )


def recruiting_policy(request: ChatRequest) -> Outcome:
    """Route to the evaluator's or outreach agent's rules by the persona in the prompt."""
    if not request.tools:  # a summary request
        return text("Earlier candidates were screened; see recall memory for details.")
    if "responsible for evaluating candidates" in request.system_prompt:
        return _evaluate(request)
    return _outreach(request)
