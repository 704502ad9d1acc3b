"""The scripted model's rules for this example: a stand-in that follows fixed rules.

- "search archival for X"        -> archival_memory_search(query=X), asking for a heartbeat
- the heartbeat after the search -> send_message quoting the best passage it found
"""

from __future__ import annotations

import json
import re

from agents.scripted import ChatRequest, Outcome, say, tool_call


def policy(request: ChatRequest) -> Outcome:
    """Decide the next reply from the request, like a (very simple) model would."""
    said = request.last_user_text or ""
    result = request.last_tool_result
    if '"type": "heartbeat"' in said and result is not None:
        found = json.loads(result.content)["message"]
        if not found.startswith("["):
            return say(f"I found nothing in archival memory ({found}).")
        best = json.loads(found)[0]["content"]
        return say(f"According to the employee handbook in my archival memory: {best}")
    wanted = re.search(r"archival (?:memory )?for (.+)", said, re.IGNORECASE)
    if wanted:
        return tool_call(
            "archival_memory_search",
            query=wanted[1].rstrip("?."),
            request_heartbeat=True,
            thought="The answer should be in the documents attached to my archival memory.",
        )
    return say("Ask me to search archival memory for something.")
