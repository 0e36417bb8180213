"""A baseline policy behind the model runner's interface, so `baseline:NAME` works wherever a model does.

`run-model --model baseline:keyword-router` and the Try panel get their runner from `runner_for`: a
`ModelRunner` for a model at an endpoint, a `PolicyRunner` for a baseline. Both answer a decision point with a
`ModelAnswer` (the action, the notes, the graded mistakes), so `model_runner.run_model` grades and stores a
baseline's answers exactly as a model's, with no branch of its own. A `PolicyRunner` sends nothing anywhere:
no client, no key, no base URL (a `base_url` or key given with a baseline is dropped, never stored).

Its answers carry no latency, tokens or raw reply (there was no request): only the note saying why the
policy chose its action. They are the same for the same seed, whatever the concurrency.
"""

from __future__ import annotations

from typing import Any

from ..grading.request import build_request
from ..grading.endpoint import EndpointConfig
from .model_runner import ModelAnswer, ModelRequest, ModelRunner, graded_mistake
from .policies import PREFIX, Policy, PolicyInput, get_policy, is_baseline


class PolicyRunner:
    """One baseline policy with its seed; thread-safe (it holds no state that changes)."""

    def __init__(self, policy: str | Policy, *, seed: int = 0):
        self.policy = policy if isinstance(policy, Policy) else get_policy(policy)
        self.seed = int(seed)
        self.config = EndpointConfig(model=PREFIX + self.policy.name)
        self.tool_choice = None
        self.requests_sent = 0  # never changes: nothing is sent

    def request_body(self, dp: Any, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the policy reads (`--dry-run` prints it): the messages and tools a model would be sent."""
        req = request if request is not None else build_request(dp)
        return {"model": self.config.model, "messages": req["messages"], "tools": req["tools"]}

    def answer(self, dp: Any, request: dict[str, Any] | None = None) -> ModelAnswer:
        """The policy's action at `dp` (anything with `.id`, `.context`, `.toolset`). `request` is ignored:
        a policy reads the stored context, not the converted request."""
        decision = self.policy.decide(PolicyInput(dp.context, dp.toolset, self.seed, dp.id))
        out = ModelAnswer(dp_id=dp.id, model=self.config.model, action=decision.action, attempts=0,
                          notes=[decision.note])
        out.error_kind, out.error = graded_mistake(decision.action, dp.toolset.names)
        return out


def runner_for(config: EndpointConfig, request: ModelRequest | None = None, *, seed: int = 0,
               check: bool = True) -> ModelRunner | PolicyRunner:
    """The runner for `config.model`: a `PolicyRunner` for `baseline:NAME` (`UnknownPolicy` for a name that is
    none; `seed` used, `request` unused), else a `ModelRunner` (`seed` unused; `check`: see `ModelRunner`)."""
    if is_baseline(config.model):
        return PolicyRunner(config.model, seed=seed)
    return ModelRunner(config, request, check=check)


def describe(runner: ModelRunner | PolicyRunner) -> dict[str, Any]:
    """What a run records about where its answers came from (its settings)."""
    if isinstance(runner, PolicyRunner):
        return {"policy": runner.policy.name, "seed": runner.seed}
    return {}


__all__ = ["PolicyRunner", "describe", "runner_for"]
