"""Fast tests of the few-shot stage logic: plans, scoring, the evaluation table, the corpus."""

from __future__ import annotations

import json

import pytest

from sealflow.fewshot.evaluation import (ICL, ORACLE, SEAL, TTT_BASE, TTT_RL, method_for_round, oracle_configs,
                                         oracle_solved, paired_effects, success_by_task, summarize_attempts,
                                         summarize_oracle)
from sealflow.fewshot.inner import NO_EXAMPLES, TTTSettings, plans_for_edits
from sealflow.ids import slot_of as edit_slot
from sealflow.fewshot.scoring import Answer, ScoringSettings, answer_all, is_correct
from sealflow.fewshot.toolconfig import ToolConfig, parse_self_edit, to_json
from sealflow.fewshot.data import _root_id, choose_tasks
from sealflow.fewshot.tasks import ArcTask, Example
from sealflow.records import SelfEdit


def _task(task_id: str = "t1", n_demos: int = 3) -> ArcTask:
    demos = [Example([[i % 10, 0], [0, 1]], [[0, i % 10], [1, 0]]) for i in range(1, n_demos + 1)]
    return ArcTask(task_id, demos, [Example([[5, 0], [0, 1]], [[0, 5], [1, 0]])])


def _config(epochs: int = 2, lr: float = 1e-3, basic: bool = False, strategy: str = "output_tokens") -> ToolConfig:
    return ToolConfig(basic, False, False, False, strategy, lr, epochs)  # type: ignore[arg-type]


def _edit(completion: str, sample: int = 0, task_id: str = "t1") -> SelfEdit:
    return SelfEdit(id=f"r1-s0-p00-k{sample}", input_id=task_id, sample=sample, prompt="p", completion=completion,
                    round=1, shard=0, seed=0)


SETTINGS = TTTSettings(batch_size=2, max_steps=20, n_max=8)


def test_valid_edit_plans_ttt_with_the_edits_settings(tmp_path):
    plan, = plans_for_edits([_edit(to_json(_config(epochs=3, lr=2e-3)))], {"t1": _task()}, tmp_path, SETTINGS, 0)
    assert plan.valid and plan.reason is None
    assert plan.settings.epochs == 3 and plan.settings.lr == pytest.approx(2e-3)
    assert plan.settings.batch_size == 2
    assert plan.mask_prompt is True  # output_tokens: loss on the answer only
    assert plan.examples and plan.info["n_examples"] == len(plan.examples)
    assert plan.out_dir.endswith("p00-k0/rep0")
    # Training examples come from demonstrations only: the test output never appears.
    assert all("05\n10" not in e.completion for e in plan.examples)


def test_all_tokens_strategy_trains_on_the_prompt(tmp_path):
    plan, = plans_for_edits([_edit(to_json(_config(strategy="all_tokens")))], {"t1": _task()}, tmp_path, SETTINGS, 0)
    assert plan.valid and plan.mask_prompt is False


@pytest.mark.parametrize("text, reason", [
    ("no json here", "no_json"),
    ('{"training": {}}', "missing_key:data_generation"),
    ('{"use_basic_augmentations": "yes"}', "wrong_type:use_basic_augmentations"),
    ("{not json", "invalid_json"),
])
def test_invalid_edits_get_inert_plans_with_reasons(tmp_path, text, reason):
    plan, = plans_for_edits([_edit(text)], {"t1": _task()}, tmp_path, SETTINGS, 0)
    assert not plan.valid and plan.reason == reason and plan.examples == []


def test_over_budget_edit_is_invalid_and_agrees_with_the_parser(tmp_path):
    text = to_json(_config(epochs=20))
    plan, = plans_for_edits([_edit(text)], {"t1": _task()}, tmp_path, SETTINGS, 0)
    assert not plan.valid and plan.reason == "over_budget"
    assert parse_self_edit(text, plan.info["n_examples"], SETTINGS.batch_size, SETTINGS.max_steps).reason == "over_budget"
    assert plan.info["planned_steps"] > SETTINGS.max_steps


def test_duplicates_are_invalid_only_when_skipped(tmp_path):
    text = to_json(_config())
    edits = [_edit(text, 0), _edit(text, 1), _edit(text, 2, task_id="t2")]
    tasks = {"t1": _task("t1"), "t2": _task("t2")}
    keep = plans_for_edits(edits, tasks, tmp_path, SETTINGS, 0)
    assert [p.valid for p in keep] == [True, True, True]
    skip = plans_for_edits(edits, tasks, tmp_path, TTTSettings(2, max_steps=20, n_max=8, skip_duplicates=True), 0)
    assert [p.valid for p in skip] == [True, False, True]  # per task: t2's first use is fine
    assert skip[1].reason == "duplicate"


def test_task_without_training_examples_is_invalid(tmp_path):
    short = TTTSettings(batch_size=2, max_steps=20, n_max=8, max_chars=10)  # every example is longer
    plan, = plans_for_edits([_edit(to_json(_config()))], {"t1": _task()}, tmp_path, short, 0)
    assert not plan.valid and plan.reason == NO_EXAMPLES


def test_plans_are_deterministic_and_seeded_per_edit(tmp_path):
    edits = [_edit(to_json(_config(basic=True)), s) for s in range(2)]
    a = plans_for_edits(edits, {"t1": _task()}, tmp_path, SETTINGS, 0)
    b = plans_for_edits(edits, {"t1": _task()}, tmp_path, SETTINGS, 0)
    assert [p.examples for p in a] == [p.examples for p in b]
    assert a[0].settings.seed != a[1].settings.seed


def test_edit_slot():
    assert edit_slot("r2-s1-p03-k4") == "p03-k4"
    assert edit_slot("e0-s0-p00-k1") == "p00-k1"


class FakeBackend:
    """Answers every prompt with a fixed text (per adapter) and records the requests."""

    def __init__(self, answers: dict):
        self.answers, self.requests = answers, []

    def generate(self, requests):
        self.requests += list(requests)
        return [[self.answers.get(r.adapter, "")] for r in requests]


class Tok:
    bos_token, eos_token = "<s>", "</s>"
    chat_template = "{{ bos_token }}{{ messages }}"  # a Llama-3-style model: its sequences start with BOS


def test_answer_all_extracts_grids_and_scores_exact_match():
    task = _task()
    backend = FakeBackend({None: "00\n11\n\ninput:", "good": "05\n10\n", "bad": "05\n1"})
    answers = answer_all(backend, Tok(), [(task, None), (task, "good"), (task, "bad")], ScoringSettings())
    assert [a.text for a in answers] == ["00\n11", "05\n10", ""]
    assert [is_correct(a, task) for a in answers] == [False, True, False]
    assert all(r.temperature == 0.0 and r.prompt.startswith("<s>input:") for r in backend.requests)
    assert backend.requests[0].prompt.endswith("input:\n50\n01\noutput:\n")


def test_voting_maps_views_back():
    task = _task()

    class Echo:  # answers each view with the view of the right answer
        def generate(self, requests):
            from sealflow.fewshot.augment import GEOMETRIC
            from sealflow.fewshot.grids import grid_to_text

            out = []
            for r in requests:
                # find the view from the query rendering in the prompt
                for name, t in GEOMETRIC.items():
                    query = grid_to_text(t([[5, 0], [0, 1]]))
                    if r.prompt.endswith(f"input:\n{query}\noutput:\n"):
                        out.append([grid_to_text(t([[0, 5], [1, 0]])) + "\n"])
                        break
                else:
                    out.append([""])
            return out

    answer, = answer_all(Echo(), Tok(), [(task, None)], ScoringSettings(vote=True, views=("identity", "rot90", "flip_h")))
    # Symmetric views can be mistaken for one another by this echo; the majority still wins.
    assert is_correct(answer, task) and answer.votes >= 2


def test_summary_rows_count_attempts_and_tasks():
    rows = [{"input_id": "a", "correct": "True"}, {"input_id": "a", "correct": "False"},
            {"input_id": "b", "correct": "False"}, {"input_id": "b", "correct": True}]
    row = summarize_attempts(TTT_BASE, 0, rows)
    assert (row["n_tasks"], row["n_attempts"], row["n_solved"]) == (2, 4, 2)
    assert row["success_rate"] == 0.5 and row["ci95_low"] < 0.5 < row["ci95_high"]


def test_paired_effects_subtract_the_baseline_task_by_task():
    tasks = [f"t{i}" for i in range(30)]
    base = {t: 0.25 for t in tasks}  # one of four attempts solved on every task
    seal = {t: (1.0 if i < 20 else 0.0) for i, t in enumerate(tasks)}
    icl = {t: 0.0 for t in tasks}
    oracle = {t: 1.0 for t in tasks[:-1]}  # a task missing from a method is left out of its pairs
    rows = {r["pair"]: r for r in paired_effects({SEAL: seal, TTT_BASE: base, ICL: icl, ORACLE: oracle}, 500)}
    gain = rows[f"{SEAL} - {TTT_BASE}"]
    assert gain["difference"] == pytest.approx(20 / 30 - 0.25) and 0 < gain["ci95_low"] < gain["ci95_high"] < 1
    assert rows[f"{TTT_BASE} - {ICL}"]["difference"] == pytest.approx(0.25)
    assert rows[f"{TTT_BASE} - {ICL}"]["ci95_low"] == pytest.approx(0.25)  # no spread: a point interval
    assert rows[f"{ORACLE} - {SEAL}"]["n_tasks"] == 29
    two = [{"input_id": "a", "correct": "True"}, {"input_id": "a", "correct": "False"}]
    assert success_by_task(two) == {"a": 0.5} and success_by_task(two, ORACLE) == {"a": 1.0}  # any config solves


def test_oracle_solves_a_task_if_any_config_does():
    rows = [{"input_id": "a", "correct": "False"}, {"input_id": "a", "correct": "True"},
            {"input_id": "b", "correct": "False"}, {"input_id": "b", "correct": "False"}]
    assert oracle_solved(rows) == {"a": True, "b": False}
    row = summarize_oracle(rows)
    assert row["method"] == ORACLE and (row["n_tasks"], row["n_attempts"], row["n_solved"]) == (2, 2, 1)


def test_oracle_configs_accept_flat_and_nested_layouts():
    flat = {"use_basic_augmentations": True, "use_size_augmentations": False, "use_chain_augmentations": False,
            "use_repeat_augmentations": False, "strategy": "train_using_all_tokens", "learning_rate": 0.003,
            "num_train_epochs": 2}
    nested = json.loads(to_json(_config()))
    configs = oracle_configs([flat, nested])
    assert configs[0].strategy == "all_tokens" and configs[1] == _config()
    with pytest.raises(ValueError, match=r"oracle\[0\]"):
        oracle_configs([{"learning_rate": 1}])


def test_method_names():
    assert [method_for_round(p, 2) for p in range(3)] == [TTT_BASE, TTT_RL, SEAL]
    assert ICL == "icl"


def test_choose_tasks_keeps_evaluation_disjoint():
    pool = [_task(f"t{i}") for i in range(6)]
    cfg = {"n_train": 3, "n_eval": 3, "max_grid": 5, "seed": 0, "max_train": None, "max_chars": None,
           "train_ids": None, "eval_ids": None}
    train, evals = choose_tasks(cfg, pool, pool)  # the same pool on both sides
    assert not {t.id for t in train} & {t.id for t in evals}
    with pytest.raises(ValueError, match="training tasks"):
        choose_tasks({**cfg, "train_ids": ["t1", "t2", "t3"], "eval_ids": ["t3", "t4", "t5"]}, pool, pool)
    assert _root_id("abc_1") == "abc" and _root_id("abc") == "abc"


def test_corpus_teaches_both_formats():
    from sealflow.fewshot.corpus import fewshot_corpus, synthetic_task
    import random

    docs = fewshot_corpus(12, 0)
    assert len(docs) == 12 + 4
    edits = [d for d in docs if "<|start_header_id|>assistant" in d]
    assert len(edits) == 4
    for doc in edits:
        assert parse_self_edit(doc.split("<|end_header_id|>\n\n")[-1]).ok
    assert fewshot_corpus(12, 0) == docs
    task = synthetic_task(random.Random(1), "x")
    assert task.max_side() <= 5 and len(task.train) >= 2
