"""``/v1/sources`` and ``/v1/folders``: upload jobs, attach and detach, deletes, refusals."""

from __future__ import annotations

import httpx

from tests.api.conftest import job_finished, make_agent

HANDBOOK = b"Vacation policy\n\nEvery employee gets 25 days of paid vacation.\n"


async def _upload(
    client: httpx.AsyncClient, base: str, source_id: str, name: str, data: bytes, **query: str
) -> httpx.Response:
    return await client.post(
        f"{base}/{source_id}/upload", files={"file": (name, data)}, params=query
    )


async def _texts(client: httpx.AsyncClient, agent_id: str) -> list[str]:
    response = await client.get(f"/v1/agents/{agent_id}/archival-memory")
    assert response.status_code == 200, response.text
    return [p["text"] for p in response.json()]


async def test_upload_ingests_in_the_background_and_attach_copies_passages(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/v1/sources/", json={"name": "handbook"})
    assert created.status_code == 200, created.text
    source = created.json()
    assert source["embedding_config"]["embedding_model"] == "hashing/384"
    agent = await make_agent(client)  # attached before the upload: it gets the file too

    attached = await client.patch(f"/v1/agents/{agent['id']}/sources/attach/{source['id']}")
    assert attached.status_code == 200, attached.text
    uploaded = await _upload(client, "/v1/sources", source["id"], "policy.md", HANDBOOK)
    assert uploaded.status_code == 200, uploaded.text
    meta = uploaded.json()
    assert meta["source_id"] == source["id"] and meta["file_type"] == "text/markdown"
    assert (await job_finished(client, meta["id"]))["status"] == "completed"

    done = (await client.get(f"/v1/sources/{source['id']}/files/{meta['id']}")).json()
    assert done["processing_status"] == "completed" and done["total_chunks"] == 1
    assert any("25 days" in t for t in await _texts(client, agent["id"]))
    later = await make_agent(client, name="later", source_ids=[source["id"]])
    assert any("25 days" in t for t in await _texts(client, later["id"]))
    listed = await client.get(f"/v1/agents/{later['id']}/folders")  # the 1.x path, same data
    assert [s["name"] for s in listed.json()] == ["handbook"]
    agents = (await client.get(f"/v1/folders/{source['id']}/agents")).json()
    assert sorted(agents) == sorted([agent["id"], later["id"]])
    chunks = (await client.get(f"/v1/sources/{source['id']}/passages")).json()
    assert [c["file_id"] for c in chunks] == [meta["id"]]

    detached = await client.patch(f"/v1/agents/{agent['id']}/sources/detach/{source['id']}")
    assert detached.status_code == 200
    assert await _texts(client, agent["id"]) == []
    assert (await client.delete(f"/v1/sources/{source['id']}")).status_code == 200
    assert await _texts(client, later["id"]) == []
    assert (await client.get(f"/v1/sources/{source['id']}")).status_code == 404


async def test_folders_duplicates_and_refusals(client: httpx.AsyncClient) -> None:
    folder = (await client.post("/v1/folders/", json={"name": "docs"})).json()
    assert (await client.post("/v1/folders/", json={"name": "docs"})).status_code == 409
    assert (await client.get("/v1/folders/name/docs")).json() == folder["id"]
    assert (await client.get("/v1/sources/count")).json() == 1

    first = (await _upload(client, "/v1/folders", folder["id"], "a.txt", b"alpha")).json()
    await job_finished(client, first["id"])
    again = await _upload(client, "/v1/folders", folder["id"], "a.txt", b"beta")
    assert again.json()["file_name"] == "a_(1).txt"
    await job_finished(client, again.json()["id"])
    refused = await _upload(
        client, "/v1/folders", folder["id"], "a.txt", b"x", duplicate_handling="error"
    )
    assert refused.status_code == 409
    skipped = await _upload(
        client, "/v1/folders", folder["id"], "a.txt", b"x", duplicate_handling="skip"
    )
    assert skipped.json()["id"] == first["id"]

    wrong = await _upload(client, "/v1/folders", folder["id"], "a.exe", b"MZ")
    assert wrong.status_code == 400 and "unsupported file type" in wrong.text
    broken = (await _upload(client, "/v1/folders", folder["id"], "b.pdf", b"not a pdf")).json()
    failed = await job_finished(client, broken["id"])
    assert failed["status"] == "failed"
    meta = (await client.get(f"/v1/folders/{folder['id']}/files/{broken['id']}")).json()
    assert meta["processing_status"] == "error" and "not a readable PDF" in meta["error_message"]

    files = (await client.get(f"/v1/folders/{folder['id']}/files", params={"limit": 1})).json()
    assert [f["id"] for f in files] == [first["id"]]
    rest = await client.get(f"/v1/folders/{folder['id']}/files", params={"after": first["id"]})
    assert [f["file_name"] for f in rest.json()] == ["a_(1).txt", "b.pdf"]
    gone = await client.delete(f"/v1/folders/{folder['id']}/{first['id']}")
    assert gone.status_code == 204
    chunks = (await client.get(f"/v1/folders/{folder['id']}/passages")).json()
    assert [c["text"] for c in chunks] == ["beta"]
    assert (await client.get("/v1/jobs/file-nope")).status_code == 404
    missing = await client.post("/v1/agents/", json={"name": "x", "source_ids": ["source-nope"]})
    assert missing.status_code == 404
