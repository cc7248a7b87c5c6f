"""Records that travel between stages, one dataclass per artifact row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .atomic import read_jsonl


UNDECODABLE = "undecodable"


def undecodable(text: str) -> bool:
    """True for text that is not valid Unicode (lone surrogates: escaped in JSON, or bad bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_bool(value: Any) -> bool:
    """The one reading of a boolean column (``valid``, ``correct``) after a CSV round trip."""
    return str(value).strip().lower() in ("true", "1", "1.0", "yes")


@dataclass(frozen=True)
class Question:
    question: str
    answer: str
    # Other accepted answers (SQuAD lists several); graders take the best match.
    alternatives: tuple[str, ...] = ()

    @property
    def answers(self) -> list[str]:
        return [self.answer, *self.alternatives]


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    context: str
    questions: tuple[Question, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "context": self.context,
            "questions": [
                {"question": q.question, "answer": q.answer, "alternatives": list(q.alternatives)}
                for q in self.questions
            ],
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Passage":
        return cls(
            id=str(row["id"]),
            title=str(row.get("title", "")),
            context=str(row["context"]),
            questions=tuple(
                Question(str(q["question"]), str(q["answer"]), tuple(str(a) for a in q.get("alternatives", ())))
                for q in row.get("questions", ())
            ),
        )


@dataclass
class SelfEdit:
    """One sampled self-edit: the policy's completion for one input's prompt."""

    id: str  # stable, e.g. "r1-s0-p03-k1" (see ids.edit_id); its slot names the adapter folder
    input_id: str  # passage id or ARC task id
    sample: int
    prompt: str
    completion: str
    round: int
    shard: int
    seed: int
    sampling: dict[str, Any] = field(default_factory=dict)
    policy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "SelfEdit":
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})


def read_edits(path: str) -> list[SelfEdit]:
    return [SelfEdit.from_dict(row) for row in read_jsonl(path)]
