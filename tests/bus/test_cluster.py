"""Redis Cluster: a node's plain URL is detected, the ``redis+cluster://`` form selects it, and
every script of the runtime declares keys of one slot (the suites run on a cluster with
``MEMGRID_TEST_REDIS_CLUSTER=1``; here one small cluster is started whatever that says)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from redis.exceptions import RedisClusterException

from bus import BusSettings, connect, describe, detect_cluster, is_cluster, resolve_redis_url
from bus.lease import Lease, acquire, fenced
from tests._cluster import cluster_ports, redis_cluster


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(tmp_path_factory.mktemp("cluster"), cluster_ports()) as url:
        yield url


def test_a_plain_url_of_a_cluster_node_is_detected(cluster_url: str, tmp_path: Path) -> None:
    node = cluster_url.replace("redis+cluster://", "redis://")
    assert detect_cluster(node) == cluster_url
    settings = BusSettings(redis_url=node, home=tmp_path)
    assert resolve_redis_url(settings) == cluster_url


def test_other_urls_stay_as_they_are(redis_url: str) -> None:
    # The session's Redis: a single server, or a URL in the cluster form already.
    assert detect_cluster(redis_url) == redis_url
    assert detect_cluster("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"  # not answering
    assert detect_cluster("unix:///tmp/none.sock") == "unix:///tmp/none.sock"


async def test_a_cluster_url_gives_a_cluster_client_that_commits(cluster_url: str) -> None:
    client = connect(cluster_url)
    try:
        assert is_cluster(client)
        assert describe(client).startswith("redis+cluster://127.0.0.1:")
        for agent in ("a", "b", "c", "d"):  # agents on different nodes
            lease = await acquire(client, agent, "w-1", 5000)
            assert lease is not None
            async with fenced(client, lease, agent) as pipe:
                pipe.set(f"mg:{{{agent}}}:k", agent)
                pipe.xadd(f"mg:{{{agent}}}:s", {"e": "1"})
            assert await client.get(f"mg:{{{agent}}}:k") == agent.encode()
            assert await lease.renew()
    finally:
        await client.aclose()


async def test_a_new_cluster_client_runs_each_of_its_first_commands_once(
    cluster_url: str,
) -> None:
    # Its first commands at once (a worker's slots as it starts): none goes to the wrong node,
    # fails on a connection dropped by the slot map's reload, or runs twice on a retry.
    client = connect(cluster_url)
    try:
        keys = [f"mg:{{first-{i}}}:count" for i in range(64)]
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(client.incr, key)
        assert [int(await client.get(key)) for key in keys] == [1] * len(keys)
    finally:
        await client.aclose()


async def test_reads_of_streams_ask_no_node_for_their_keys(cluster_url: str) -> None:
    # redis-py finds the keys of XREAD and XREADGROUP with COMMAND GETKEYS (two round trips
    # before each read); memgrid's client reads them from the command.
    client = connect(cluster_url)

    async def lookups() -> int:
        total = 0
        for node in client.get_nodes():
            stats = await client.info("commandstats", target_nodes=node)
            total += sum(v["calls"] for k, v in stats.items() if k.startswith("cmdstat_command"))
        return total

    try:
        streams = [f"mg:{{reads-{i}}}:s" for i in range(6)]  # on every node
        for stream in streams:
            await client.xgroup_create(stream, "g", id="0", mkstream=True)
            await client.xadd(stream, {"a": "1"})
        before = await lookups()
        for stream in streams:
            [[name, [(_id, fields)]]] = await client.xread({stream: "0"}, count=1)
            assert (name, fields) == (stream.encode(), {b"a": b"1"})
            [[_name, [(_id, fields)]]] = await client.xreadgroup("g", "c", {stream: ">"}, 1)
            assert fields == {b"a": b"1"}
        assert await client.xreadgroup("g", "c", {streams[0]: ">"}, 1, block=10) == []
        assert await lookups() == before
    finally:
        await client.aclose()


async def test_a_commit_that_spans_slots_is_refused_before_it_runs(cluster_url: str) -> None:
    client = connect(cluster_url)

    async def commit_across_slots(lease: Lease) -> None:
        async with fenced(client, lease, "e") as pipe:
            pipe.set("mg:{e}:k", "1")
            pipe.set("mg:{zz}:k", "1")  # another agent's slot

    try:
        lease = await acquire(client, "e", "w-1", 5000)
        assert lease is not None
        with pytest.raises(RedisClusterException, match="same key slot"):
            await commit_across_slots(lease)
        assert await client.get("mg:{e}:k") is None
    finally:
        await client.aclose()
