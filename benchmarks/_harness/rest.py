"""memgrid's REST API from a benchmark: agents and messages over a keep-alive client."""

from __future__ import annotations

import httpx


def send_message(http: httpx.Client, agent_id: str, text: str) -> None:
    """``POST /v1/agents/{id}/messages``; raises unless it answered with an assistant message."""
    response = http.post(
        f"/v1/agents/{agent_id}/messages", json={"messages": [{"role": "user", "content": text}]}
    )
    if response.status_code != 200:
        raise RuntimeError(f"messages.create: {response.status_code} {response.text[:500]}")
    kinds = [m["message_type"] for m in response.json()["messages"]]
    if "assistant_message" not in kinds:
        raise RuntimeError(f"messages.create answered {kinds}, no assistant_message")


def rest_agents(http: httpx.Client, count: int, prefix: str = "bench") -> list[str]:
    """``count`` agents with a human and a persona block (``POST /v1/agents/``); their ids."""
    ids = []
    for i in range(count):
        body = {
            "name": f"{prefix}-{i}",
            "model": "openai/gpt-4o-mini",
            "memory_blocks": [
                {"label": "human", "value": "Name: Bob. Likes short answers."},
                {"label": "persona", "value": "I am Sam, a concise and helpful assistant."},
            ],
        }
        response = http.post("/v1/agents/", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"create agent: {response.status_code} {response.text[:500]}")
        ids.append(response.json()["id"])
    return ids
