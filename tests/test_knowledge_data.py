"""Passage loaders, stable ids, the train/val split, and source dispatch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sealflow.knowledge import data as kd
from sealflow.knowledge.data import DataError
from sealflow.records import Passage, Question

DATA = Path(__file__).parent / "data" / "knowledge"


def _passages(n: int) -> list[Passage]:
    return [Passage(f"t-{i:03d}", f"T{i}", f"context {i}", (Question(f"q{i}?", f"a{i}"),)) for i in range(n)]


# ----------------------------------------------------------------- official SQuAD


def test_squad_official_answers_dedupe_and_drop(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        passages = kd.load_squad_official(DATA / "squad_mini.json")
    # the question-less paragraph is dropped; the repeated paragraph is merged
    assert [p.title for p in passages] == ["Velmora_Harbour", "Orrin_Tallow"]
    assert "dropped 1 passage" in caplog.text
    harbour, orrin = passages
    first = harbour.questions[0]
    assert first.answer == "the lantern guild"
    assert first.alternatives == ("lantern guild",)
    assert harbour.questions[1].answers == ["blue kelp oil"]
    # the unanswerable question is skipped (and said so), the duplicate paragraph's question merged in
    assert [q.question for q in orrin.questions] == ["What did Orrin Tallow compose?", "Where did Orrin Tallow live?"]
    assert "empty question or no non-empty answer" in caplog.text


def test_preparation_records_what_it_dropped_in_the_meta(tmp_path) -> None:
    import json as _json

    from sealflow.stages.knowledge import prepare_passages

    data = {"source": "squad_json", "path": str(DATA / "squad_mini.json"), "hub_id": "squad", "hub_split": "x",
            "n_train": 1, "n_val": 1, "seed": 0}
    prepare_passages({"knowledge": {"data": data}}, train=str(tmp_path / "train.jsonl"), val=str(tmp_path / "val.jsonl"))
    meta = _json.loads((tmp_path / "train.jsonl.meta.json").read_text())
    assert any("empty question or no non-empty answer" in m for m in meta["dropped"])
    assert any("passage(s) with no questions" in m for m in meta["dropped"])


def test_ids_are_stable_and_content_derived() -> None:
    a = kd.load_squad_official(DATA / "squad_mini.json")
    b = kd.load_squad_official(DATA / "squad_mini.json")
    assert [p.id for p in a] == [p.id for p in b]
    assert a[0].id == kd.passage_id(a[0].title, a[0].context, "squad")
    assert a[0].id.startswith("squad-") and len(a[0].id) == len("squad-") + 12
    assert len({p.id for p in a}) == len(a)


# ----------------------------------------------------------------- passages JSON


def test_passages_json_accepts_answer_forms() -> None:
    passages = kd.load_passages_json(DATA / "passages_mini.json")
    assert [p.title for p in passages] == ["Quillon Pass", "Marsh of Iddle"]
    pass_q = passages[0].questions
    assert pass_q[0].answers == ["the Ashen Range"]
    assert pass_q[1].answer == "3,100 metres" and pass_q[1].alternatives == ("3100 m",)
    assert passages[1].questions[0].answer == "the glass heron"
    assert all(p.id.startswith("pj-") for p in passages)


# ----------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "loader, name, fragments",
    [
        (kd.load_passages_json, "bad_syntax.json", ["bad_syntax.json", "not valid JSON at line 5"]),
        (kd.load_squad_official, "bad_syntax.json", ["bad_syntax.json", "not valid JSON"]),
        (kd.load_squad_official, "squad_missing_context.json",
         ["squad_missing_context.json", "data[0].paragraphs[0] has no 'context'"]),
        (kd.load_passages_json, "passages_wrong_top.json",
         ["passages_wrong_top.json", "expected a list of passages, got dict"]),
        (kd.load_squad_official, "passages_mini.json", ["passages_mini.json", "should be an object, got list"]),
        (kd.load_passages_json, "missing.json", ["missing.json", "file not found"]),
    ],
)
def test_malformed_files_name_file_and_problem(loader, name, fragments) -> None:
    with pytest.raises(DataError) as info:
        loader(DATA / name)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_question_keys(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"title": "X", "context": "c", "questions": [{"question": "q?"}]}]))
    with pytest.raises(DataError, match=r"p\.json: \[0\]\.questions\[0\] has no 'answer'"):
        kd.load_passages_json(path)
    path.write_text(json.dumps([{"title": "X", "questions": []}]))
    with pytest.raises(DataError, match=r"\[0\] has no 'context'"):
        kd.load_passages_json(path)
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [{"question": "q", "answers": [{}]}]}]}]}))
    with pytest.raises(DataError, match=r"qas\[0\]\.answers\[0\] has no 'text'"):
        kd.load_squad_official(path)
    assert issubclass(DataError, ValueError)


# ----------------------------------------------------------------- hub


def test_load_hub_groups_rows(monkeypatch) -> None:
    import datasets

    rows = [
        {"id": "1", "title": "Fen", "context": "Fen has red reeds.", "question": "What colour are the reeds?",
         "answers": {"text": ["red", "red"], "answer_start": [8, 8]}},
        {"id": "2", "title": "Fen", "context": "Fen has red reeds.", "question": "What does Fen have?",
         "answers": {"text": ["red reeds", "reeds"], "answer_start": [8, 12]}},
        {"id": "3", "title": "Tor", "context": "Tor is a bare hill.", "question": "What is Tor?",
         "answers": {"text": ["a bare hill"], "answer_start": [7]}},
    ]
    seen = {}

    def fake_load(hub_id, split):
        seen.update(hub_id=hub_id, split=split)
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    passages = kd.load_source({"source": "hub", "hub_id": "squad", "hub_split": "validation"})
    assert seen == {"hub_id": "squad", "split": "validation"}
    assert [p.title for p in passages] == ["Fen", "Tor"]
    assert [q.answers for q in passages[0].questions] == [["red"], ["red reeds", "reeds"]]
    assert passages[0].id.startswith("hub-")


def test_load_hub_missing_column(monkeypatch) -> None:
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, split: datasets.Dataset.from_list([{"context": "c"}]))
    with pytest.raises(DataError, match="row 0 has no 'question', 'answers'"):
        kd.load_hub("someone/thing", "train")


# ----------------------------------------------------------------- split


def test_split_is_deterministic_disjoint_and_order_free() -> None:
    passages = _passages(20)
    train, val = kd.split_passages(passages, 8, 4, seed=3)
    again = kd.split_passages(list(reversed(passages)), 8, 4, seed=3)
    assert (train, val) == again
    assert len(train) == 8 and len(val) == 4
    assert not {p.id for p in train} & {p.id for p in val}
    other = kd.split_passages(passages, 8, 4, seed=4)
    assert other != (train, val)


def test_split_too_few_names_config_keys() -> None:
    with pytest.raises(DataError) as info:
        kd.split_passages(_passages(5), 4, 2, seed=0)
    message = str(info.value)
    assert "knowledge.data.n_train" in message and "knowledge.data.n_val" in message
    assert "only 5 available" in message


# ----------------------------------------------------------------- dispatch + jsonl


def test_load_source_dispatch(tmp_path: Path) -> None:
    calls = []

    def generated(n: int, seed: int) -> list[Passage]:
        calls.append((n, seed))
        return _passages(n)

    cfg = {"source": "generated", "n_train": 3, "n_val": 2, "seed": 7}
    assert len(kd.load_source(cfg, generated)) == 5 and calls == [(5, 7)]
    train, val = kd.load_splits(cfg, generated)
    assert len(train) == 3 and len(val) == 2

    squad = kd.load_source({"source": "squad_json", "path": str(DATA / "squad_mini.json")})
    assert len(squad) == 2
    pj = kd.load_source({"source": "passages_json", "path": str(DATA / "passages_mini.json")})
    assert len(pj) == 2
    kd.write_passages_jsonl(tmp_path / "p.jsonl", pj)
    assert kd.load_source({"source": "passages_json", "path": str(tmp_path / "p.jsonl")}) == pj

    with pytest.raises(DataError, match="knowledge.data.source"):
        kd.load_source({"source": "ftp"})
    with pytest.raises(DataError, match="knowledge.data.path"):
        kd.load_source({"source": "squad_json", "path": None})
    with pytest.raises(DataError, match="no generator"):
        kd.load_source(cfg, None)


def test_jsonl_roundtrip_and_errors(tmp_path: Path) -> None:
    passages = kd.load_squad_official(DATA / "squad_mini.json")
    path = tmp_path / "out" / "passages.jsonl"
    kd.write_passages_jsonl(path, passages)
    assert kd.read_passages_jsonl(path) == passages
    path.write_text('{"id": "a", "context": "c"}\n{broken\n')
    with pytest.raises(DataError, match=":2: not valid JSON"):
        kd.read_passages_jsonl(path)
    path.write_text('{"id": "a"}\n')
    with pytest.raises(DataError, match="record 1 is not a passage"):
        kd.read_passages_jsonl(path)
