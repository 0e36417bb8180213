"""Answers in the shapes other harnesses write them, each turned by one small adapter into an `Action`.

`grade` and the Runs page upload read one prediction per line: `{"id": ..., "action": <the answer>}` (or
`"response"` in place of `"action"`), where the answer is what the model returned, in any of these shapes:

- our own action, an OpenAI assistant message, an OpenAI tool call (`actions.parse_action`, SPEC §3);
- an OpenAI Chat Completion (`{"choices": [{"message": ...}]}`): its first choice's message, a `refusal`
  graded as the reply's text (as `run-model` does);
- an OpenAI Responses API response (`{"object": "response", "output": [...]}`), its `output` list, or one
  output item: `function_call` items (`name`, `arguments`) are the calls, `message` items' `output_text`
  (and `refusal`) parts the text; `reasoning` and other items are left out; a response with status
  `failed` is a failed request;
- an Anthropic Messages response (`{"type": "message", "role": "assistant", "content": [...]}`):
  `tool_use` blocks (`name`, `input`) are the calls, `text` blocks the text, thinking left out; an error
  response (`{"type": "error", "error": {...}}`) is a failed request;
- a Gemini `generateContent` response (`{"candidates": [{"content": {"parts": [...]}}]}`), one candidate's
  `content`, or one part: `functionCall` parts (`name`, `args`) are the calls, `text` parts (not `thought`
  ones) the text; no candidate (a blocked prompt) or a candidate without content is a failed request;
- an OpenAI Batch API output line (`{"id", "custom_id", "response": {"status_code", "request_id", "body"},
  "error"}`), read whole as a prediction line: `custom_id` is the decision point id and the answer is
  `response.body` (a Chat Completion or a Responses API response); a line with an `error`, or a status
  other than 200, is a failed request. Its `response` object alone is accepted as an answer too.

Every shape becomes an OpenAI assistant message (the calls in order, the text joined) that `parse_action`
grades as usual: the first call when there are several (the breakdown says how many were ignored), a call
of `submit_message` as the message action, no call as the message. A failed request raises `AnswerFailed`,
whose text starts with its kind in the words `run-model` uses ("server error: ...", "rate limited: ...",
"bad request: ...", "empty reply: ...", "invalid response: ..."), so the run's failure taxonomy files it as
an API error or an empty reply, not as a malformed action. An answer in none of the shapes is an
`ActionError` that lists them (`ACCEPTED_SHAPES`).
"""

from __future__ import annotations

from typing import Any

from .actions import Action, ActionError, decode_action, parse_action
from ..data.records import json_kind

ACCEPTED_SHAPES = (
    "our action {\"type\": \"function_call\"|\"message\", ...}, an OpenAI assistant message or tool call, an "
    "OpenAI Chat Completion, an OpenAI Responses API response (or its output list or one output item), an "
    "Anthropic Messages response, a Gemini generateContent response (or a candidate's content, or a "
    "functionCall part), or an OpenAI Batch output line / its response"
)
_RESPONSES_ITEMS = frozenset({"function_call", "message", "reasoning", "web_search_call", "file_search_call",
                              "computer_call", "code_interpreter_call", "image_generation_call", "mcp_call",
                              "mcp_list_tools", "custom_tool_call", "local_shell_call"})
_ANTHROPIC_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking", "server_tool_use",
                               "web_search_tool_result"})


class AnswerFailed(ActionError):
    """The harness says there is no answer: a failed request, an error body, a blocked or empty reply."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def problem_text(exc: ActionError) -> str:
    """A line's error for an answer that could not be graded: a failed request as its kind says, anything
    else as an invalid action."""
    return str(exc) if isinstance(exc, AnswerFailed) else f"invalid action: {exc}"


def _kind_of_status(status: Any) -> str:
    if status == 429:
        return "rate limited"
    if isinstance(status, int) and status >= 500:
        return "server error"
    if status in (401, 403):
        return "auth"
    return "bad request"


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        parts = [str(error[k]) for k in ("code", "type", "status", "message") if error.get(k) not in (None, "")]
        return ": ".join(parts)[:300] or "no detail"
    return str(error)[:300]


# ---- OpenAI Batch -------------------------------------------------------------------------------------
def is_batch_output_line(obj: Any) -> bool:
    return isinstance(obj, dict) and "custom_id" in obj and ("response" in obj or "error" in obj)


def prediction_object(obj: Any) -> Any:
    """A prediction line's object in the `{"id", "action", ...extra}` form: a Batch output line becomes its
    custom id, itself as the answer, and the batch request id and model as extras; `"response"` stands for
    `"action"`. Anything else is returned unchanged (the line reader says what is wrong with it)."""
    if is_batch_output_line(obj):
        body = (obj.get("response") or {}).get("body") if isinstance(obj.get("response"), dict) else None
        out = {"id": obj["custom_id"], "action": obj, "batch_request_id": obj.get("id")}
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            out["model"] = body["model"]
        return out
    if isinstance(obj, dict) and "action" not in obj and "response" in obj:
        return {("action" if k == "response" else k): v for k, v in obj.items()}
    return obj


def _batch_line(obj: dict) -> Action:
    if obj.get("error"):
        raise AnswerFailed("bad request" if "invalid" in str(obj["error"]).lower() else "server error",
                           f"the batch request failed ({_error_message(obj['error'])})")
    if not isinstance(obj.get("response"), dict):
        raise AnswerFailed("invalid response", "the batch line has neither a response nor an error")
    return _batch_response(obj["response"])


def _batch_response(response: dict) -> Action:
    status, body = response.get("status_code"), response.get("body")
    if status != 200:
        detail = _error_message(body.get("error")) if isinstance(body, dict) and body.get("error") else "no detail"
        raise AnswerFailed(_kind_of_status(status), f"HTTP {status} ({detail})")
    if not isinstance(body, dict):
        raise AnswerFailed("invalid response", f"the response body is a JSON {json_kind(body)}, not an object")
    if "choices" not in body and "output" not in body:
        raise AnswerFailed("invalid response", "the response body is neither a Chat Completion nor a Responses "
                                               "API response")
    return parse_answer(body)


# ---- OpenAI Chat Completions and Responses --------------------------------------------------------------
def _assistant(calls: list[tuple[Any, Any]], text: str | None, where: str) -> Action:
    """The OpenAI assistant message of these calls and text, parsed (the first call graded, a reply as text)."""
    if not calls and text is None:
        raise AnswerFailed("empty reply", f"{where}: neither a tool call nor text")
    message: dict[str, Any] = {"role": "assistant", "content": text if text is not None else ""}
    if calls:
        message["tool_calls"] = [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls]
    return parse_action(message)


def _chat_completion(obj: dict) -> Action:
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise AnswerFailed("invalid response", "the Chat Completion has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise AnswerFailed("invalid response", "the Chat Completion's first choice has no message")
    if not message.get("tool_calls") and message.get("content") is None:
        refusal = message.get("refusal")
        if isinstance(refusal, str):
            return Action.message(refusal, form="assistant_message")
        raise AnswerFailed("empty reply", "the Chat Completion's message has neither a tool call nor text")
    return parse_action({**message, "role": "assistant"})


def _responses(items: list, where: str) -> Action:
    calls: list[tuple[Any, Any]] = []
    texts: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            raise ActionError(f"{where}: an output item is a JSON {json_kind(item)}, not an object")
        if item.get("type") == "function_call":
            calls.append((item.get("name"), item.get("arguments")))
        elif item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif isinstance(part, dict) and part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                    texts.append(part["refusal"])
    return _assistant(calls, "".join(texts) if texts else None, where)


def _responses_response(obj: dict) -> Action:
    if obj.get("status") == "failed" or obj.get("error"):
        raise AnswerFailed("server error", f"the response failed ({_error_message(obj.get('error'))})")
    if not isinstance(obj.get("output"), list):
        raise ActionError("Responses API response: 'output' is not a list")
    return _responses(obj["output"], "Responses API output")


# ---- Anthropic and Gemini --------------------------------------------------------------------------------
def _anthropic(obj: dict) -> Action:
    calls = [(b.get("name"), b.get("input")) for b in obj["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
    texts = [b["text"] for b in obj["content"]
             if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]
    return _assistant(calls, "".join(texts) if texts else None, "Anthropic message")


def _anthropic_error(error: Any) -> AnswerFailed:
    kind = error.get("type") if isinstance(error, dict) else None
    kinds = {"rate_limit_error": "rate limited", "overloaded_error": "server error", "api_error": "server error",
             "authentication_error": "auth", "permission_error": "auth"}
    return AnswerFailed(kinds.get(kind, "bad request"), f"Anthropic error ({_error_message(error)})")


def _gemini_parts(parts: Any, where: str) -> Action:
    if not isinstance(parts, list):
        raise ActionError(f"{where}: 'parts' is not a list")
    calls, texts = [], []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            calls.append((call.get("name"), call.get("args", {})))
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            texts.append(part["text"])
    return _assistant(calls, "".join(texts) if texts else None, where)


def _gemini(obj: dict) -> Action:
    candidates = obj.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        blocked = (obj.get("promptFeedback") or {}).get("blockReason") if isinstance(obj.get("promptFeedback"), dict) else None
        raise AnswerFailed("bad request", f"the Gemini response has no candidate (prompt blocked: {blocked})"
                           if blocked else "the Gemini response has no candidate")
    candidate = candidates[0] if isinstance(candidates[0], dict) else {}
    content = candidate.get("content")
    if not isinstance(content, dict) or not content.get("parts"):
        raise AnswerFailed("empty reply", f"the Gemini candidate has no content (finishReason "
                                          f"{candidate.get('finishReason')})")
    return _gemini_parts(content["parts"], "Gemini candidate")


# ---- dispatch -------------------------------------------------------------------------------------------
def _ours(obj: dict) -> bool:
    """Whether `parse_action` knows the object's shape (so its own error says what is wrong with it)."""
    return obj.get("type") in ("function_call", "message", "function") or "role" in obj or \
        isinstance(obj.get("function"), dict) or ("name" in obj and "arguments" in obj)


def _dict_answer(obj: dict) -> Action:
    kind, content = obj.get("type"), obj.get("content")
    if is_batch_output_line(obj):
        return _batch_line(obj)
    if "status_code" in obj and "body" in obj:
        return _batch_response(obj)
    if "choices" in obj:
        return _chat_completion(obj)
    if isinstance(obj.get("output"), list) or obj.get("object") == "response":
        return _responses_response(obj)
    if "candidates" in obj or "promptFeedback" in obj:
        return _gemini(obj)
    if isinstance(obj.get("parts"), list):
        return _gemini_parts(obj["parts"], "Gemini content")
    if isinstance(obj.get("functionCall"), dict):
        return _gemini_parts([obj], "Gemini part")
    if kind == "error" or (isinstance(obj.get("error"), dict) and not _ours(obj)):
        raise _anthropic_error(obj["error"]) if kind == "error" else \
            AnswerFailed(_kind_of_status(obj["error"].get("code")), f"an error body ({_error_message(obj['error'])})")
    if kind == "message" and isinstance(content, list):
        types = {p.get("type") for p in content if isinstance(p, dict)}
        if types & {"output_text", "refusal"}:
            return _responses([obj], "Responses API message item")
        if obj.get("role") == "assistant" and (types & _ANTHROPIC_BLOCKS or not content):
            return _anthropic(obj)
    if _ours(obj):
        return parse_action(obj)  # its error says what is wrong with a known shape
    try:
        return parse_action(obj)
    except ActionError as exc:
        raise ActionError(f"{exc}; accepted: {ACCEPTED_SHAPES}") from None


def parse_answer(raw: Any) -> Action:
    """Any accepted shape (see the module docstring) -> `Action`; `AnswerFailed` for a failed request,
    `ActionError` for an answer that cannot be read."""
    raw = decode_action(raw)
    if isinstance(raw, Action):
        return raw
    if isinstance(raw, str):  # only a JSON string decodes to one
        raise ActionError(f"the action is a JSON string, not an object; accepted: {ACCEPTED_SHAPES}")
    if isinstance(raw, list):
        if raw and all(isinstance(i, dict) and i.get("type") in _RESPONSES_ITEMS for i in raw):
            return _responses(raw, "Responses API output")
        raise ActionError(f"the action is a JSON array that is not a Responses API output list; accepted: {ACCEPTED_SHAPES}")
    if not isinstance(raw, dict):
        raise ActionError(f"the action is a JSON {json_kind(raw)}, not an object; accepted: {ACCEPTED_SHAPES}")
    return _dict_answer(raw)
