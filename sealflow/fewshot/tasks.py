"""ARC task records: demonstrations and test queries of one task (loading is in ``data``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .grids import Grid, as_grid, max_side


@dataclass(frozen=True)
class Example:
    input: Grid
    output: Grid | None  # None where the answer is hidden (a challenge file without solutions)

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Example":
        output = row.get("output")
        return cls(as_grid(row["input"]), None if output is None else as_grid(output))


@dataclass(frozen=True)
class ArcTask:
    id: str
    train: list[Example]  # the demonstrations
    test: list[Example]  # held-out queries; one after select_tasks

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "train": [e.to_dict() for e in self.train],
            "test": [e.to_dict() for e in self.test],
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ArcTask":
        return cls(
            id=str(row["id"]),
            train=[Example.from_dict(e) for e in row["train"]],
            test=[Example.from_dict(e) for e in row["test"]],
        )

    @property
    def query(self) -> Example:
        """The single test example (the paper's setting)."""
        if len(self.test) != 1:
            raise ValueError(f"task {self.id} has {len(self.test)} test examples, expected 1")
        return self.test[0]

    def grids(self) -> Iterable[Grid]:
        for example in [*self.train, *self.test]:
            yield example.input
            if example.output is not None:
                yield example.output

    def max_side(self) -> int:
        return max(max_side(g) for g in self.grids())


def split_tests(task: ArcTask) -> list[ArcTask]:
    """One task per test example; a single-test task keeps its id."""
    if len(task.test) == 1:
        return [task]
    return [ArcTask(f"{task.id}_{j}", task.train, [example]) for j, example in enumerate(task.test)]
