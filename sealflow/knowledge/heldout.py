"""Held-out evaluation of knowledge incorporation (the paper's Table 2): the pure parts.

Which methods and settings a config asks for, which model writes and which model is
adapted for each method, the settings of the evaluation, per-question rows ->
accuracies with 95% intervals, and the continual-learning (forgetting) matrix.
Nothing here loads a model; ``heldout_eval`` runs them and ``heldout_stages`` wires files.

Methods (one row each in the paper's table):

* ``base``            no adaptation: closed-book answers of the base model.
* ``passage``         a LoRA trained on the passage only.
* ``base_self_edits`` the passage plus self-edits sampled from the base model.
* ``round{r}``        the passage plus self-edits of the policy ``round{r}/policy``, i.e. the
                      policy after ``r - 1`` ReST-EM updates (r = 2 .. rounds + 1; the last is SEAL).
* ``external``        the passage plus "self-edits" written by an external model through an
                      OpenAI-compatible chat endpoint (the paper's GPT-4.1 synthetic data);
                      only when ``knowledge.heldout.external.base_url`` is set.

Settings: ``single`` (a fresh LoRA per passage), ``cpt`` (one LoRA on every held-out
passage at once) and ``continual`` (one passage after another, LoRAs merged in turn).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from ..settings import LoraSettings, TrainSettings
from .scoring_settings import ScoringSettings

BASE, PASSAGE, BASE_SELF_EDITS, EXTERNAL = "base", "passage", "base_self_edits", "external"
SETTINGS: tuple[str, ...] = ("single", "cpt", "continual")
ADAPT_CHOICES: tuple[str, ...] = ("policy", "base")
_ROUND = re.compile(r"^round(\d+)$")

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "methods": [BASE, PASSAGE, BASE_SELF_EDITS, "rounds", EXTERNAL],
    "settings": list(SETTINGS),
    "continual_methods": [PASSAGE, BASE_SELF_EDITS, "last_round"],
    "continual_passages": None,
    "adapt": "policy",
    "k": 1,
    "eval_repeats": 1,
    "sampling": {},
    "inner_loop": {},
    "cpt": {},
    "scoring": {},
    "external": {"base_url": None, "model": "gpt-4.1", "api_key_env": "OPENAI_API_KEY"},
    "bootstrap_samples": 2000,
}

ROW_COLUMNS = ["method", "setting", "round", "step", "repeat", "sample", "passage_index", "input_id",
               "question_index", "question", "gold", "answer", "score", "valid", "reason"]
SUMMARY_COLUMNS = ["method", "setting", "round", "accuracy", "ci95_low", "ci95_high", "n_questions",
                   "n_scores", "ci_method", "adapted_model", "self_edit_writer"]
FORGETTING_COLUMNS = ["method", "passage", "input_id", "before", "just_learnt", "at_end", "forgetting"]


class HeldoutConfigError(ValueError):
    """A ``knowledge.heldout`` value that the schema cannot rule out is wrong."""


# ----------------------------------------------------------------------- config


def heldout_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``knowledge.heldout`` with defaults filled in (a missing section means all defaults)."""
    given = dict(config.get("knowledge", {}).get("heldout") or {})
    merged = {**DEFAULTS, **given}
    merged["external"] = {**DEFAULTS["external"], **(given.get("external") or {})}
    return merged


def policy_rounds(config: Mapping[str, Any]) -> list[int]:
    """Rounds whose policy folder exists after a run: round2 .. round{R+1}."""
    return list(range(2, int(config["knowledge"]["rounds"]) + 2))


def _expand(names: Sequence[str], config: Mapping[str, Any], key: str) -> list[str]:
    rounds = policy_rounds(config)
    out: list[str] = []
    for name in names:
        if name == "rounds":
            out += [f"round{r}" for r in rounds]
        elif name == "last_round":
            out.append(f"round{rounds[-1]}")
        else:
            match = _ROUND.match(name)
            if match and int(match.group(1)) not in rounds:
                raise HeldoutConfigError(
                    f"knowledge.heldout.{key} names {name!r} but only round{rounds[0]}..round{rounds[-1]} "
                    f"have a policy with knowledge.rounds={config['knowledge']['rounds']}"
                )
            out.append(name)
    return list(dict.fromkeys(out))


def external_enabled(config: Mapping[str, Any]) -> bool:
    return bool(heldout_config(config)["external"].get("base_url"))


def heldout_methods(config: Mapping[str, Any]) -> list[str]:
    """Methods to evaluate, in table order; ``external`` only when its endpoint is configured."""
    hcfg = heldout_config(config)
    if not hcfg["enabled"]:
        return []
    methods = _expand(hcfg["methods"], config, "methods")
    return [m for m in methods if m != EXTERNAL or external_enabled(config)]


def heldout_settings(config: Mapping[str, Any]) -> list[str]:
    hcfg = heldout_config(config)
    return [s for s in SETTINGS if s in hcfg["settings"]] if hcfg["enabled"] else []


def continual_methods(config: Mapping[str, Any]) -> list[str]:
    """The continual setting runs only for these (a subset of the enabled methods)."""
    if "continual" not in heldout_settings(config):
        return []
    enabled = heldout_methods(config)
    wanted = _expand(heldout_config(config)["continual_methods"], config, "continual_methods")
    return [m for m in enabled if m in wanted]


def evaluations(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (setting, method) pair the summary holds."""
    pairs = []
    for setting in heldout_settings(config):
        methods = continual_methods(config) if setting == "continual" else heldout_methods(config)
        pairs += [(setting, m) for m in methods]
    return pairs


def method_round(method: str) -> int | None:
    """ReST-EM updates behind the model that wrote the self-edits (None: no self-edits)."""
    if method == BASE_SELF_EDITS:
        return 0
    match = _ROUND.match(method)
    return int(match.group(1)) - 1 if match else None


def needs_self_edits(method: str) -> bool:
    return method not in (BASE, PASSAGE)


def writer_model(method: str, kn_dir: str) -> str | None:
    """Folder of the model that writes ``method``'s self-edits (None for base/passage/external)."""
    if method == BASE_SELF_EDITS:
        return f"{kn_dir}/base/model"
    match = _ROUND.match(method)
    return f"{kn_dir}/round{match.group(1)}/policy" if match else None


def adapted_model(method: str, kn_dir: str, adapt: str) -> str:
    """The model a LoRA is trained on: the self-edit writer itself (``policy``) or always the base."""
    if adapt not in ADAPT_CHOICES:
        raise HeldoutConfigError(f"knowledge.heldout.adapt must be policy or base, got {adapt!r}")
    writer = writer_model(method, kn_dir)
    return writer if adapt == "policy" and writer is not None else f"{kn_dir}/base/model"


# --------------------------------------------------------------------- settings


@dataclass(frozen=True)
class EvalSettings:
    """Everything that decides one (method, setting) evaluation besides the data and model."""

    k: int = 1
    eval_repeats: int = 1
    split: str = "lines"
    include_passage: bool = True
    lora: LoraSettings = LoraSettings()
    train: TrainSettings = TrainSettings()
    cpt_lora: LoraSettings = LoraSettings()
    cpt_train: TrainSettings = TrainSettings()
    scoring: ScoringSettings = ScoringSettings()
    continual_passages: int | None = None
    seed: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "EvalSettings":
        kcfg = config["knowledge"]
        hcfg = heldout_config(config)
        inner = {**kcfg["inner_loop"], **(hcfg["inner_loop"] or {})}
        cpt = {**inner, **(hcfg["cpt"] or {})}
        scoring = {**kcfg.get("scoring", {}), **(hcfg["scoring"] or {})}
        return cls(
            k=int(hcfg["k"]), eval_repeats=int(hcfg["eval_repeats"]),
            split=str(inner.get("split", "lines")), include_passage=bool(inner.get("include_passage", True)),
            lora=LoraSettings.from_config(inner["lora"]), train=TrainSettings.from_config(inner),
            cpt_lora=LoraSettings.from_config(cpt["lora"]), cpt_train=TrainSettings.from_config(cpt),
            scoring=ScoringSettings.from_config(scoring),
            continual_passages=hcfg.get("continual_passages"), seed=int(config.get("seed", 0)),
        )


def sampling_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``knowledge.self_edits`` with ``heldout.sampling`` over it and ``k = heldout.k``."""
    hcfg = heldout_config(config)
    return {**config["knowledge"]["self_edits"], **(hcfg["sampling"] or {}), "k": int(hcfg["k"])}


def seeded(settings: TrainSettings, seed: int) -> TrainSettings:
    return replace(settings, seed=seed)


# -------------------------------------------------------------------- intervals


def wilson_interval(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(values: Sequence[float], samples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of the mean, resampling ``values`` (one per question) with replacement."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    lo = means[int(math.floor((1 - level) / 2 * (samples - 1)))]
    hi = means[int(math.ceil((1 + level) / 2 * (samples - 1)))]
    return (lo, hi)


def accuracy_interval(per_question: Sequence[float], bootstrap_samples: int = 2000,
                      seed: int = 0) -> tuple[float, float, float, str]:
    """Mean, 95% interval and its method over per-question accuracies.

    Wilson when every question's score is 0 or 1 (em/judge with one sample and one
    repeat: a binomial proportion); otherwise (F1, or averages over samples/repeats)
    a percentile bootstrap over questions, the unit the held-out set samples.
    """
    n = len(per_question)
    if n == 0:
        return (float("nan"), float("nan"), float("nan"), "none")
    mean = sum(per_question) / n
    if all(v in (0.0, 1.0) for v in per_question):
        lo, hi = wilson_interval(sum(per_question), n)
        return (mean, lo, hi, "wilson")
    lo, hi = bootstrap_interval(per_question, bootstrap_samples, seed)
    return (mean, lo, hi, "bootstrap")


# ------------------------------------------------------------------ summarising


def _question_key(row: Mapping[str, Any]) -> tuple[str, int]:
    return (str(row["input_id"]), int(row["question_index"]))


def final_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows that count for accuracy: the last continual step (all passages learnt), else all."""
    steps = [int(r["step"]) for r in rows if str(r.get("step", "")) not in ("", "nan", "None")]
    if not steps:
        return list(rows)
    last = max(steps)
    return [r for r in rows if str(r.get("step", "")) not in ("", "nan", "None") and int(r["step"]) == last]


def per_question_scores(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Mean score per question over its samples and repeats, in first-seen order."""
    buckets: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        buckets.setdefault(_question_key(row), []).append(float(row["score"]))
    return [sum(v) / len(v) for v in buckets.values()]


def summary_row(method: str, setting: str, rows: Sequence[Mapping[str, Any]], adapted: str = "",
                writer: str = "", bootstrap_samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    counted = final_rows(rows) if setting == "continual" else list(rows)
    scores = per_question_scores(counted)
    mean, lo, hi, how = accuracy_interval(scores, bootstrap_samples, seed)
    rnd = method_round(method)
    return {"method": method, "setting": setting, "round": "" if rnd is None else rnd,
            "accuracy": mean, "ci95_low": lo, "ci95_high": hi, "n_questions": len(scores),
            "n_scores": len(counted), "ci_method": how, "adapted_model": adapted, "self_edit_writer": writer}


def method_order(methods: Sequence[str]) -> list[str]:
    """Table order: base, passage, base self-edits, rounds ascending, external."""
    def key(m: str) -> tuple[int, int]:
        fixed = {BASE: 0, PASSAGE: 1, BASE_SELF_EDITS: 2, EXTERNAL: 4}
        if m in fixed:
            return (fixed[m], 0)
        match = _ROUND.match(m)
        return (3, int(match.group(1))) if match else (5, 0)
    return sorted(dict.fromkeys(methods), key=key)


def sort_summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    order = {m: i for i, m in enumerate(method_order([r["method"] for r in rows]))}
    return sorted((dict(r) for r in rows), key=lambda r: (SETTINGS.index(r["setting"]), order[r["method"]]))


def wide_table(summary: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The paper's layout: one row per method, one accuracy column per setting (percent)."""
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in summary)]
    table: dict[str, dict[str, Any]] = {}
    for m in method_order([r["method"] for r in summary]):
        rnd = method_round(m)
        table[m] = {"method": m, "round": "" if rnd is None else rnd, **{s: "" for s in settings}}
    for r in summary:
        acc = r["accuracy"]
        table[r["method"]][r["setting"]] = "" if acc != acc else round(100 * float(acc), 1)
    return list(table.values())


# -------------------------------------------------------------- continual matrix


def continual_matrix(rows: Sequence[Mapping[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Accuracy after update i (rows, i = 1..N) on passage j (columns, in learning order).

    Row i learnt column i (the diagonal); cells of passages not learnt yet are blank
    (only passages seen so far are evaluated). Step-0 rows (before any update) are not
    part of the matrix; see :func:`accuracy_before`.
    """
    cells: dict[tuple[int, str], list[float]] = {}
    for row in rows:
        cells.setdefault((int(row["step"]), str(row["input_id"])), []).append(float(row["score"]))
    steps = sorted({step for step, _ in cells if step > 0})
    out = []
    for step in steps:
        record: dict[str, Any] = {"after_update": step}
        for pid in order:
            values = cells.get((step, pid))
            record[pid] = sum(values) / len(values) if values else ""
        out.append(record)
    return out


def accuracy_before(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per passage: mean score before any update (continual step 0)."""
    cells: dict[str, list[float]] = {}
    for row in rows:
        if str(row.get("step", "")) not in ("", "nan", "None") and int(row["step"]) == 0:
            cells.setdefault(str(row["input_id"]), []).append(float(row["score"]))
    return {pid: sum(v) / len(v) for pid, v in cells.items()}


def _cell(matrix: Sequence[Mapping[str, Any]], step: int, pid: str) -> float:
    for row in matrix:
        if int(row["after_update"]) == step:
            value = row.get(pid, "")
            return float(value) if value not in ("", None) and value == value else float("nan")
    return float("nan")


def forgetting_rows(method: str, matrix: Sequence[Mapping[str, Any]], order: Sequence[str],
                    before: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Per passage j: accuracy before any update, right after learning j (row j+1), and at the end."""
    last = max((int(r["after_update"]) for r in matrix), default=0)
    rows = []
    for j, pid in enumerate(order):
        learnt, end = _cell(matrix, j + 1, pid), _cell(matrix, last, pid)
        rows.append({"method": method, "passage": j, "input_id": pid,
                     "before": (before or {}).get(pid, float("nan")), "just_learnt": learnt,
                     "at_end": end, "forgetting": learnt - end})

    def mean(key: str) -> float:
        values = [r[key] for r in rows if r[key] == r[key]]
        return sum(values) / len(values) if values else float("nan")

    rows.append({"method": method, "passage": "mean", "input_id": "", "before": mean("before"),
                 "just_learnt": mean("just_learnt"), "at_end": mean("at_end"), "forgetting": mean("forgetting")})
    return rows
