"""``memgrid doctor``: what each part is, whether it answers, and the fix when it does not."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import msgspec
import redis.asyncio as aioredis

from agents.llm import LLMSettings
from bus import BusSettings, RedisUnavailable, connect, resolve_redis_url
from storage.settings import StorageSettings

__all__ = ("Check", "run_checks")


class Check(msgspec.Struct, kw_only=True):
    """One part's state: ``ok``, ``warn`` (works, with a caveat) or ``fail``."""

    part: str
    status: str
    detail: str
    fix: str = ""


def _fail(part: str, detail: str, fix: str = "") -> Check:
    return Check(part=part, status="fail", detail=detail, fix=fix)


async def _redis() -> Check:
    settings = BusSettings.from_env()
    try:
        url = await anyio.to_thread.run_sync(resolve_redis_url, settings)
    except RedisUnavailable as exc:
        return _fail("redis", str(exc), "see the message above")
    client: aioredis.Redis = connect(url)
    try:
        with anyio.fail_after(5):
            info = await client.info()
    except Exception as exc:
        return _fail(
            "redis",
            f"{url} does not answer: {exc}",
            "check MEMGRID_REDIS_URL, or unset it to use the local server",
        )
    finally:
        await client.aclose()
    version = str(info.get("redis_version"))
    aof = "on" if int(info.get("aof_enabled", 0)) else "off"
    where = "local server" if not settings.redis_url else "MEMGRID_REDIS_URL"
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < (6, 2):
        return _fail("redis", f"Redis {version} at {url}", "memgrid needs Redis 6.2 or newer")
    status = "ok" if aof == "on" or settings.redis_url else "warn"
    return Check(
        part="redis",
        status=status,
        detail=f"Redis {version} at {url} ({where}), AOF {aof}, "
        f"{info.get('used_memory_human')} used",
        fix="" if status == "ok" else "turn appendonly on for durability",
    )


async def _qdrant() -> Check:
    from storage.passages import PassageStoreLockedError, open_passage_store

    settings = StorageSettings.from_env()
    where = settings.qdrant_url or str(settings.home / "qdrant")
    engine = "Qdrant server (qdrant-client)" if settings.qdrant_url else "embedded qdrant-edge"
    try:
        store = await anyio.to_thread.run_sync(open_passage_store, settings)
    except PassageStoreLockedError:
        return Check(
            part="qdrant",
            status="ok",
            detail=f"{engine} at {where}, open in another memgrid process (it serves it)",
        )
    except Exception as exc:
        return _fail(
            "qdrant",
            f"{engine} at {where}: {exc}",
            "check MEMGRID_QDRANT_URL, or unset it to use the embedded engine",
        )
    try:
        with anyio.fail_after(10):
            await store.count("doctor-probe")
    except Exception as exc:
        return _fail("qdrant", f"{engine} at {where}: {exc}")
    finally:
        await store.aclose()
    return Check(part="qdrant", status="ok", detail=f"{engine} at {where}")


async def _embedder() -> Check:
    from storage.embeddings.factory import embedder_from_handle

    settings = StorageSettings.from_env()
    try:
        embedder = embedder_from_handle(settings.embedding, settings)
    except Exception as exc:
        return _fail(
            "embedder",
            f"{settings.embedding}: {exc}",
            "set MEMGRID_EMBEDDING to local/all-MiniLM-L6-v2 or openai/<model>",
        )
    try:
        started = time.perf_counter()
        with anyio.fail_after(60):
            [vector] = await embedder.embed(["memgrid doctor checks the embedder"])
        took = (time.perf_counter() - started) * 1000
    except Exception as exc:
        return _fail(
            "embedder",
            f"{settings.embedding}: {exc}",
            "run `make install` (prepares the local model) or check OPENAI_BASE_URL",
        )
    finally:
        await embedder.aclose()
    return Check(
        part="embedder",
        status="ok",
        detail=f"{embedder.handle}, {len(vector)}-d, one sample in {took:.0f} ms",
    )


async def _llm() -> Check:
    import openai

    settings = LLMSettings.from_env()
    if not settings.base_url and not settings.api_key:
        return Check(
            part="llm",
            status="warn",
            detail="no model endpoint configured; the demo and tests use the scripted model",
            fix="set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (vLLM, Ollama, LiteLLM...)",
        )
    url = settings.base_url or "https://api.openai.com/v1"
    client = openai.AsyncOpenAI(
        base_url=settings.base_url,
        api_key=settings.api_key or "not-needed",
        timeout=10,
        max_retries=0,
    )
    try:
        with anyio.fail_after(15):
            models = [m.id async for m in client.models.list()]
    except Exception as exc:
        return _fail(
            "llm",
            f"{url} does not answer: {type(exc).__name__}: {exc}",
            "check OPENAI_BASE_URL and OPENAI_API_KEY",
        )
    finally:
        await client.close()
    shown = ", ".join(models[:8]) + (" ..." if len(models) > 8 else "")
    return Check(part="llm", status="ok", detail=f"{url} answers; models: {shown or 'none'}")


CHECKS: tuple[Callable[[], Awaitable[Check]], ...] = (_redis, _qdrant, _embedder, _llm)


async def run_checks() -> list[Check]:
    """Every check, in order (each bounded by its own timeout)."""
    return [await check() for check in CHECKS]
