"""Driving `serve-env` through the OpenReward SDK's own async client, for tests and `bench/bench_env.py`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

os.environ["OPENREWARD_DISABLE_UPDATE_CHECK"] = "1"

from openreward import AsyncOpenReward  # noqa: E402

ENV_NAME = "Nemotron-Agentic"
# The SDK client sends a request without a variant to the bare path ("/prompt") and the server redirects it to
# "/nemotron-agentic/prompt" (HTTP 308, a second round trip); naming the route saves those. The README's
# example (and `test_env_api`) uses the plain form.
VARIANT = "nemotron-agentic"


@dataclass
class Episode:
    """What one session saw and got back."""

    task_id: str | None = None
    sid: str | None = None
    messages: list[Any] | None = None
    tools: list[Any] | None = None
    prompt: list[Any] | None = None
    result: Any = None
    error: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_sync(coro: Any) -> Any:
    """`asyncio.run(coro)` in a thread of its own: in the full suite pytest-playwright's sync API keeps an
    event loop running in the main thread, where `asyncio.run` refuses to start another."""
    import threading

    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=target, name="env-client")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def client() -> AsyncOpenReward:
    return AsyncOpenReward(api_key="local-test")


async def episode(env: Any, tool: str | Callable[[list[Any]], tuple[str, dict]], args: dict | None = None, *,
                  task: Any = None, split: str | None = None, index: int | None = None,
                  secrets: dict | None = None, read: bool = False) -> Episode:
    """One session: optionally read the messages, tools and prompt, make one call, delete the session.
    `tool` may be a function of the listed tools returning (name, arguments) (it makes `read` list them)."""
    out = Episode(task_id=task.task_spec["id"] if task is not None else None)
    try:
        kwargs: dict[str, Any] = {"secrets": secrets} if secrets else {}
        session = env.session(task=task, **kwargs) if task is not None else env.session(split=split, index=index, **kwargs)
        async with session:
            out.sid = session.sid
            if read:
                out.messages = await session.get_messages()
                out.prompt = await session.get_prompt()
            if read or callable(tool):
                out.tools = await session.list_tools()
            name, arguments = tool(out.tools) if callable(tool) else (tool, args or {})
            out.extra["call"] = (name, arguments)
            out.result = await session.call_tool(name, arguments)
    except Exception as exc:  # noqa: BLE001 - the caller looks at what failed
        out.error = exc
    return out


async def run_all(base_url: str, jobs: list[Callable[[Any], Awaitable[Episode]]], concurrency: int = 16) -> list[Episode]:
    """Run episode jobs (each a function of the environment handle) at most `concurrency` at a time."""
    or_client = client()
    env = or_client.environments.get(ENV_NAME, variant=VARIANT, base_url=base_url)
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[Any], Awaitable[Episode]]) -> Episode:
        async with gate:
            return await job(env)

    try:
        return list(await asyncio.gather(*(one(j) for j in jobs)))
    finally:
        await or_client.environments.aclose()


async def all_tasks(base_url: str) -> list[Any]:
    """Every task of both splits (through `get_task_range`, a page at a time)."""
    or_client = client()
    env = or_client.environments.get(ENV_NAME, variant=VARIANT, base_url=base_url)
    try:
        out = []
        for split in await env.list_splits():
            n = await env.num_tasks(split)
            for start in range(0, n, 1000):
                out += await env.get_task_range(split, start, min(n, start + 1000))
        return out
    finally:
        await or_client.environments.aclose()


async def load(base_url: str, make_job: Callable[[int], Callable[[Any], Awaitable[Episode]]], stop: Any,
               concurrency: int = 8, limit: int = 10_000) -> list[Episode]:
    """Run episodes `make_job(0)`, `make_job(1)`, ... `concurrency` at a time until `stop` (a
    `threading.Event`) is set or `limit` episodes ran; episodes still running then are cancelled (their
    `error` says so). Returns every episode started, in order."""
    or_client = client()
    env = or_client.environments.get(ENV_NAME, variant=VARIANT, base_url=base_url)
    episodes: list[Episode] = []
    running: set[asyncio.Task] = set()
    n = 0
    try:
        while n < limit and not stop.is_set():
            while len(running) < concurrency and n < limit:
                job = make_job(n)
                placeholder = Episode(extra={"n": n}, error=asyncio.CancelledError("did not finish"))
                episodes.append(placeholder)

                async def run(job=job, slot=len(episodes) - 1, n=n) -> None:
                    ep = await job(env)
                    ep.extra["n"] = n
                    episodes[slot] = ep

                running.add(asyncio.create_task(run()))
                n += 1
            if not running:
                break
            done, running = await asyncio.wait(running, timeout=0.05, return_when=asyncio.FIRST_COMPLETED)
        for _ in range(3):  # a cancelled session's cleanup may retry against a server that is gone: cancel again
            for task in running:
                task.cancel()
            if not running:
                break
            _done, running = await asyncio.wait(running, timeout=0.5)
    finally:
        try:
            await asyncio.wait_for(or_client.environments.aclose(), 2)
        except Exception:  # noqa: BLE001 - the server may be gone
            pass
    return episodes
