"""The environment's tasks: every gradeable decision point of a split, in a stable order (by id).

A task is a decision point that can be graded: an RL task must always yield a reward, and a decision point
flagged `ungradeable` (its expected arguments are not an object) cannot (SPEC §4), so it is left out; that
is the whole difference between a split's task count and its decision point count (`Store.task_counts`).

The SDK addresses tasks by (split, index). `TaskIndex` holds, per split, the rowids of its tasks in id
order (one 8-byte integer each: 9.6 MB at 1.2 M), built once when the server starts, so a task is found by
position without an `OFFSET` scan and no 1.2 M-element list of task objects is ever built. The order is
stable for a given database: the same index is the same task in every worker process and after a restart;
an ingest that adds conversations shifts the indexes (a task spec names its decision point id and stays valid).

A task spec is small: `{"id", "split", "action_type"}`; the conversation is read when a session starts.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from ..base.config import SPLITS
from ..data.store import Store

MAX_TASK_RANGE = 10_000  # tasks per `get_task_range` answer: page through larger ranges


class TaskError(ValueError):
    """A split, index or task spec that names no task; the message says which and what exists."""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What the SDK passes around for a task."""

    id: str
    split: str
    action_type: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "split": self.split, "action_type": self.action_type}


class TaskIndex:
    """Per split, the rowids of its tasks in id order."""

    def __init__(self, store: Store, rowids: dict[str, array]):
        self.store = store
        self._rowids = rowids

    @classmethod
    def build(cls, store: Store) -> "TaskIndex":
        """Read the order from the `dp_id` index (ids start with their split, so one range of the index is
        one split, read without touching the table), minus the rowids the `ungradeable` flag's partial index
        lists. About a second at 1.2 M decision points."""
        ungradeable = {r[0] for r in store.fetch_in(
            "SELECT rowid FROM decision_points INDEXED BY dp_flag_ungradeable WHERE flag_ungradeable = 1 "
            "AND split IN ({marks})", list(SPLITS))}
        rowids: dict[str, array] = {}
        with store._lock:
            for split in SPLITS:
                # '0' is the character after '/': [split + '/', split + '0') is exactly the ids of the split
                cursor = store.conn.execute(
                    "SELECT rowid FROM decision_points INDEXED BY dp_id WHERE id >= ? AND id < ? ORDER BY id",
                    (split + "/", split + "0"))
                rowids[split] = array("q", (r for (r,) in cursor if r not in ungradeable))
        return cls(store, rowids)

    def rebind(self, store: Store) -> "TaskIndex":
        """The same order over another connection to the same database (a worker process's own)."""
        return TaskIndex(store, self._rowids)

    @property
    def splits(self) -> tuple[str, ...]:
        return SPLITS

    def count(self, split: str) -> int:
        return len(self._split(split))

    def counts(self) -> dict[str, int]:
        return {split: len(rows) for split, rows in self._rowids.items()}

    def _split(self, split: str) -> array:
        rows = self._rowids.get(split)
        if rows is None:
            raise TaskError(f"unknown split {str(split)[:80]!r}: the splits are {', '.join(SPLITS)}")
        return rows

    def spec(self, split: str, index: int) -> TaskSpec:
        """The task at `index` (Python indexing: -1 is the last task), as the SDK's default `get_task` would
        index a list of tasks; `TaskError` when there is none."""
        rows = self._split(split)
        if not isinstance(index, int) or isinstance(index, bool) or not -len(rows) <= index < len(rows):
            raise TaskError(f"task index {index!r} is out of range: split {split} has {len(rows):,} tasks "
                            f"(0 to {len(rows) - 1:,})")
        return self._specs([rows[index]])[0]

    def specs(self, split: str, start: int | None = None, stop: int | None = None) -> list[TaskSpec]:
        """Tasks `start` to `stop` (slice semantics, as the SDK's default `get_task_range`), at most
        `MAX_TASK_RANGE` of them."""
        rows = self._split(split)
        chosen = rows[slice(start, stop)]
        if len(chosen) > MAX_TASK_RANGE:
            raise TaskError(f"{len(chosen):,} tasks asked for at once; at most {MAX_TASK_RANGE:,} per range "
                            f"(page through split {split} with start and stop)")
        return self._specs(list(chosen))

    def _specs(self, rowids: list[int]) -> list[TaskSpec]:
        found = {r[0]: TaskSpec(r[1], r[2], r[3]) for r in self.store.fetch_in(
            "SELECT rowid, id, split, action_type FROM decision_points WHERE rowid IN ({marks})", rowids)}
        return [found[r] for r in rowids]


def check_task_spec(spec: object, store: Store) -> TaskSpec:
    """The task a client's spec names: an object with a decision point `id` that is a task (it exists and
    is gradeable) and, when given, the `split` it belongs to. `TaskError` otherwise."""
    if not isinstance(spec, dict):
        raise TaskError(f"a task spec is a JSON object like {{\"id\": \"tool_calling/<uuid>/<index>\"}}, "
                        f"not {type(spec).__name__}")
    dp_id = spec.get("id")
    if not isinstance(dp_id, str) or not dp_id:
        raise TaskError("the task spec has no decision point \"id\" string")
    rows = store.query("SELECT id, split, action_type, flag_ungradeable FROM decision_points WHERE id = ?", (dp_id,))
    if not rows:
        raise TaskError(f"no task {dp_id[:200]!r}: no such decision point in this database")
    row = rows[0]
    if row["flag_ungradeable"]:
        raise TaskError(f"{dp_id} is not a task: its expected call cannot be graded (flagged ungradeable)")
    if "split" in spec and spec["split"] != row["split"]:
        raise TaskError(f"the task spec says split {str(spec['split'])[:80]!r} but {dp_id} is in {row['split']}")
    return TaskSpec(row["id"], row["split"], row["action_type"])
