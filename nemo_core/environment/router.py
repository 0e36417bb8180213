"""The session router in front of N worker processes: every request of a session goes to the worker that holds it.

An SDK server keeps each session (its `Environment` object, its episode latch) in the memory of the process that
created it, and a client spreads its requests over a pool of keep-alive connections, so the kernel sharing one
socket between workers would send a session's second request to a worker that never saw the session (HTTP 404
"Active environment not found"). The router listens on the public port and forwards each request, over a
Unix socket, to worker `crc32(X-Session-ID) mod N` (requests without a session go round-robin: the task API,
`/create_session`, `/health`). That is what any HTTP load balancer in front of several servers must do too:
hash on the `X-Session-ID` header.

Bodies are forwarded as they are; a streamed answer (the SDK answers tool calls as server-sent events) is
streamed back chunk by chunk. A worker that cannot be reached (restarting) gives HTTP 503 with `Retry-After`,
which the SDK's client retries.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "content-length"})
MAX_BODY = 64 * 1024 * 1024  # a tool call's arguments may be large; the SDK server has no smaller limit


def worker_for(session_id: str | None, n_workers: int, round_robin: Any) -> int:
    """The worker index for a request: by session id when it has one, else the next in turn."""
    if session_id:
        return zlib.crc32(session_id.strip().encode("utf-8", "surrogatepass")) % n_workers
    return next(round_robin) % n_workers


def run_router(sock: Any, worker_paths: list[str], log_level: str = "warning") -> None:
    """Serve the router on `sock` until SIGTERM / SIGINT (aiohttp's own signal handling)."""
    import logging

    import aiohttp
    from aiohttp import web

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    clients: list[aiohttp.ClientSession] = []
    turns = itertools.count()

    async def start_clients(app: web.Application) -> None:
        for path in worker_paths:
            clients.append(aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=path, limit=0, keepalive_timeout=60),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), auto_decompress=False))

    async def close_clients(app: web.Application) -> None:
        for client in clients:
            await client.close()

    async def forward(request: web.Request) -> web.StreamResponse:
        client = clients[worker_for(request.headers.get("X-Session-ID"), len(clients), turns)]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        try:
            upstream = await client.request(request.method, f"http://localhost{request.rel_url}", headers=headers,
                                            data=body or None, allow_redirects=False, skip_auto_headers=("User-Agent",))
        except (aiohttp.ClientConnectionError, OSError):
            return web.json_response({"detail": "the worker for this request is restarting; retry"}, status=503,
                                     headers={"Retry-After": "1"})
        async with upstream:
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            streamed = upstream.headers.get("Content-Type", "").startswith("text/event-stream") \
                or "Content-Length" not in upstream.headers
            if not streamed:
                return web.Response(status=upstream.status, reason=upstream.reason, headers=out_headers,
                                    body=await upstream.read())
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out_headers)
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                pass  # the client went away (an SSE client closes once it has the final event)
            return response

    app = web.Application(client_max_size=MAX_BODY)
    app.on_startup.append(start_clients)
    app.on_cleanup.append(close_clients)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, sock=sock, access_log=None, print=None, handle_signals=True, shutdown_timeout=30)
