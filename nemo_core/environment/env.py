"""Nemotron-Agentic as an OpenReward environment: the SDK's `Environment`, bound to a store.

One session is one task (a gradeable decision point). The agent reads the conversation so far
(`get_messages`, or `get_prompt` flattened), lists the task's tools plus the shared `submit_message`, and makes
exactly one call, which ends the episode (`finished=True`) and is graded by the same core `grade` uses
(`actions.parse_action`, `grading.grade_action`): the reward, and as metadata the same fields as a `grade`
result line (`Breakdown.to_json`). A call of a tool the task does not offer is graded too, as a wrong name
(`grade` scores a prediction naming any tool the same way). Any second call is refused by the SDK's episode
latch; every tool here is `exclusive`, so two calls sent at once are never both graded.

Session secrets: `openai_api_key` (and optionally `openai_base_url`) turn on the LLM grader for message tasks
for that session (model `NEMO_GRADER_MODEL`, default gpt-5-mini), as the environment card says; without a
key, the keyword grader (the server's own `OPENAI_API_KEY` is not used: a session grades the same whoever
runs the server). The key goes to the session's `openai_base_url`, else OpenAI's, and lives only in that
session's `EndpointConfig` (hidden from repr) and client: never logged, put in an error, in metadata or the store.

The SDK's classmethods (`num_tasks`, `get_task`, ...) need the store at class level, so `environment_class`
makes a subclass bound to one `ServeContext` per serving process.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
import structlog
from fastapi import HTTPException
from openreward.environments import (Environment, ListToolsOutput, Message, RunToolError, RunToolOutput, TextBlock,
                                     ToolOutput, tool)
from pydantic import BaseModel, Field

from ..grading.actions import parse_action
from ..base.config import SPLITS, SUBMIT_MESSAGE
from ..data.decision_point import DecisionPoint
from ..grading.grade import grade_action
from ..grading.endpoint import DEFAULT_MODEL, EndpointConfig
from ..grading.llm_grader import LLMGrader
from ..data.store import Store
from .prompt import SUBMIT_MESSAGE_DESCRIPTION, SUBMIT_MESSAGE_SCHEMA, context_messages, task_tools_output
from .recorder import RunRecorder, Submission
from .tasks import TaskError, TaskIndex, check_task_spec

ENV_NAME = "Nemotron-Agentic"
SECRET_KEY = "openai_api_key"
SECRET_BASE_URL = "openai_base_url"


@dataclass
class ServeContext:
    """What one serving process shares between its sessions: the store it reads tasks from, the task order,
    and the recorder (None without `--record`)."""

    store: Store
    tasks: TaskIndex
    recorder: RunRecorder | None = None

    @property
    def llm_cache(self) -> Store | None:
        """Where LLM grades are cached: the recorder's writable store (the read-only one cannot hold them)."""
        return self.recorder.store if self.recorder is not None else None


class SubmitMessage(BaseModel):
    message: str = Field(description=SUBMIT_MESSAGE_SCHEMA["properties"]["message"]["description"])

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The workbench's schema for `submit_message`, exactly (pydantic's would add titles)."""
        return copy.deepcopy(SUBMIT_MESSAGE_SCHEMA)


def _bad_request(exc: Exception) -> HTTPException:
    return HTTPException(status_code=400, detail=str(exc))


class NemotronAgentic(Environment):
    """Unbound: `environment_class(context)` gives the class a server serves."""

    context: ClassVar[ServeContext | None] = None

    @classmethod
    def name(cls) -> str:
        return ENV_NAME

    @classmethod
    def _ctx(cls) -> ServeContext:
        if cls.context is None:
            raise RuntimeError("NemotronAgentic is not bound to a store: use environment_class(context)")
        return cls.context

    # ---- tasks -------------------------------------------------------------------------------------------
    @classmethod
    def list_splits(cls) -> list[str]:
        return list(SPLITS)

    @classmethod
    def list_tasks(cls, split: str) -> list[Any]:
        # 1.2 M task objects in one answer is not an API; the SDK turns this into a 400 naming the index API
        raise NotImplementedError("use num_tasks with get_task or get_task_range")

    @classmethod
    async def num_tasks(cls, split: str) -> int:
        try:
            return cls._ctx().tasks.count(split)
        except TaskError as exc:
            raise _bad_request(exc) from None

    # `async` where the work is an indexed lookup or less: the SDK runs a plain function in a thread, and the
    # hop costs more than the lookup (a range of up to `MAX_TASK_RANGE` tasks stays in a thread)
    @classmethod
    async def get_task(cls, split: str, index: int) -> dict[str, Any]:
        try:
            return cls._ctx().tasks.spec(split, index).to_json()
        except TaskError as exc:
            raise _bad_request(exc) from None

    @classmethod
    def get_task_range(cls, split: str, start: int | None = None, stop: int | None = None) -> list[dict[str, Any]]:
        try:
            return [spec.to_json() for spec in cls._ctx().tasks.specs(split, start, stop)]
        except TaskError as exc:
            raise _bad_request(exc) from None

    # ---- a session ---------------------------------------------------------------------------------------
    def __init__(self, task_spec: Any = {}, secrets: dict[str, str] = {}) -> None:  # noqa: B006 - the SDK's signature
        super().__init__(task_spec, {})
        ctx = self._ctx()
        try:
            self.spec = check_task_spec(dict(task_spec) if hasattr(task_spec, "keys") else task_spec, ctx.store)
        except TaskError as exc:
            raise _bad_request(exc) from None
        self._dp: DecisionPoint | None = None  # loaded by `setup`, on the event loop (see there)
        key = (secrets or {}).get(SECRET_KEY)
        self._llm: EndpointConfig | None = None
        if isinstance(key, str) and key.strip():
            # the session's key goes to the session's base URL, else OpenAI's: never to an endpoint the server
            # was configured with (`OPENAI_BASE_URL`), which the key's owner did not choose (see `keys.py`)
            base_url = (secrets or {}).get(SECRET_BASE_URL)
            self._llm = EndpointConfig(api_key=key, model=os.environ.get("NEMO_GRADER_MODEL") or DEFAULT_MODEL,
                                       base_url=base_url if isinstance(base_url, str) and base_url.strip() else None)
        self._created = time.monotonic()
        # the SDK binds the request's session id to structlog's context (copied into this thread)
        self._session_id = structlog.contextvars.get_contextvars().get("session_id") or None

    @property
    def dp(self) -> DecisionPoint:
        """The decision point (context, tools, expected action), read from the store once."""
        if self._dp is None:
            self._dp = self._ctx().store.get(self.spec.id)
        return self._dp

    async def setup(self) -> None:
        """Read the decision point. On the event loop, not in a thread: it is a few hundred microseconds of
        CPU (two indexed reads, decompressing and parsing the conversation), and under load the SDK's thread
        hops and the contention for the GIL they bring cost more than that. The SDK runs `setup` right after
        `/create` answers, before the session's next request is read."""
        self.dp  # noqa: B018 - loads it

    async def get_messages(self) -> list[Message]:
        return context_messages(self.dp.context)

    async def list_task_tools(self) -> ListToolsOutput:
        return task_tools_output(self.dp.toolset)

    # ---- the one call -------------------------------------------------------------------------------------
    @tool(exclusive=True)
    async def submit_message(self, params: SubmitMessage) -> ToolOutput:
        return await self._grade(SUBMIT_MESSAGE, {"message": params.message})

    async def _call_tool(self, name: str, input: Any) -> RunToolOutput:
        """The SDK dispatches calls to methods; a task's tools are data, so every name but `submit_message`
        is sent to one grading function, through the SDK's own locks and episode latch (`_invoke_tool_fn`)."""
        bad = _lone_surrogate(name) or _lone_surrogate(input)
        if bad is not None:  # JSON can escape one, but it is not text: nothing could store or return it
            return RunToolOutput(RunToolError(reason="input_validation", error=(
                f"the call holds a lone surrogate ({bad}), which is not valid Unicode text; send the text as "
                "UTF-8 (an escaped pair \\ud83d\\ude00 is fine)")))
        if name == SUBMIT_MESSAGE:
            return await super()._call_tool(name, input)
        if not isinstance(name, str) or not name.strip():
            return RunToolOutput(RunToolError(reason="not_found", error="a tool call needs a non-empty tool name"))
        start = time.monotonic()
        arguments = dict(input)

        async def call_task_tool() -> ToolOutput:
            return await self._grade(name, arguments)

        call_task_tool._env_tool = True  # type: ignore[attr-defined]
        call_task_tool._env_tool_exclusive = True  # type: ignore[attr-defined]
        return await self._invoke_tool_fn(name, call_task_tool, input, start)

    async def _grade(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        """A reply to a message task graded by the LLM grader waits on the network: in a thread. Anything
        else is graded in microseconds: on the event loop (see `setup`)."""
        if self._llm is not None and name == SUBMIT_MESSAGE and self.dp.action_type == "message":
            return await asyncio.to_thread(self._submit, name, arguments)
        return self._submit(name, arguments)

    def _submit(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        """Grade the call as `grade` grades the prediction {"type": "function_call", "name", "arguments"}, record
        it (journal first, before the reward goes back), and end the episode."""
        ctx = self._ctx()
        action = parse_action({"type": "function_call", "name": name, "arguments": arguments})
        llm = LLMGrader(self._llm, ctx.llm_cache) if self._llm is not None else None
        breakdown = grade_action(ctx.llm_cache, self.dp, action, grader="auto", llm=llm)
        metadata = breakdown.to_json(self.dp.id)
        if ctx.recorder is not None:
            extra = {"session_id": self._session_id} if self._session_id else None
            ctx.recorder.record(Submission.of(self.dp, action, breakdown, extra=extra,
                                              latency_ms=round((time.monotonic() - self._created) * 1000, 3)))
        text = f"reward {breakdown.reward}: {breakdown.reason}"
        return ToolOutput(blocks=[TextBlock(text=text)], metadata=metadata, reward=breakdown.reward, finished=True)


NemotronAgentic.submit_message.__doc__ = SUBMIT_MESSAGE_DESCRIPTION  # the SDK takes a tool's description from it


def _lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate (as `\\udXXX`) in the strings (keys included) of a JSON value, or None."""
    try:
        orjson.dumps(value)
        return None  # orjson refuses any str it cannot encode as UTF-8: this is the common, fast answer
    except TypeError:
        pass  # a surrogate, or only an integer beyond 64 bits: look
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return f"\\u{ord(item[exc.start]):04x}"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return None


def environment_class(context: ServeContext) -> type[NemotronAgentic]:
    """A `NemotronAgentic` bound to one serving process's store, task order and recorder."""
    return type("NemotronAgenticServed", (NemotronAgentic,), {"context": context})
