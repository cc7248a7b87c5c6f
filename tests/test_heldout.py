"""Held-out evaluation (the paper's Table 2): pure parts, the external client, one tiny real run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from fake_chat import serve_chat

from sealflow.knowledge.heldout.methods import (HeldoutConfigError, adapted_model, continual_methods, evaluations,
                                              heldout_methods, method_round)
from sealflow.knowledge.heldout.settings import EvalSettings
from sealflow.knowledge.heldout.summary import (accuracy_before, continual_matrix, forgetting_rows, sort_summary,
                                              summary_row, wide_table)
from sealflow.config import validate_config
from sealflow.stats import bootstrap_interval, mean_interval as accuracy_interval, wilson_interval
from sealflow.knowledge.heldout.external import ExternalError, ExternalSettings, sample_external

ROOT = Path(__file__).resolve().parents[1]


def _config(**heldout) -> dict:
    """The embedded default with ``heldout`` overrides, completed with the schema's defaults."""
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    base["knowledge"]["heldout"] = {**base["knowledge"].get("heldout", {}), **heldout}
    validate_config(base, str(ROOT / "config" / "schema.yaml"))
    return base


# ------------------------------------------------------------------- intervals


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-3)
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and lo == pytest.approx(0.8389, abs=1e-3)
    lo, hi = wilson_interval(29, 40)  # SEAL's ARC 72.5% on 40 attempts
    assert lo == pytest.approx(0.5700, abs=2e-3) and hi == pytest.approx(0.8401, abs=2e-3)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))  # no attempts: no interval, in both domains


def test_accuracy_interval_picks_wilson_for_binary_and_bootstrap_otherwise() -> None:
    mean, lo, hi, how = accuracy_interval([1.0, 0.0, 1.0, 1.0])
    assert how == "wilson" and mean == 0.75 and lo < mean < hi
    mean, lo, hi, how = accuracy_interval([0.5, 0.25, 1.0, 0.0], bootstrap_samples=500)
    assert how == "bootstrap" and lo <= mean <= hi and 0.0 <= lo and hi <= 1.0
    assert bootstrap_interval([0.3] * 5, samples=200) == (pytest.approx(0.3), pytest.approx(0.3))
    assert bootstrap_interval([0.1, 0.9], samples=300, seed=1) == bootstrap_interval([0.1, 0.9], samples=300, seed=1)


# ------------------------------------------------------------------- config


def test_methods_from_config() -> None:
    cfg = _config()
    assert heldout_methods(cfg) == ["base", "passage", "base_self_edits", "round3"]  # last_round; no external url
    every_round = ["base", "passage", "base_self_edits", "rounds"]
    assert heldout_methods(_config(methods=every_round)) == ["base", "passage", "base_self_edits", "round2", "round3"]
    cfg = _config(external={"base_url": "http://127.0.0.1:1/v1"}, methods=["base", "last_round", "external"])
    assert heldout_methods(cfg) == ["base", "round3", "external"]
    assert continual_methods(_config()) == ["passage", "base_self_edits", "round3"]
    pairs = evaluations(_config(settings=["single", "continual"], continual_methods=["passage"], methods=every_round))
    assert pairs == [("single", m) for m in ["base", "passage", "base_self_edits", "round2", "round3"]] + [
        ("continual", "passage")]
    with pytest.raises(HeldoutConfigError, match="round7"):
        heldout_methods(_config(methods=["round7"]))
    assert heldout_methods(_config(enabled=False)) == []


def test_method_rounds_and_models() -> None:
    assert [method_round(m) for m in ["base", "passage", "base_self_edits", "round2", "round3", "external"]] == [
        None, None, 0, 1, 2, None]
    assert adapted_model("round3", "K", "policy") == "K/round3/policy"
    assert adapted_model("round3", "K", "base") == "K/base/model"
    assert adapted_model("passage", "K", "policy") == "K/base/model"
    assert adapted_model("external", "K", "policy") == "K/base/model"
    with pytest.raises(HeldoutConfigError):
        adapted_model("round2", "K", "other")


def test_eval_settings_default_to_inner_loop_with_overrides() -> None:
    cfg = _config(inner_loop={"epochs": 3}, cpt={"lr": 0.01}, scoring={"grader": "em"}, k=2)
    s = EvalSettings.from_config(cfg)
    assert s.train.epochs == 3 and s.train.lr == cfg["knowledge"]["inner_loop"]["lr"]
    assert s.cpt_train.epochs == 3 and s.cpt_train.lr == 0.01
    assert s.lora.r == cfg["knowledge"]["inner_loop"]["lora"]["r"]
    assert s.scoring.grader == "em" and s.k == 2


def test_config_files_pass_the_schema() -> None:
    from snakemake.utils import validate

    def merged(path: str) -> dict:
        def deep(a: dict, b: dict) -> dict:
            return {**a, **{k: deep(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
                            for k, v in b.items()}}
        return deep(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                    yaml.safe_load((ROOT / "config" / path).read_text()))

    for path in ("test.yaml", "paper-knowledge.yaml"):
        validate(merged(path), str(ROOT / "config" / "schema.yaml"))
    bad = merged("test.yaml")
    bad["knowledge"]["heldout"]["settings"] = ["single", "typo"]
    with pytest.raises(Exception):
        validate(bad, str(ROOT / "config" / "schema.yaml"))


# ---------------------------------------------------------------- summarising


def _rows(method: str, setting: str, scores: dict[tuple[str, int], list[float]], step: int | str = "") -> list[dict]:
    return [{"method": method, "setting": setting, "input_id": pid, "question_index": qi, "score": s,
             "step": step, "repeat": rep}
            for (pid, qi), values in scores.items() for rep, s in enumerate(values)]


def test_summary_rows_average_repeats_then_questions_and_shape_the_table() -> None:
    rows = _rows("round3", "single", {("a", 0): [1.0, 0.0], ("a", 1): [1.0, 1.0], ("b", 0): [0.0, 0.0]})
    row = summary_row("round3", "single", rows, bootstrap_samples=300)
    assert row["accuracy"] == pytest.approx(0.5) and row["n_questions"] == 3 and row["n_scores"] == 6
    assert row["round"] == 2 and row["ci_method"] == "bootstrap"
    base = summary_row("base", "single", _rows("base", "single", {("a", 0): [1.0], ("b", 0): [0.0]}))
    assert base["round"] == "" and base["ci_method"] == "wilson" and base["accuracy"] == 0.5
    cont = _rows("passage", "continual", {("a", 0): [0.0]}, step=1) + _rows(
        "passage", "continual", {("a", 0): [1.0], ("b", 0): [1.0]}, step=2)
    assert summary_row("passage", "continual", cont)["accuracy"] == 1.0  # only the last step counts
    summary = sort_summary([row, base, summary_row("base", "cpt", _rows("base", "cpt", {("a", 0): [0.0]}))])
    assert [(r["setting"], r["method"]) for r in summary] == [("single", "base"), ("single", "round3"), ("cpt", "base")]
    table = wide_table(summary)
    assert table == [{"method": "base", "round": "", "single": 50.0, "cpt": 0.0},
                     {"method": "round3", "round": 2, "single": 50.0, "cpt": ""}]


def test_continual_matrix_and_forgetting_on_synthetic_numbers() -> None:
    order = ["p0", "p1", "p2"]
    acc = {  # (after update, passage) -> accuracy; p0 is forgotten, p1 partly, p2 just learnt
        (0, "p0"): 0.0, (0, "p1"): 0.0, (0, "p2"): 0.5,
        (1, "p0"): 1.0,
        (2, "p0"): 0.5, (2, "p1"): 1.0,
        (3, "p0"): 0.0, (3, "p1"): 0.5, (3, "p2"): 1.0,
    }
    rows = [{"step": step, "input_id": pid, "score": value} for (step, pid), value in acc.items()]
    rows += [{"step": 3, "input_id": "p1", "score": 0.5}]  # a second question with the same score
    matrix = continual_matrix(rows, order)
    assert [r["after_update"] for r in matrix] == [1, 2, 3]  # step 0 is not a row of the matrix
    assert matrix[0] == {"after_update": 1, "p0": 1.0, "p1": "", "p2": ""}
    assert matrix[2]["p1"] == 0.5
    before = accuracy_before(rows)
    assert before == {"p0": 0.0, "p1": 0.0, "p2": 0.5}
    forgetting = forgetting_rows("passage", matrix, order, before)
    per = {r["passage"]: r for r in forgetting}
    assert per[0]["just_learnt"] == 1.0 and per[0]["at_end"] == 0.0 and per[0]["forgetting"] == 1.0
    assert per[1]["forgetting"] == 0.5 and per[2]["forgetting"] == 0.0
    assert per["mean"]["just_learnt"] == 1.0 and per["mean"]["at_end"] == pytest.approx(0.5)
    assert per["mean"]["forgetting"] == pytest.approx(0.5) and per["mean"]["before"] == pytest.approx(1 / 6)
    assert math.isnan(forgetting_rows("x", matrix, order)[0]["before"])


# ---------------------------------------------------------------- external client


def _external_reply(state, body, scripted):
    user = body["messages"][-1]["content"]
    title = user.split("\n\n", 1)[1].split("\n", 1)[0]
    status = scripted if scripted is not None else 200
    return status, (f"{title} is a place.\n{title} has a seed of {body.get('seed')}." if status == 200 else "busy")


@pytest.fixture()
def chat_server():
    with serve_chat(_external_reply) as served:
        yield served


def _passages(n: int = 2):
    from sealflow.worldgen import generate_passages

    return generate_passages(n, seed=7)


def test_external_client_samples_k_edits_per_passage(chat_server, monkeypatch) -> None:
    state, url = chat_server
    monkeypatch.setenv("SEALFLOW_TEST_EXTERNAL_KEY", "sk-test")
    state.script = [429, 503]  # two transient failures are retried
    settings = ExternalSettings(base_url=url, model="gpt-x", api_key_env="SEALFLOW_TEST_EXTERNAL_KEY",
                                timeout_s=5, backoff_s=0.01, max_workers=2)
    passages = _passages()
    edits = sample_external(passages, settings, k=2, temperature=1.0, top_p=0.9, max_tokens=50, seed=0)
    assert [(e.input_id, e.sample) for e in edits] == [(p.id, s) for p in passages for s in range(2)]
    assert all(e.completion.startswith(next(p.title for p in passages if p.id == e.input_id)) for e in edits)
    assert len({e.seed for e in edits}) == 4 and all(e.policy == "external:gpt-x" for e in edits)
    assert len(state.requests) == 6
    assert {r["model"] for r in state.requests} == {"gpt-x"} and state.requests[0]["max_tokens"] == 50
    assert all(h.get("Authorization") == "Bearer sk-test" for h in state.headers)


def test_external_client_errors(chat_server, monkeypatch) -> None:
    state, url = chat_server
    state.script = [400]
    settings = ExternalSettings(base_url=url, api_key_env="SEALFLOW_TEST_EXTERNAL_KEY", backoff_s=0.01)
    monkeypatch.delenv("SEALFLOW_TEST_EXTERNAL_KEY", raising=False)
    with pytest.raises(ExternalError, match="HTTP 400"):  # local server: no key needed; 4xx fails fast
        sample_external(_passages(1), settings, 1, 1.0, 1.0, 10, 0)
    remote = ExternalSettings(base_url="https://example.invalid/v1", api_key_env="SEALFLOW_TEST_EXTERNAL_KEY")
    with pytest.raises(ExternalError, match="SEALFLOW_TEST_EXTERNAL_KEY"):
        sample_external(_passages(1), remote, 1, 1.0, 1.0, 10, 0)


# ---------------------------------------------------------------- one tiny real run


def _tiny_setup(tiny_model_dir, **heldout):
    from sealflow.backends import BackendSettings, make_backend
    from sealflow.devices import resolve_placement
    from sealflow.knowledge.heldout.run import edits_by_passage, sample_heldout_edits
    from sealflow.knowledge.sampling import SamplingSettings
    from sealflow.modeling import load_tokenizer

    cfg = _config(**{"k": 2, "eval_repeats": 1, **heldout})
    cfg["knowledge"]["inner_loop"].update(epochs=2, lora={"r": 4, "alpha": 8, "dropout": 0.0,
                                                          "target_modules": ["q_proj", "v_proj"]})
    cfg["knowledge"]["scoring"]["max_new_tokens"] = 6
    settings = EvalSettings.from_config(cfg)
    placement = resolve_placement("cpu")
    passages = _passages(2)
    tokenizer = load_tokenizer(tiny_model_dir)
    backend = make_backend(str(tiny_model_dir), placement, BackendSettings())
    edits = sample_heldout_edits(backend, tokenizer, passages, SamplingSettings("implications", 2, 1.0, 0.95, 24),
                                 "base_self_edits", 0, str(tiny_model_dir))
    backend.close()
    return settings, placement, passages, tokenizer, edits, edits_by_passage(edits)


def test_tiny_real_run_of_every_setting(tiny_model_dir, tmp_path) -> None:
    from sealflow.backends import BackendSettings
    from sealflow.knowledge.heldout.run import (ModelBox, backend_answerer, evaluate_continual, evaluate_cpt,
                                                 evaluate_single)
    from sealflow.knowledge.heldout.summary import grade_rows
    from sealflow.modeling import load_model

    settings, placement, passages, tokenizer, edits, by_passage = _tiny_setup(tiny_model_dir)
    assert len(edits) == 4 and len({e.id for e in edits}) == 4
    box = ModelBox(lambda: load_model(tiny_model_dir, placement))
    answer = backend_answerer(str(tiny_model_dir), placement, BackendSettings(), box, tokenizer)
    n_questions = sum(len(p.questions) for p in passages)
    val = {p.id: p for p in passages}
    indexed = list(enumerate(passages))

    single = evaluate_single(box, tokenizer, "tiny", answer, "base_self_edits", indexed, by_passage, settings,
                             str(tmp_path / "single"))
    assert len(single) == 2 * n_questions and "score" not in single[0]  # k = 2 samples per passage; ungraded
    graded = grade_rows(single, val, settings.scoring)
    assert all(0.0 <= r["score"] <= 1.0 for r in graded)
    assert not any("lora" in name for name, _ in box.model.named_modules())  # unloaded between passages
    # A shard is a slice with global passage indices: its rows are those of the whole run.
    second = evaluate_single(box, tokenizer, "tiny", answer, "base_self_edits", indexed[1:], by_passage, settings,
                             str(tmp_path / "single"))
    assert second == [r for r in single if r["passage_index"] == 1]
    base = evaluate_single(box, tokenizer, "tiny", answer, "base", indexed, {}, settings, str(tmp_path / "base"))
    assert len(base) == n_questions and {r["round"] for r in base} == {""}
    cpt = evaluate_cpt(box, tokenizer, "tiny", answer, "passage", passages, {}, settings, str(tmp_path / "cpt"))
    assert len(cpt) == n_questions and {r["setting"] for r in cpt} == {"cpt"}

    cont = evaluate_continual(lambda: load_model(tiny_model_dir, placement), tokenizer, placement, "tiny",
                              "base_self_edits", passages, by_passage, settings, str(tmp_path / "cont"))
    cont = grade_rows(cont, val, settings.scoring)
    steps = sorted({r["step"] for r in cont})
    assert steps == [0, 1, 2]
    q0 = len(passages[0].questions)
    assert sum(r["step"] == 1 for r in cont) == q0 and sum(r["step"] == 2 for r in cont) == n_questions
    matrix = continual_matrix(cont, [p.id for p in passages])
    assert matrix[0][passages[1].id] == "" and matrix[1][passages[1].id] != ""
    row = summary_row("base_self_edits", "continual", cont)
    assert row["n_questions"] == n_questions and 0.0 <= row["accuracy"] <= 1.0


# ---------------------------------------------------------------- paired effects


def test_pooled_interval_resamples_within_each_seed_and_narrows_with_more_seeds() -> None:
    from sealflow.stats import paired_bootstrap_interval, pooled_paired_bootstrap_interval

    seed_a = [1.0] * 6 + [0.0] * 14          # +0.3 on 20 questions
    seed_b = [1.0] * 2 + [-1.0] * 2 + [0.0] * 16   # 0.0 on 20 questions
    diff, lo, hi = pooled_paired_bootstrap_interval([seed_a, seed_b], samples=1000)
    assert diff == pytest.approx(0.15) and lo <= diff <= hi
    # Stratified: a seed whose differences are all equal adds no spread, whatever its size.
    assert pooled_paired_bootstrap_interval([[0.2] * 5, [0.2] * 50], samples=200) == pytest.approx((0.2, 0.2, 0.2))
    # Three copies of one seed's questions give a narrower interval than that seed alone.
    _, lo1, hi1 = paired_bootstrap_interval(seed_a, [0.0] * 20, samples=1000)
    _, lo3, hi3 = pooled_paired_bootstrap_interval([seed_a] * 3, samples=1000)
    assert hi3 - lo3 < hi1 - lo1
    assert pooled_paired_bootstrap_interval([[], []])[0] != pooled_paired_bootstrap_interval([[], []])[0]  # NaN


def test_paired_difference_has_the_sign_of_method_minus_baseline() -> None:
    from sealflow.knowledge.heldout.summary import effect_pairs, effect_rows
    from sealflow.stats import paired_bootstrap_interval

    better = [1.0] * 30 + [0.0] * 10
    worse = [1.0] * 10 + [0.0] * 30
    diff, lo, hi = paired_bootstrap_interval(better, worse, samples=500)
    assert diff == pytest.approx(0.5) and 0 < lo <= diff <= hi
    # Pairing matters: the same scores shifted by one question per pair share nothing.
    assert paired_bootstrap_interval([0.5] * 8, [0.5] * 8, samples=200) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="length"):
        paired_bootstrap_interval([1.0], [1.0, 0.0])
    assert effect_pairs(["round3", "base", "passage", "base_self_edits", "round2"]) == [
        ("passage", "base"), ("base_self_edits", "passage"), ("round2", "base_self_edits"),
        ("round3", "round2"), ("round3", "base")]
    keys = [(f"p{i // 5}", i % 5) for i in range(40)]
    scores = {"base": dict(zip(keys, worse)), "passage": dict(zip(keys, better))}
    (row,) = effect_rows("single", scores, bootstrap_samples=300)
    assert row["pair"] == "passage - base" and row["difference"] == pytest.approx(0.5) and row["n_questions"] == 40
    assert row["ci95_low"] > 0


# ---------------------------------------------------------------- early stop and resumes


def test_generation_stops_at_the_newline_with_the_same_answers(tiny_model_dir) -> None:
    """Answers cut at the first newline are the same whether generate stops there or runs the
    whole budget; with the stop it ends sooner (fewer new tokens)."""
    from sealflow.backends import BackendSettings, GenerationRequest, apply_stop
    from sealflow.backends.hf import HFBackend
    from sealflow.devices import resolve_placement

    backend = HFBackend(str(tiny_model_dir), resolve_placement("cpu"), BackendSettings(batch_size=4))
    lengths = []
    generate = backend.model.generate

    def recording(*args, **kwargs):
        out = generate(*args, **kwargs)
        lengths.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    backend.model.generate = recording
    prompts = [f"{p.title}\n{p.context[:80]}" for p in _passages(3)] + ["Question: What is it?\nAnswer:"]
    budget = 24
    full = backend.generate([GenerationRequest(p, max_new_tokens=budget) for p in prompts])
    # A stop string this model does write early in one answer (a tiny model rarely writes a newline).
    text = max((f[0] for f in full), key=len)
    stop = ("\n", text[len(text) // 4 : len(text) // 4 + 2])
    stopped = backend.generate([GenerationRequest(p, max_new_tokens=budget, stop=stop) for p in prompts])
    assert [s[0] for s in stopped] == [apply_stop(f[0], stop) for f in full]
    assert [s[0] for s in stopped] != [f[0] for f in full]  # the stop cut at least one answer
    assert lengths == [budget, budget]  # a batch ends when its last row stops: here never
    # Alone, the prompt whose answer holds the stop string ends as soon as it is written.
    alone = backend.generate([GenerationRequest(prompts[[f[0] for f in full].index(text)], max_new_tokens=budget,
                                                stop=stop)])
    assert alone[0][0] == apply_stop(text, stop) and lengths[-1] < budget, lengths


def test_continual_resumes_at_the_first_unfinished_step(tiny_model_dir, tmp_path, monkeypatch) -> None:
    """A job dying after its first written step keeps it: the rerun replays it by merging its saved
    LoRA (no training, no answering) and its rows equal those of an uninterrupted run."""
    from sealflow.faults import InjectedFault
    from sealflow.knowledge.heldout import run
    from sealflow.modeling import load_model

    settings, placement, passages, tokenizer, _, by_passage = _tiny_setup(tiny_model_dir, eval_repeats=1)
    load = lambda: load_model(tiny_model_dir, placement)  # noqa: E731
    whole = run.evaluate_continual(load, tokenizer, placement, "tiny", "passage", passages, by_passage, settings,
                                   str(tmp_path / "whole"))
    root = tmp_path / "resumed"
    monkeypatch.setenv("SEALFLOW_FAIL_ONCE", "heldout")
    monkeypatch.setenv("SEALFLOW_FAULT_DIR", str(tmp_path / "faults"))
    with pytest.raises(InjectedFault):
        run.evaluate_continual(load, tokenizer, placement, "tiny", "passage", passages, by_passage, settings,
                               str(root))
    steps = sorted(p.name for p in (root / "rep0").iterdir())
    assert steps == ["step000"]  # step 0 answered; the kill landed before update 1 was written
    # Let step 1 finish too, then die on nothing: the rerun must replay steps 0 and 1.
    trained, answered = [], []
    real_train, real_answer = run.train_lora, run.answer_questions
    monkeypatch.setattr(run, "train_lora", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    monkeypatch.setattr(run, "answer_questions", lambda *a, **k: answered.append(1) or real_answer(*a, **k))
    resumed = run.evaluate_continual(load, tokenizer, placement, "tiny", "passage", passages, by_passage, settings,
                                     str(root))
    assert resumed == whole
    assert len(trained) == len(passages) and len(answered) == len(passages)  # step 0 was not answered again
    # Everything finished: nothing is trained or answered again, and the rows are the same.
    trained.clear(), answered.clear()
    again = run.evaluate_continual(load, tokenizer, placement, "tiny", "passage", passages, by_passage, settings,
                                   str(root))
    assert again == whole and not trained and not answered
    # A changed earlier step makes every later one stale (the chain of keys).
    other = run.evaluate_continual(load, tokenizer, placement, "tiny", "passage", passages[::-1], by_passage,
                                   settings, str(root))
    assert len(trained) == len(passages) and other != whole
