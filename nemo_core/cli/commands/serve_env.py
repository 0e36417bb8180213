from __future__ import annotations

HELP = """Serve Nemotron-Agentic over the OpenReward protocol: the store's tasks, graded by the same core as
`grade`, for RL trainers and eval harnesses using the `openreward` SDK.

A task is a gradeable decision point (split tool_calling or interactive_agent); a session shows its
conversation so far and its tools plus submit_message, and its one tool call ends the episode with the
reward and the same breakdown as a `grade` result line. With --record RUN every graded submission is stored
as a prediction of run RUN (a second submission for the same decision point goes to RUN@2, and so on),
visible on the Runs, Failures and Compare pages while the server runs. Stop with Ctrl-C or SIGTERM:
what was graded is stored before it exits (after a SIGKILL, the next start stores it from its journal).

Needs the SDK: .venv/bin/python -m pip install -r requirements-env.txt

example:
  python -m nemo_core serve-env --db data/nemo.db --port 8080 --record rl-run-1 --workers 2
"""


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("serve-env", help="serve the environment over the OpenReward protocol (HTTP)",
                       description=HELP, formatter_class=HelpFormatter)
    add_db_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 lets the system choose)")
    p.add_argument("--record", metavar="RUN", default=None,
                   help="store every graded submission as a prediction of run RUN (kind environment); "
                        "an existing environment run of that name is continued")
    p.add_argument("--workers", type=int, default=1, help="server processes sharing the port (default 1; "
                   "one per core scales throughput)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                   help="server log level (default warning; info logs every request)")
    p.set_defaults(run=run)


def run(args) -> int:
    import time

    from ..options import max_workers, resolve_db
    from ...base.errors import OptionError
    from ...environment.sdk import load_server_sdk, set_sdk_environment

    started = time.perf_counter()
    if not 1 <= args.workers <= max_workers():  # no 0: a server needs a process to serve from
        raise OptionError(f"--workers {args.workers}: must be from 1 to {max_workers()}", "one per core scales")
    if not 0 <= args.port <= 65535:
        raise OptionError(f"--port {args.port}: a port is 0 to 65535", "0 lets the system choose one")
    from ...environment.service import ServeOptions, prepare, serve

    options = ServeOptions(db=resolve_db(args.db), host=args.host, port=args.port, workers=args.workers,
                           record=args.record, log_level=args.log_level)
    prepared = prepare(options)  # the database first: a wrong --db fails before the SDK is even imported
    set_sdk_environment(args.log_level)
    load_server_sdk()
    if prepared.recovered:
        print(f"stored {sum(prepared.recovered.values()):,} submissions left in the journals of a server that "
              "was killed: " + ", ".join(f"{name} {n:,}" for name, n in prepared.recovered.items()), flush=True)

    def announce(port: int) -> None:
        counts = prepared.tasks.counts()
        host = f"[{options.host}]" if ":" in options.host else options.host
        print(f"serving Nemotron-Agentic on http://{host}:{port} ({options.workers} worker"
              f"{'s' if options.workers != 1 else ''}; tasks: "
              + ", ".join(f"{split} {n:,}" for split, n in counts.items())
              + (f"; recording into run {options.record}" if options.record else "")
              + f"; ready in {time.perf_counter() - started:.1f} s)", flush=True)

    return serve(prepared, announce)
