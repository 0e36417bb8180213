"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks (no internet, no mocks).

Implements `POST /v1/chat/completions` (and `/chat/completions`) and `GET /v1/models` with the response
shapes of the real API, so the real `openai` client talks to it unchanged. Every request is recorded.

Replies come from a script (a queue, consumed one per request), then from a default responder:

    with FakeOpenAI() as server:                      # or the `fake_openai` fixture
        server.script(Reply.error(429, retry_after=0), Reply.json({"score": 8, "reason": "ok"}))
        client = OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        server.requests[-1].body["messages"]

Reply kinds: `Reply.text(...)`, `Reply.json(obj)` (structured output: content is the JSON text),
`Reply.tool_calls([(name, arguments), ...])` (several calls allowed; arguments dict or string),
`Reply.error(status, message, retry_after=...)`, `Reply.malformed()` (HTTP 200, body not JSON),
`Reply.slow(seconds, then)` (wait past a client timeout), `Reply.refusal(text)`.
The default responder answers a structured-output request with `{"score": default_score, "reason": ...}`
and anything else with a short text; set `server.responder = fn(request) -> Reply` to change it.
`echo_authorization(tool)` is a responder playing a hostile endpoint: every reply repeats the Authorization
header it received (in the text, a tool call's arguments and name-free fields of the completion).

Run alone (for benchmarks, in its own process): `python tests/fake_openai.py [--port N] [--delay S]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Reply:
    kind: str
    content: str | None = None
    payload: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    then: "Reply | None" = None
    fields: dict[str, Any] = field(default_factory=dict)  # top-level fields of the completion to override

    @classmethod
    def text(cls, content: str) -> "Reply":
        return cls("text", content=content)

    @classmethod
    def json(cls, obj: Any) -> "Reply":
        return cls("text", content=json.dumps(obj))

    @classmethod
    def tool_calls(cls, calls: list[tuple[str, Any]], content: str | None = None) -> "Reply":
        return cls("tool_calls", content=content, payload=calls)

    @classmethod
    def refusal(cls, text: str = "I can't help with that.") -> "Reply":
        return cls("refusal", content=text)

    @classmethod
    def error(cls, status: int, message: str = "error", *, retry_after: float | None = None,
              code: str | None = None) -> "Reply":
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
        return cls("error", content=message, status=status, headers=headers, payload=code or kind)

    @classmethod
    def malformed(cls, body: str = "<html>502 Bad Gateway</html>") -> "Reply":
        return cls("malformed", content=body)

    @classmethod
    def slow(cls, seconds: float, then: "Reply | None" = None) -> "Reply":
        return cls("slow", delay=seconds, then=then)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


def completion_json(model: str, reply: Reply) -> dict[str, Any]:
    """A `chat.completion` object as the real API returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    finish = "stop"
    if reply.kind == "text":
        message["content"] = reply.content
    elif reply.kind == "refusal":
        message["refusal"] = reply.content
    elif reply.kind == "tool_calls":
        message["content"] = reply.content
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for name, args in reply.payload
        ]
        finish = "tool_calls"
    completion_tokens = len((reply.content or "").split()) + 5
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": completion_tokens,
                  "total_tokens": 100 + completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
        **reply.fields,
    }


def authorization(request: RecordedRequest) -> str | None:
    """The Authorization header a request arrived with (header names are case-insensitive)."""
    return {k.lower(): v for k, v in request.headers.items()}.get("authorization")


def echo_authorization(tool: str | None = None) -> Callable[[RecordedRequest], Reply]:
    """A responder that hands back the Authorization header it received, as a hostile server would: in a
    call of `tool` (its arguments) with the header as text beside it, or (no `tool`) in a text reply; a
    structured-output request (the LLM grader) gets it in the reason. Also in `system_fingerprint`."""

    def respond(request: RecordedRequest) -> Reply:
        header = authorization(request) or "none"
        body = request.body if isinstance(request.body, dict) else {}
        if (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
            reply = Reply.json({"score": 5, "reason": f"graded with {header}"})
        elif tool is not None:
            reply = Reply.tool_calls([(tool, {"note": f"you sent {header}", header: "as a key"})],
                                     content=f"header: {header}")
        else:
            reply = Reply.text(f"The Authorization header was: {header}")
        reply.fields = {"system_fingerprint": header}
        return reply

    return respond


class FakeOpenAI:
    """The server; `start()` binds a free port on 127.0.0.1 and serves from a daemon thread."""

    def __init__(self, default_score: int = 7, delay: float = 0.0):
        self.default_score = default_score
        self.delay = delay
        self.requests: list[RecordedRequest] = []
        self.responder: Callable[[RecordedRequest], Reply] | None = None
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- control ---------------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
        self.responder = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def start(self, port: int = 0) -> "FakeOpenAI":
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- replies ---------------------------------------------------------------------------------
    def next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.responder is not None:
            return self.responder(request)
        return self.default_reply(request)

    def default_reply(self, request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        fmt = body.get("response_format") or {}
        if fmt.get("type") in ("json_schema", "json_object"):
            return Reply.json({"score": self.default_score, "reason": "The candidate conveys the reference's key points."})
        return Reply.text("Sure, I can help with that.")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive connections
    wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)
    fake: FakeOpenAI

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to do

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [
                {"id": "gpt-5-mini", "object": "model", "created": 0, "owned_by": "fake"}]}).encode())
        else:
            self._send(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = RecordedRequest("POST", self.path, dict(self.headers.items()), body, time.time())
        with self.fake._lock:
            self.fake.requests.append(request)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}')
            return
        if self.fake.delay:
            time.sleep(self.fake.delay)
        reply = self.fake.next_reply(request)
        while reply.kind == "slow":
            time.sleep(reply.delay)
            reply = reply.then or self.fake.default_reply(request)
        model = body.get("model", "gpt-5-mini") if isinstance(body, dict) else "gpt-5-mini"
        if reply.kind == "error":
            err_type = "requests" if reply.status == 429 else "server_error" if reply.status >= 500 else "invalid_request_error"
            payload = {"error": {"message": reply.content, "type": err_type, "param": None, "code": reply.payload}}
            self._send(reply.status, json.dumps(payload).encode(), reply.headers)
        elif reply.kind == "malformed":
            self._send(200, (reply.content or "").encode(), content_type="application/json")
        else:
            self._send(200, json.dumps(completion_json(model, reply)).encode(), reply.headers)


@pytest.fixture
def fake_openai():
    """A started server, stopped after the test."""
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="fake OpenAI-compatible server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before every reply")
    parser.add_argument("--score", type=int, default=7)
    args = parser.parse_args()
    server = FakeOpenAI(default_score=args.score, delay=args.delay).start(args.port)
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
