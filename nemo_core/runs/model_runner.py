"""Ask a model for its action at a decision point, through any OpenAI-compatible endpoint.

Used by the decision point page ("Try", a model's answer) and by `run-model` (whole runs). It sends exactly
the request `request.build_request` builds (the context and the offered tools, `submit_message` included)
with `tool_choice="required"`: the environment asks for one tool call per turn. A server that refuses that
value (HTTP 400 naming `tool_choice`; several open-source servers do) is asked again with `"auto"`, and the
runner remembers it, so a run does not pay the refusal on every decision point.

The reply becomes one `Action` (the same parsing `grade` applies to a prediction file, `actions.parse_action`):
a tool call -> a function call (a call of `submit_message` -> the message action); several tool calls -> the
first, with a note; no tool call -> a message action with the reply's text.

Nothing here raises for a model or endpoint problem: every outcome is a `ModelAnswer`. A failure
(`error_kind` set, `action` None) is one of: `timeout`, `rate_limited` (429, after backoff), `server_error`
(5xx, after backoff), `connection`, `context_too_long`, `bad_request` (another 4xx), `auth`,
`invalid_response` (an HTTP 200 that is not a chat completion), `empty_reply`, `invalid_action`.
Two model mistakes are *graded*, not failed, because SPEC §4 scores them and `grade` would score the same
action the same way: arguments that are not a JSON object (`malformed_arguments`: `invalid_arguments`, the
name still counts) and a call of a tool that is not offered (`unknown_tool`: `wrong_name`). Both keep their
`error_kind` and `error` text so a run can count them.

Timeouts are not retried by default: a request that ran past the timeout has already cost the whole timeout,
and a run records it and moves on (a resumed run asks again; see `commands/run_model.py`). 429 and 5xx are
retried with exponential backoff (honouring `retry-after`).

The endpoint is an `endpoint.EndpointConfig` (the one configuration the LLM grader uses too; made with
`EndpointConfig.for_model`, which reads `OPENAI_API_KEY` and `OPENAI_BASE_URL`); what is asked besides is a
`ModelRequest`. The API key lives only in the configuration (hidden from repr) and the client: it is never
stored, logged or put into an error text. Whatever the endpoint returns may echo a key (it received one, or
learnt one), so every answer leaves `answer` with every key this process knows taken out (`keys.redact_json`:
this runner's key, `EndpointConfig.redact_keys`, `OPENAI_API_KEY`): the action, the raw reply, the error
and the notes, before anything shows or stores them.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..base.config import SUBMIT_MESSAGE
from ..base.errors import NemoError
from ..data.store import Store
from ..grading.actions import Action, ActionError, parse_action
from ..grading.grade import RULE_VERSION, Breakdown, grade_action, resolve_grader
from ..grading.endpoint import Endpoint, EndpointConfig
from ..grading.keys import redact, redact_json
from ..grading.request import build_request
from .executor import Executor
from .owner import RunOutcome, RunOwner
from .run import RunError, prediction_row

TOOL_CHOICE = "required"
FALLBACK_TOOL_CHOICE = "auto"
# Failures after which asking again later may succeed (a resumed run retries these).
TRANSIENT_ERRORS = ("timeout", "rate_limited", "server_error", "connection")
# Model mistakes that are still graded (SPEC §4), recorded with their error text.
GRADED_ERRORS = ("malformed_arguments", "unknown_tool")

_CONTEXT_MARKERS = ("context_length_exceeded", "context length", "maximum context", "too many tokens",
                    "prompt is too long", "context window", "input is too long", "max_model_len")


class ModelNotConfigured(NemoError):
    """No endpoint or key to ask a model with."""

    hint = "set OPENAI_API_KEY, or give --base-url of an OpenAI-compatible server (a local one may need no key)"


@dataclass(frozen=True)
class ModelRequest:
    """What the runner asks for besides the endpoint (`endpoint.EndpointConfig`): earlier reasoning left in the
    context or not, the tool choice, and the sampling limits."""

    include_reasoning: bool = False
    tool_choice: str = TOOL_CHOICE
    temperature: float | None = None
    max_tokens: int | None = None


def check_model_config(config: EndpointConfig) -> None:
    """`ModelNotConfigured` when there is no model name, or neither a key nor a base URL to ask."""
    if not config.model or not config.model.strip():
        raise ModelNotConfigured("no model name", "give --model, e.g. --model gpt-5-mini")
    if not config.configured and not config.base_url:
        raise ModelNotConfigured("no API key and no base URL: nothing to ask")


@dataclass
class ModelAnswer:
    """One model reply at one decision point, parsed; or why there is none.

    `action` is None exactly when `error_kind` is a failure (not in `GRADED_ERRORS`).
    """

    dp_id: str
    model: str
    action: Action | None = None
    error: str | None = None
    error_kind: str | None = None
    raw_response: dict[str, Any] | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    attempts: int = 0
    tool_choice: str | None = None
    finish_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.action is None

    @property
    def transient(self) -> bool:
        return self.error_kind in TRANSIENT_ERRORS

    @property
    def raw_message(self) -> dict[str, Any] | None:
        """The assistant message of the reply (what a prediction file's `raw` would hold)."""
        try:
            return self.raw_response["choices"][0]["message"]  # type: ignore[index]
        except (TypeError, KeyError, IndexError):
            return None

    def action_json(self) -> dict[str, Any] | None:
        return self.action.to_json() if self.action is not None else None

    def extra(self) -> dict[str, Any]:
        """What a stored prediction or attempt keeps besides the action and the breakdown."""
        return {
            "model": self.model,
            "latency_ms": self.latency_ms,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "attempts": self.attempts,
            "tool_choice": self.tool_choice,
            "finish_reason": self.finish_reason,
            "error_kind": self.error_kind,
            "error": self.error,
            "notes": self.notes,
            "raw": self.raw_message,
        }


def _status_message(exc: Any) -> str:
    """The error text of an API status error, from its JSON body when there is one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        parts = [str(err.get(k)) for k in ("message", "code", "param") if err.get(k)]
        if parts:
            return " ".join(parts)
    return str(getattr(exc, "message", "") or exc)


def is_context_too_long(status: int, message: str) -> bool:
    low = message.lower()
    return status in (400, 413, 422) and any(m in low for m in _CONTEXT_MARKERS)


def is_tool_choice_refusal(status: int, message: str) -> bool:
    return status in (400, 422) and "tool_choice" in message.lower()


def graded_mistake(action: Action, task_tools: Any) -> tuple[str | None, str | None]:
    """(error_kind, error) of the two mistakes that are graded, not failed (see the module docstring): a call
    whose arguments are not a JSON object, a call of a tool that is not offered; (None, None) otherwise.
    Shared with the baseline policies' runner (`policy_runner.py`), so their answers are recorded alike."""
    if action.type != "function_call":
        return None, None
    kind = error = None
    if action.arguments_error is not None:
        kind = "malformed_arguments"
        error = f"the arguments of {action.name} are not a JSON object ({action.arguments_error}); " \
                "graded as invalid_arguments"
    if action.name not in set(task_tools) | {SUBMIT_MESSAGE}:
        kind = kind or "unknown_tool"
        text = f"called {action.name!r}, which is not one of the offered tools; graded as a wrong name"
        error = f"{error}; {text}" if error else text
    return kind, error


class ModelRunner:
    """One configured model; thread-safe (`run-model` asks with several threads)."""

    def __init__(self, config: EndpointConfig, request: ModelRequest | None = None, *, check: bool = True):
        if check:  # a dry run builds requests without anything to send them to
            check_model_config(config)
        self.config = config
        self.request = request or ModelRequest()
        self.endpoint = Endpoint(config)
        self.tool_choice = self.request.tool_choice
        self._keys = self.endpoint.keys

    @property
    def requests_sent(self) -> int:
        return self.endpoint.requests_sent

    def redact(self, text: str) -> str:
        return self.endpoint.redact(text)

    def redact_answer(self, out: "ModelAnswer") -> "ModelAnswer":
        """`out` with every known key taken out of what the endpoint returned (and of the texts built from it)."""
        if not self._keys:
            return out
        if out.action is not None:
            action = out.action
            out.action = dataclasses.replace(
                action, name=redact(action.name, self._keys) if action.name is not None else None,
                arguments=redact_json(action.arguments, self._keys) if action.arguments is not None else None,
                arguments_raw=redact_json(action.arguments_raw, self._keys),
                arguments_error=self.redact(action.arguments_error) if action.arguments_error else action.arguments_error,
                content=self.redact(action.content) if action.content is not None else None)
        out.raw_response = redact_json(out.raw_response, self._keys)
        out.error = self.redact(out.error) if out.error else out.error
        out.notes = [self.redact(n) for n in out.notes]
        return out

    def request_body(self, dp: Any, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full body sent for `dp` (what `--dry-run` prints): model, messages, tools, tool_choice."""
        req = request if request is not None else build_request(dp, include_reasoning=self.request.include_reasoning)
        body: dict[str, Any] = {"model": self.config.model, "messages": req["messages"], "tools": req["tools"],
                                "tool_choice": self.tool_choice}
        if self.request.temperature is not None:
            body["temperature"] = self.request.temperature
        if self.request.max_tokens is not None:
            body["max_completion_tokens"] = self.request.max_tokens
        return body

    # ---- asking ------------------------------------------------------------------------------------
    def answer(self, dp: Any, request: dict[str, Any] | None = None) -> ModelAnswer:
        """The model's action at `dp` (a `DecisionPoint` or anything with `.id`, `.context`, `.tools`,
        `.toolset`). `request` (from `build_request`) is sent as is when given, e.g. the one a page shows.
        Every known key is taken out of the answer (`redact_answer`)."""
        return self.redact_answer(self._answer(dp, request))

    def _answer(self, dp: Any, request: dict[str, Any] | None) -> ModelAnswer:
        import openai

        cfg = self.config
        body = self.request_body(dp, request)
        out = ModelAnswer(dp_id=dp.id, model=cfg.model)
        transient = 0
        started = time.perf_counter()
        while True:
            out.attempts += 1
            body["tool_choice"] = self.tool_choice
            out.tool_choice = self.tool_choice
            try:
                response = self.endpoint.create(**body)
            except openai.APIStatusError as exc:
                status = exc.status_code
                message = self.redact(_status_message(exc))[:500]
                if is_tool_choice_refusal(status, message) and self.tool_choice != FALLBACK_TOOL_CHOICE:
                    out.notes.append(f"the server refused tool_choice={self.tool_choice!r} (HTTP {status}); "
                                     f"asked again with {FALLBACK_TOOL_CHOICE!r}")
                    self.tool_choice = FALLBACK_TOOL_CHOICE
                    continue
                if status == 429 or status >= 500:
                    transient += 1
                    kind = "rate_limited" if status == 429 else "server_error"
                    if transient < cfg.max_attempts:
                        time.sleep(self.endpoint.delay(transient, exc.response.headers.get("retry-after")))
                        continue
                    return self._fail(out, started, kind, f"HTTP {status} after {out.attempts} attempts: {message}")
                if is_context_too_long(status, message):
                    return self._fail(out, started, "context_too_long", f"HTTP {status}: the context is too long "
                                      f"for the model: {message}")
                kind = "auth" if status in (401, 403) else "bad_request"
                return self._fail(out, started, kind, f"HTTP {status}: {message}")
            except openai.APITimeoutError:
                if cfg.retry_timeouts:
                    transient += 1
                    if transient < cfg.max_attempts:
                        continue
                return self._fail(out, started, "timeout", f"no reply within {cfg.timeout:g} s "
                                  f"({out.attempts} attempt{'s' if out.attempts != 1 else ''})")
            except openai.APIConnectionError as exc:
                transient += 1
                if transient < cfg.max_attempts:
                    time.sleep(self.endpoint.delay(transient, None))
                    continue
                return self._fail(out, started, "connection", f"cannot reach {cfg.base_url or 'the API'} after "
                                  f"{out.attempts} attempts ({self.redact(str(exc))[:200]})")
            except openai.OpenAIError as exc:  # e.g. a 200 whose body does not validate
                return self._fail(out, started, "invalid_response", f"{type(exc).__name__}: {self.redact(str(exc))[:300]}")
            except ValueError as exc:  # an HTTP 200 whose body is not JSON (a proxy's error page, say)
                return self._fail(out, started, "invalid_response", f"the response body is not JSON ({str(exc)[:120]})")
            out.latency_ms = (time.perf_counter() - started) * 1000
            return self._parse(out, response, dp)

    def _fail(self, out: ModelAnswer, started: float, kind: str, message: str) -> ModelAnswer:
        out.latency_ms = (time.perf_counter() - started) * 1000
        return self._fail_parsed(out, kind, message)

    def _parse(self, out: ModelAnswer, response: Any, dp: Any) -> ModelAnswer:
        try:
            out.raw_response = response.model_dump(mode="json")
        except Exception:  # noqa: BLE001 - a reply object that cannot be dumped is still parsed below
            out.raw_response = None
        usage = getattr(response, "usage", None)
        if usage is not None:
            out.prompt_tokens = getattr(usage, "prompt_tokens", None)
            out.completion_tokens = getattr(usage, "completion_tokens", None)
            out.total_tokens = getattr(usage, "total_tokens", None)
        choices = getattr(response, "choices", None)
        if not choices:
            return self._fail_parsed(out, "invalid_response", "the reply has no choices")
        choice = choices[0]
        out.finish_reason = getattr(choice, "finish_reason", None)
        if out.finish_reason == "length":
            out.notes.append("the reply was cut at the token limit (finish_reason 'length')")
        message = getattr(choice, "message", None)
        if message is None:
            return self._fail_parsed(out, "invalid_response", "the reply has no message")
        calls = [
            {"type": "function", "id": c.id,
             "function": {"name": getattr(c.function, "name", None), "arguments": getattr(c.function, "arguments", None)}}
            for c in (message.tool_calls or []) if getattr(c, "function", None) is not None
        ]
        content = message.content
        if not calls and content is None and getattr(message, "refusal", None):
            content = message.refusal
            out.notes.append("the model refused; its refusal is graded as its message")
        if not calls and content is None:
            return self._fail_parsed(out, "empty_reply", "the reply has neither a tool call nor text")
        assistant: dict[str, Any] = {"role": "assistant", "content": content if content is not None else ""}
        if calls:
            assistant["tool_calls"] = calls
        else:
            out.notes.append("no tool call: the reply's text is graded as a message action")
        try:
            action = parse_action(assistant)
        except ActionError as exc:
            return self._fail_parsed(out, "invalid_action", exc.one_line()[:500])
        if action.ignored_calls:
            out.notes.append(f"{len(calls)} tool calls: the first ({calls[0]['function']['name']}) is graded, "
                             f"{action.ignored_calls} ignored")
        out.action = action
        out.error_kind, out.error = graded_mistake(action, dp.toolset.names)
        return out

    @staticmethod
    def _fail_parsed(out: ModelAnswer, kind: str, message: str) -> ModelAnswer:
        """A failure; the error text starts with its kind in words ("timeout: ...", "invalid action: ..."),
        which is what the failure taxonomy (`taxonomy.runner_error_kind`) reads."""
        out.error_kind = kind
        out.error = f"{kind.replace('_', ' ')}: {message}"
        out.action = None
        return out


def answer_json(answer: ModelAnswer) -> str:
    """An answer as indented JSON (for the CLI's output and debugging)."""
    data = {"dp_id": answer.dp_id, "action": answer.action_json(), **answer.extra()}
    return json.dumps(data, indent=2, ensure_ascii=False)


# ---- whole runs (`run-model`) ----------------------------------------------------------------------------
def public_url(url: str | None) -> str | None:
    """A base URL as it may be stored: without user:password and query (where a key could hide)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def select_ids(store: Any, flt: Any = None, *, limit: int | None = None, sample_seed: int | None = None) -> list[str]:
    """The decision points a run covers: the filter's ids in store order, the first `limit` of them, or with
    `sample_seed` a seeded random sample of `limit` (all of them, shuffled, without a limit). The same seed
    on the same store gives the same ids, so a sampled run can be resumed."""
    if sample_seed is None:
        return store.ids(flt, limit=limit)
    # Drawn from the rowids (in the order of `store.ids`): `random.sample` and `shuffle` pick by position,
    # so the draw is the one the ids themselves would give, and only the drawn ids are read.
    rowids = store.rowids(flt)
    rng = random.Random(sample_seed)
    if limit is not None and limit < len(rowids):
        return store.ids_of_rowids(rng.sample(rowids, limit))
    rng.shuffle(rowids)
    return store.ids_of_rowids(rowids)


@dataclass
class ModelRunResult:
    """What a `run_model` call did (this invocation; the stored run may hold earlier ones too)."""

    run_id: int
    run_name: str
    resumed: bool = False
    n_selected: int = 0
    n_skipped: int = 0  # already done in an earlier invocation of the same run
    n_answered: int = 0
    n_graded: int = 0
    n_failed: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False


def asks_again(extra: str | None) -> bool:
    """Whether a stored answer (its `extra` JSON) failed for a reason asking again may fix (`TRANSIENT_ERRORS`):
    a resumed run asks those again; every other answer is done."""
    kind = None
    if extra:
        try:
            kind = json.loads(extra).get("error_kind")
        except (ValueError, AttributeError):
            kind = None
    return kind in TRANSIENT_ERRORS


def run_model(store: Store, runner: ModelRunner, ids: list[str], *, run_name: str, grader: str = "auto",
              llm: Any = None, concurrency: int = 4, progress: bool = False, settings: dict | None = None,
              on_result: Callable[[ModelAnswer, Breakdown | None], None] | None = None) -> ModelRunResult:
    """Ask `runner`'s model at each id, grade each answer with `grade.grade_action`, store each as a prediction
    of run `run_name` (kind `run-model`, the same tables `grade` writes) as soon as it is graded: `concurrency`
    requests at once on the one executor, the run owned by `owner.RunOwner`.

    Resumable: when the run exists (same name, kind `run-model`, same model), ids already done are skipped,
    and transient failures (timeouts, 429, 5xx, connection) are asked again and their old rows replaced.
    A failure is stored as a prediction with `reward` None and its error; nothing here raises for one.
    """
    chosen = resolve_grader(grader, llm.config if llm is not None and hasattr(llm, "config") else llm)
    run, result, done = _open_run(store, runner, ids, run_name=run_name, grader=chosen,
                                  grader_model=getattr(llm, "model", None) if chosen == "llm" else None,
                                  settings=settings)
    line_of = {dp_id: n for n, dp_id in enumerate(ids, start=1)}
    todo = [i for i in ids if i not in done]
    result.n_selected, result.n_skipped = len(ids), len(ids) - len(todo)
    tally = _Tally(result, on_result, _bar(progress, len(todo), runner.config.model))

    def one(dp_id: str) -> tuple[str, Any, ModelAnswer, Breakdown | None]:
        dp = store.get(dp_id)
        answer = runner.answer(dp)
        breakdown = None
        if answer.action is not None:
            try:
                breakdown = grade_action(store, dp, answer.action, grader=chosen, llm=llm)
            except NemoError as exc:  # cannot happen for a parsed action, but never lose the answer
                answer.error_kind, answer.error = "invalid_action", exc.one_line()[:500]
        return dp_id, dp, answer, breakdown

    started = time.perf_counter()
    try:
        with run.lifetime(lambda: RunOutcome(n_lines=len(ids))), Executor(max(1, concurrency), name="run-model") as ex:
            for dp_id, dp, answer, breakdown in ex.map(one, todo, ordered=False):
                run.add(prediction_row(run.run_id, dp_id, breakdown, action=answer.action_json(), extra=answer.extra(),
                                       split=dp.split, action_type=dp.action_type, error=answer.error,
                                       latency_ms=answer.latency_ms, line=line_of.get(dp_id))[1:])
                tally(answer, breakdown)
    except KeyboardInterrupt:
        result.interrupted = True
        raise
    finally:
        tally.close()
        result.seconds = time.perf_counter() - started
    return result


def _open_run(store: Store, runner: ModelRunner, ids: list[str], *, run_name: str, grader: str,
              grader_model: str | None, settings: dict | None) -> tuple[RunOwner, ModelRunResult, set[str]]:
    """The run to store into: a new one, or the one of that name resumed (same kind and model), with the ids it
    already holds a final answer for."""
    existing = store.query("SELECT id, kind, model FROM runs WHERE name = ?", (run_name,))
    if not existing:
        try:
            run = RunOwner.create(store, run_name, kind="run-model", grader=grader, grader_model=grader_model,
                                  rule_version=RULE_VERSION, model=runner.config.model, n_lines=len(ids),
                                  settings={**(settings or {}), "base_url": public_url(runner.config.base_url)},
                                  commit_rows=1)
            return run, ModelRunResult(run.run_id, run_name), set()
        except RunError:  # another process created it a moment ago: resume it (or hear who is running it)
            existing = store.query("SELECT id, kind, model FROM runs WHERE name = ?", (run_name,))
            if not existing:
                raise
    row = existing[0]
    if row["kind"] != "run-model":
        raise RunError(f"a run named {run_name!r} already exists and is a {row['kind']!r} run",
                       "choose another --run name")
    if row["model"] != runner.config.model:
        raise RunError(f"run {run_name!r} was made with model {row['model']!r}, not {runner.config.model!r}",
                       "resume it with the same --model, or choose another --run name")
    run, done = RunOwner.resume(store, row["id"], run_name, n_lines=len(ids), redo=asks_again)
    return run, ModelRunResult(row["id"], run_name, resumed=True), done


def _bar(progress: bool, total: int, model: str) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="dp", desc=f"run-model {model}", dynamic_ncols=True)


class _Tally:
    """A model run's counts as answers come (tokens, latencies, failures by kind), and its progress bar."""

    def __init__(self, result: ModelRunResult, on_result: Callable[[ModelAnswer, Breakdown | None], None] | None,
                 bar: Any):
        self.result, self.on_result, self.bar = result, on_result, bar
        self.rewards: list[float] = []

    def __call__(self, answer: ModelAnswer, breakdown: Breakdown | None) -> None:
        result = self.result
        result.n_answered += 1
        if answer.error_kind:
            result.error_kinds[answer.error_kind] = result.error_kinds.get(answer.error_kind, 0) + 1
        if breakdown is not None and breakdown.reward is not None:
            result.n_graded += 1
            self.rewards.append(breakdown.reward)
        if answer.action is None:
            result.n_failed += 1
        result.prompt_tokens += answer.prompt_tokens or 0
        result.completion_tokens += answer.completion_tokens or 0
        if answer.latency_ms is not None:
            result.latencies_ms.append(answer.latency_ms)
        if self.on_result is not None:
            self.on_result(answer, breakdown)
        if self.bar is not None:
            self.bar.update(1)
            mean = sum(self.rewards) / len(self.rewards) if self.rewards else float("nan")
            self.bar.set_postfix(mean_reward=f"{mean:.3f}", failed=result.n_failed, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
