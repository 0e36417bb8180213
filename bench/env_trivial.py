"""A trivial SDK environment for `bench_env.py`: the SDK's own floor. One split of a million tasks, a one-line
prompt, one tool that ends the episode with reward 1. Import it after `nemo_core.environment.sdk.load_server_sdk`
(so it is served with the same SDK import as serve-env)."""

from __future__ import annotations

from openreward.environments import Environment, TextBlock, ToolOutput, tool
from pydantic import BaseModel

TRIVIAL_TASKS = 1_000_000


class Answer(BaseModel):
    text: str


class Trivial(Environment):
    @classmethod
    def list_splits(cls) -> list[str]:
        return ["train"]

    @classmethod
    def list_tasks(cls, split: str) -> list:
        raise NotImplementedError("use the index API")

    @classmethod
    async def num_tasks(cls, split: str) -> int:
        return TRIVIAL_TASKS

    @classmethod
    def get_task(cls, split: str, index: int) -> dict:
        if not 0 <= index < TRIVIAL_TASKS:
            raise IndexError(index)
        return {"index": index}

    def get_prompt(self) -> list[TextBlock]:
        return [TextBlock(text="What is 1 + 1?")]

    @tool
    def answer(self, params: Answer) -> ToolOutput:
        """Answer the question."""
        return ToolOutput(blocks=[TextBlock(text="ok")], reward=1.0, finished=True)
