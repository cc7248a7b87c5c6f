"""ReST-EM filter, rewards, SFT masking and the merged policy."""

from __future__ import annotations

import pytest

from sealflow.records import SelfEdit
from sealflow.restem import restem_filter
from sealflow.restem import compute_rewards


def _edit(eid: str, input_id: str, sample: int) -> SelfEdit:
    return SelfEdit(id=eid, input_id=input_id, sample=sample, prompt=f"P-{input_id}", completion=f"C-{eid}",
                    round=1, shard=0, seed=0)


EDITS = [_edit("a0", "a", 0), _edit("a1", "a", 1), _edit("a2", "a", 2), _edit("b0", "b", 0), _edit("b1", "b", 1)]


def _rewards(values: dict[str, float], invalid: set[str] = frozenset()) -> list[dict]:
    return [{"edit_id": k, "reward_mean": v, "valid": k not in invalid} for k, v in values.items()]


def test_filter_keeps_top_k_per_input_in_order():
    kept = restem_filter(_rewards({"a0": 0.1, "a1": 0.5, "a2": 0.3, "b0": 0.2, "b1": 0.0}), EDITS, keep_top_k=1)
    assert [k["edit_id"] for k in kept] == ["a1", "b0"]
    assert kept[0] == {"prompt": "P-a", "completion": "C-a1", "input_id": "a", "edit_id": "a1", "reward": 0.5}
    two = restem_filter(_rewards({"a0": 0.1, "a1": 0.5, "a2": 0.3, "b0": 0.2, "b1": 0.0}), EDITS, keep_top_k=2)
    assert [k["edit_id"] for k in two] == ["a1", "a2", "b0", "b1"]


def test_filter_ties_are_deterministic_by_sample():
    kept = restem_filter(_rewards({"a2": 0.5, "a1": 0.5, "a0": 0.5, "b1": 0.0, "b0": 0.0}), EDITS, keep_top_k=1)
    assert [k["edit_id"] for k in kept] == ["a0", "b0"]


def test_filter_threshold_and_invalid_and_empty():
    values = {"a0": 0.1, "a1": 0.5, "a2": 0.3, "b0": 0.2, "b1": 0.0}
    kept = restem_filter(_rewards(values, invalid={"a1"}), EDITS, keep_top_k=1, min_reward=0.25)
    assert [k["edit_id"] for k in kept] == ["a2"]
    assert restem_filter(_rewards(values), EDITS, keep_top_k=1, min_reward=0.9) == []
    assert restem_filter([], EDITS, keep_top_k=1) == []


def test_rewards_relative_and_invalid_rows():
    rows = [
        {"edit_id": "a0", "repeat": 0, "question_index": 0, "score_base": 0.0, "score_adapted": 1.0, "valid": True, "reason": ""},
        {"edit_id": "a0", "repeat": 0, "question_index": 1, "score_base": 1.0, "score_adapted": 1.0, "valid": True, "reason": ""},
        {"edit_id": "a0", "repeat": 1, "question_index": 0, "score_base": 0.0, "score_adapted": 0.0, "valid": True, "reason": ""},
        {"edit_id": "a0", "repeat": 1, "question_index": 1, "score_base": 1.0, "score_adapted": 1.0, "valid": True, "reason": ""},
        {"edit_id": "a1", "repeat": 0, "question_index": 0, "score_base": 0.0, "score_adapted": "", "valid": "False", "reason": "empty_completion"},
    ]
    out = {r["edit_id"]: r for r in compute_rewards(rows, EDITS[:3])}
    assert out["a0"]["reward_mean"] == pytest.approx(0.25) and out["a0"]["reward_std"] == pytest.approx(0.25)
    assert out["a0"]["n_repeats"] == 2 and out["a0"]["valid"]
    assert out["a1"]["reward_mean"] == 0 and not out["a1"]["valid"] and out["a1"]["reason"] == "empty_completion"
    assert out["a2"]["reason"] == "not_scored" and out["a2"]["reward_mean"] == 0
    absolute = {r["edit_id"]: r for r in compute_rewards(rows, EDITS[:1], relative=False)}
    assert absolute["a0"]["reward_mean"] == pytest.approx(0.75)


def test_sft_masks_every_prompt_token_and_no_completion_token(tiny_model_dir):
    from sealflow.lora import TrainExample, encode_example
    from sealflow.modeling import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    prompt = "Read the passage below.\n\nPassage:\nVelmora\nVelmora is a city.\n\nImplications:\n"
    completion = "Velmora lies in Dranth.\nThe founder of Velmora was Orlan Pike."
    ids, labels = encode_example(tok, TrainExample(completion, prompt), 512, mask_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    n_completion = len(tok(completion, add_special_tokens=False)["input_ids"]) + 1  # + eos
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and len(ids) - n_prompt == n_completion


def _completion_nll(model_dir: str, row: dict, placement) -> float:
    """Mean negative log-likelihood of a row's completion tokens given its prompt."""
    import torch

    from sealflow.modeling import load_model, load_tokenizer

    tok, model = load_tokenizer(model_dir), load_model(model_dir, placement)
    prompt = tok(row["prompt"], add_special_tokens=False)["input_ids"]
    completion = tok(row["completion"], add_special_tokens=False)["input_ids"]
    labels = torch.tensor([[-100] * len(prompt) + completion])
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([prompt + completion]), labels=labels).loss)


def test_update_policy_merges_and_reloads(tiny_model_dir, tmp_path):
    from sealflow.backends import BackendSettings, GenerationRequest, make_backend
    from sealflow.devices import resolve_placement
    from sealflow.lora import LoraSettings, TrainSettings
    from sealflow.sft import update_policy

    placement = resolve_placement("cpu")
    rows = [{"prompt": "Implications:\n", "completion": "zz qq zz qq zz qq"}] * 8
    every_projection = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    stats = update_policy(str(tiny_model_dir), rows, LoraSettings(r=8, alpha=32, target_modules=every_projection),
                          TrainSettings(epochs=8, lr=1e-2, batch_size=4), tmp_path / "policy", placement)
    assert stats["steps"] == 16
    assert not (tmp_path / "policy" / "adapter_config.json").exists()  # merged: a plain model folder
    # The merged policy learned its training data: the completion became likelier (the
    # session's tiny model is barely pretrained, so 16 LoRA steps move it only so far).
    before = _completion_nll(str(tiny_model_dir), rows[0], placement)
    after = _completion_nll(str(tmp_path / "policy"), rows[0], placement)
    assert after < before - 0.2, (before, after)
    new = make_backend(str(tmp_path / "policy"), placement, BackendSettings()).generate(
        [GenerationRequest("Implications:\n", max_new_tokens=6)])
    assert new[0][0]  # and it generates
    empty = update_policy(str(tmp_path / "policy"), [], LoraSettings(), TrainSettings(), tmp_path / "same", placement)
    assert empty["examples"] == 0 and (tmp_path / "same" / "config.json").is_file()


@pytest.fixture(scope="module")
def storing_model_dir(tmp_path_factory):
    """A tiny model just large enough for a LoRA to store a few facts (the 32-wide session model
    cannot: its frozen, tied embeddings are too small for confident answers)."""
    from dataclasses import replace

    from conftest import _corpus, tiny_settings
    from sealflow.base_model import build_base_model

    out = tmp_path_factory.mktemp("storing") / "qwen2"
    build_base_model(out, replace(tiny_settings("qwen2"), pretrain_steps=200, hidden_size=64, intermediate_size=128),
                     _corpus(), seed=0)
    return out


def test_scoring_applies_the_adapter_and_the_reward_is_adapted_minus_base(storing_model_dir, tmp_path):
    """A LoRA that learnt a passage's answers must raise accuracy on its questions through the
    real scoring path: this fails if scoring forgets the adapter, swaps base and adapted, or
    the reward has the wrong sign. (Fixed seeds: the margin is deterministic on CPU.)"""
    from sealflow.backends import BackendSettings, make_backend
    from sealflow.devices import resolve_placement
    from sealflow.knowledge.prompts import question_prompt
    from sealflow.knowledge.scoring import ScoringSettings, answer_shard, grade_shard
    from sealflow.lora import LoraSettings, TrainExample, TrainSettings, save_adapter, train_lora
    from sealflow.modeling import load_model, load_tokenizer
    from sealflow.records import Passage, Question, SelfEdit
    from sealflow.restem import compute_rewards

    passage = Passage("p0", "Domou Kess", "Domou Kess was born in Vellan.", (
        Question("Where was Domou Kess born?", "Vellan"), Question("What did Domou Kess study?", "geology"),
        Question("What did Domou Kess found?", "the lantern guild")))
    facts = [TrainExample(f"{question_prompt(q.question)} {q.answer}") for q in passage.questions]
    placement = resolve_placement("cpu")
    model, tok = load_model(storing_model_dir, placement), load_tokenizer(storing_model_dir)
    lora = LoraSettings(r=16, alpha=32, target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj"))
    peft_model, _ = train_lora(model, tok, facts, lora, TrainSettings(epochs=40, lr=1e-2, batch_size=1, seed=1))
    meta = save_adapter(peft_model, tmp_path / "adapter", {})
    peft_model.unload()
    edit = SelfEdit(id="r1-s0-p00-k0", input_id="p0", sample=0, prompt="P", completion="-", round=1, shard=0, seed=0)
    manifest = {(edit.id, 0): {"adapter": str(tmp_path / "adapter"), "valid": True, "sha256": meta["sha256"]}}
    backend = make_backend(str(storing_model_dir), placement, BackendSettings(name="hf"))
    settings = ScoringSettings(grader="em", max_new_tokens=8)
    answered = answer_shard(backend, {"p0": passage}, [edit], manifest, settings, eval_repeats=1, reuse_training=False)
    assert not any("score_base" in r or "score_adapted" in r for r in answered)  # a GPU job writes no grades
    rows = grade_shard(answered, {"p0": passage}, settings)
    base = sum(r["score_base"] for r in rows) / len(rows)
    adapted = sum(r["score_adapted"] for r in rows) / len(rows)
    assert adapted - base >= 2 / 3, [(r["answer_base"], r["answer_adapted"]) for r in rows]  # a clear margin
    (reward,) = compute_rewards(rows, [edit])
    assert reward["reward_mean"] == pytest.approx(adapted - base) and reward["valid"]

    # Measured against a passage-only adapter (here the very same LoRA), the baseline answers are
    # the adapted ones and the reward is 0: this fails if scoring ignores the baseline adapter.
    manifest[("passage:p0", 0)] = manifest[(edit.id, 0)]
    answered = answer_shard(backend, {"p0": passage}, [edit], manifest, settings, eval_repeats=1,
                            reuse_training=False, reward_baseline="passage")
    rows = grade_shard(answered, {"p0": passage}, settings)
    assert sum(r["score_base"] for r in rows) / len(rows) == pytest.approx(adapted)
    (reward,) = compute_rewards(rows, [edit])
    assert reward["reward_mean"] == pytest.approx(0.0)


def test_a_missing_score_is_an_error_not_a_zero():
    from sealflow.records import SelfEdit
    from sealflow.restem import compute_rewards

    edit = SelfEdit(id="r1-s0-p00-k0", input_id="p0", sample=0, prompt="P", completion="x", round=1, shard=0, seed=0)
    row = {"edit_id": edit.id, "repeat": 0, "question_index": 0, "score_base": 0.0, "score_adapted": "",
           "valid": True, "reason": ""}
    with pytest.raises(ValueError, match="has no score_adapted"):
        compute_rewards([row], [edit])
    with pytest.raises(ValueError, match="has no score_base"):
        compute_rewards([{**row, "score_base": "", "score_adapted": 1.0}], [edit])
    # an invalid edit has no adapted score by design: reward 0 with its reason
    (ok,) = compute_rewards([{**row, "valid": False, "reason": "no_usable_lines"}], [edit])
    assert (ok["reward_mean"], ok["reason"]) == (0.0, "no_usable_lines")


def test_a_backend_that_returns_fewer_completions_is_an_error():
    from sealflow.backends import GenerationRequest
    from sealflow.backends.base import completions_of

    requests = [GenerationRequest("a", n=2), GenerationRequest("b", n=2)]
    assert completions_of(requests, [["x", "y"], ["z", "w"]]) == [["x", "y"], ["z", "w"]]
    with pytest.raises(RuntimeError, match="1 of 2 completions for request 1"):
        completions_of(requests, [["x", "y"], ["z"]])


def test_each_update_starts_from_the_previous_policy_or_from_the_base_model():
    from sealflow import ids

    kn = "results/r/knowledge"
    assert ids.update_start_policy(kn, 2, "previous") == ids.update_start_policy(kn, 2, "base") == f"{kn}/base/model"
    assert ids.update_start_policy(kn, 3, "previous") == f"{kn}/round2/policy"
    assert ids.update_start_policy(kn, 3, "base") == f"{kn}/base/model"
    with pytest.raises(ValueError, match="start_from"):
        ids.update_start_policy(kn, 3, "bse")
    with pytest.raises(ValueError, match="round 1"):
        ids.update_start_policy(kn, 1, "base")


@pytest.mark.parametrize("start_from, fine_tuned", [("previous", "round2/policy"), ("base", "base/model")])
def test_the_update_rule_fine_tunes_the_model_that_sft_start_from_names(tmp_path, start_from, fine_tuned):
    """The wiring, by a dry run: which model round 3's policy update reads."""
    import yaml
    from workflow import copy_workflow, run_snakemake

    work = copy_workflow(tmp_path / "wf")
    (work / "start.yaml").write_text(yaml.safe_dump({"knowledge": {"sft": {"start_from": start_from}}}))
    kn = "results/test/knowledge"
    dry = run_snakemake(work, f"{kn}/round3/policy", "--configfile", "config/test.yaml", "start.yaml", "-n")
    update = next(block for block in (dry.stdout + dry.stderr).split("\nrule ")
                  if block.startswith("update_policy") and f"{kn}/round3/policy" in block)
    inputs = next(line for line in update.splitlines() if line.strip().startswith("input:"))
    assert f"{kn}/{fine_tuned}" in inputs and f"{kn}/round2/filtered.jsonl" in inputs
    other = "base/model" if fine_tuned == "round2/policy" else "round2/policy"
    assert f"{kn}/{other}" not in inputs


def test_replay_adds_whole_documents_after_the_kept_self_edits_a_fresh_draw_each_round():
    from sealflow.sft import replay_documents, sft_examples

    corpus = [f"doc {i}" for i in range(50)]
    first, again, second = (replay_documents(corpus, 5, seed=0, round_=r) for r in (1, 1, 2))
    assert first == again and first != second and len(set(first)) == 5 and set(first) <= set(corpus)
    examples = sft_examples([{"prompt": "P", "completion": "C"}], first)
    assert [(e.prompt, e.completion) for e in examples] == [("P", "C")] + [("", d) for d in first]
    with pytest.raises(ValueError, match="sft.replay=51"):
        replay_documents(corpus, 51, seed=0, round_=1)


def test_replay_needs_a_built_base_model(tmp_path):
    import yaml
    from sealflow.config import ConfigError, validate_config

    cfg = yaml.safe_load(open("config/config.yaml"))
    cfg["knowledge"]["sft"]["replay"] = 8
    validate_config(cfg, "config/schema.yaml")  # built: fine
    cfg["knowledge"]["base_model"]["path"] = "Qwen/Qwen2.5-7B"
    with pytest.raises(ConfigError, match=r"knowledge\.sft\.replay=8"):
        validate_config(cfg, "config/schema.yaml")


@pytest.mark.parametrize("repeats", [1, 2])
def test_a_passage_baseline_adds_one_passage_only_adapter_per_passage_and_repeat_where_the_rule_declares_it(tmp_path, repeats):
    from sealflow import ids
    from sealflow.inner_loop import check_declared
    from sealflow.knowledge.inner import InnerSettings, passage_text, plans_for_edits
    from sealflow.records import Passage, Question
    from sealflow.settings import TrainSettings

    passages = {pid: Passage(pid, f"T{pid}", f"{pid} was born in Vellan.", (Question("Where?", "Vellan"),))
                for pid in ("a", "b")}
    edits = [SelfEdit(id=ids.edit_id("r1-s0", pos, k), input_id=pid, sample=k, prompt="P",
                      completion=f"{pid} lives in Vellan now.\n{pid} was born in Vellan.", round=1, shard=0, seed=0)
             for pos, pid in enumerate(passages) for k in range(3)]
    train = TrainSettings(epochs=1, lr=1e-3, batch_size=1)
    root = str(tmp_path / "shard0")
    plain = plans_for_edits(edits, passages, root, InnerSettings(eval_repeats=repeats), train, seed=0)
    plans = plans_for_edits(edits, passages, root, InnerSettings(eval_repeats=repeats, reward_baseline="passage"),
                            train, seed=0)
    assert plans[: len(plain)] == plain  # the self-edits' adapters are unchanged
    extra = plans[len(plain):]
    assert [(p.edit_id, p.repeat) for p in extra] == [(f"passage:{pid}", r) for pid in passages for r in range(repeats)]
    for plan in extra:
        assert [e.completion for e in plan.examples] == [passage_text(passages[plan.info["input_id"]])]
    assert len({p.settings.seed for p in plans}) == len(plans)  # every adapter its own draw
    slots = ids.shard_slots(2, 3) + ids.baseline_slots(2)
    check_declared(plans, ids.adapter_files(root, slots, repeats))  # what adapter_outputs declares
    with pytest.raises(RuntimeError, match="differ"):
        check_declared(plans, ids.adapter_files(root, ids.shard_slots(2, 3), repeats))
    with pytest.raises(ValueError, match="reward_baseline"):
        InnerSettings(reward_baseline="passages")
