"""Nemotron-Agentic as an OpenReward environment (`python -m nemo_core serve-env`), over the store.

- `tasks.py`: the tasks of each split (the gradeable decision points, in id order) and task specs;
- `prompt.py`: a context as the SDK's role-tagged messages, a task's tools as the SDK's tool specs;
- `env.py`: the SDK `Environment` subclass: sessions, the one graded call;
- `recorder.py`: graded submissions stored as predictions of a run (journal, batches, rounds): the one seam
  between the environment and the runs;
- `serve.py`: a supervisor and N uvicorn worker processes over one socket;
- `service.py`: `serve-env` put together; `sdk.py`: importing the SDK's server side quickly.

Only `tasks.py` and `recorder.py` import without the `openreward` SDK; nothing outside this package
imports it, so the app and the other commands run without the SDK installed.
"""
