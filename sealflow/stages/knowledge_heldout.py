"""Stages of rules/knowledge_heldout.smk: held-out self-edits, answers (GPU), grading (CPU), summaries."""

from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd

from ..atomic import read_jsonl, write_csv, write_jsonl
from ..ids import shard_slice
from ..knowledge.data import read_passages_jsonl
from ..knowledge.heldout.external import ExternalSettings, import_external, sample_external
from ..knowledge.heldout.methods import EXTERNAL, continual_order, heldout_config, needs_self_edits
from ..knowledge.heldout.settings import EvalSettings, heldout_scoring, sampling_config
from ..knowledge.heldout.summary import (EFFECT_COLUMNS, FORGETTING_COLUMNS, ROW_COLUMNS, SUMMARY_COLUMNS,
                                         accuracy_before, continual_matrix, effect_rows, final_rows, forgetting_rows,
                                         grade_rows,
                                         per_question_map, sort_summary, summary_row, wide_table)
from ..knowledge.seal_layout import read_seal_file, to_seal_layout, write_seal_file
from ..provenance import write_meta
from ..records import read_edits
from ..runtime import collect_warnings

log = logging.getLogger(__name__)

# Model code (torch, transformers) is imported inside the GPU stages only, so the CPU
# stages here (external self-edits, grading, summary) start in about a second.


def self_edits(config: dict, *, method: str, passages: str, out: str, policy: str) -> None:
    """Held-out self-edits of ``method``, sampled from its policy."""
    from ..backends import BackendSettings, make_backend
    from ..devices import resolve_placement
    from ..knowledge.heldout.run import sample_heldout_edits
    from ..knowledge.sampling import SamplingSettings
    from ..modeling import load_tokenizer, resolve_model_path

    passages_path = passages
    passages = read_passages_jsonl(passages_path)
    sampling = SamplingSettings.from_config(sampling_config(config))
    placement = resolve_placement(config["device"])
    tokenizer = load_tokenizer(policy)
    backend = make_backend(policy, placement, BackendSettings.from_config(config["backend"]))
    try:
        edits = sample_heldout_edits(backend, tokenizer, passages, sampling, method, config["seed"],
                                     resolve_model_path(policy))
    finally:
        backend.close()
    _write_edits(out, config, method, edits, resolve_model_path(policy), len(passages))


def external_self_edits(config: dict, *, passages: str, out: str, imported: str | None = None) -> None:
    """The external model's synthetic data for every held-out passage: from its endpoint (a rule
    where the internet is) or, with ``heldout.external.path``, from ``imported``, a file in the SEAL
    authors' layout (their published GPT-4.1 data reproduces the paper's baseline without an API key)."""
    from ..knowledge.sampling import SamplingSettings  # its sampling fields only; no model is loaded

    passages_path = passages
    passages = read_passages_jsonl(passages_path)
    sampling = SamplingSettings.from_config(sampling_config(config))
    ext = ExternalSettings.from_config(heldout_config(config)["external"])
    if imported:
        with collect_warnings("sealflow.knowledge.seal_layout") as seen:
            edits, report = import_external(read_seal_file(imported), passages, sampling, ext.model, config["seed"],
                                            imported, EXTERNAL)
        _write_edits(out, config, EXTERNAL, edits, f"external:{ext.model} (file {imported})", len(passages),
                     **report.as_meta(), warnings=seen.messages)
        return
    edits = sample_external(passages, ext, sampling.k, sampling.temperature, sampling.top_p, sampling.max_new_tokens,
                            config["seed"], EXTERNAL)
    _write_edits(out, config, EXTERNAL, edits, f"external:{ext.model}", len(passages))


def export_self_edits(config: dict, *, edits: str, passages: str, out: str) -> None:
    """A method's held-out self-edits in the SEAL authors' layout."""
    records = to_seal_layout(read_passages_jsonl(passages), read_edits(edits))
    write_seal_file(out, records)
    write_meta(out, config, layout="SEAL authors' synthetic data: [{title, context, questions, completions, prompt}]",
               n_passages=len(records), n_edits=sum(len(r["completions"]) for r in records))
    log.info("exported %d passages' held-out self-edits to %s", len(records), out)


def _write_edits(out: str, config: dict, method: str, edits, writer: str, n_passages: int, **extra) -> None:
    write_jsonl(out, [e.to_dict() for e in edits])
    write_meta(out, config, seed=config["seed"], method=method, model=writer, n_edits=len(edits),
               n_passages=n_passages, **extra)
    log.info("%s: %d held-out self-edits for %d passages", method, len(edits), n_passages)


def evaluate(config: dict, *, method: str, setting: str, passages: str, model: str, answers: str, work: str,
             edits: str | None = None, s: int | None = None) -> None:
    """Ungraded ``answers`` of one (method, setting), or of shard ``s`` of single.

    Items (adapters, continual steps) are written under ``work`` as they finish, so a
    rerun after a kill or timeout redoes only the unfinished ones; ``work`` is removed
    once the answers are written.
    """
    from ..backends import BackendSettings
    from ..devices import resolve_placement
    from ..inner_loop import model_fingerprint
    from ..knowledge.heldout.run import (ModelBox, backend_answerer, clear_work, edits_by_passage,
                                         evaluate_continual, evaluate_cpt, evaluate_single)
    from ..modeling import load_model, load_tokenizer, resolve_model_path

    passages_path, model_path, edits_path, out = passages, model, edits, answers
    settings = EvalSettings.from_config(config)
    passages = read_passages_jsonl(passages_path)
    edits = edits_by_passage(read_edits(edits_path)) if edits_path else {}
    if needs_self_edits(method) and not edits:
        raise ValueError(f"method {method!r} needs held-out self-edits but {edits_path} holds none")
    placement = resolve_placement(config["device"])
    tokenizer = load_tokenizer(model_path)
    model_id = model_fingerprint(resolve_model_path(model_path))
    backend = BackendSettings.from_config(config["backend"])
    load = lambda: load_model(model_path, placement)  # noqa: E731
    if setting == "continual":
        rows = evaluate_continual(load, tokenizer, placement, model_id, method, passages, edits, settings, work,
                                  backend.batch_size)
    else:
        box = ModelBox(load)
        answer = backend_answerer(model_path, placement, backend, box, tokenizer)
        if setting == "single":
            if s is None:
                raise ValueError("the single setting runs per shard: no shard given")
            indexed = shard_slice(list(enumerate(passages)), s, int(heldout_config(config)["shard_size"]))
            rows = evaluate_single(box, tokenizer, model_id, answer, method, indexed, edits, settings, work,
                                   fault_key=f"single-{method}-s{s}")
        else:
            rows = evaluate_cpt(box, tokenizer, model_id, answer, method, passages, edits, settings, work,
                                fault_key=f"cpt-{method}")
        box.release()
    write_jsonl(out, rows)
    write_meta(out, config, seed=config["seed"], method=method, setting=setting, shard=s,
               model=resolve_model_path(model_path), self_edits=edits_path, k=settings.k,
               eval_repeats=settings.eval_repeats, backend=backend.name)
    clear_work(work)
    log.info("%s/%s%s: %d answers", setting, method, "" if s is None else f" shard {s}", len(rows))


def grade(config: dict, *, method: str, setting: str, passages: str, answers: Sequence[str], rows: str,
          matrix: str | None = None) -> None:
    """Graded ``rows`` of one (method, setting) from its answer files (shards in order);
    continual also writes its ``matrix``. A judge is called from here, never from a GPU job."""
    hcfg, scoring = heldout_config(config), heldout_scoring(config)
    val = read_passages_jsonl(passages)
    paths = [answers] if isinstance(answers, str) else list(answers)
    answered = [row for path in paths for row in read_jsonl(path)]
    graded = grade_rows(answered, {p.id: p for p in val}, scoring)
    write_csv(rows, graded, ROW_COLUMNS)
    write_meta(rows, config, method=method, setting=setting, answers=paths, grader=scoring.grader, k=hcfg["k"],
               eval_repeats=hcfg["eval_repeats"])
    if matrix:
        order = [p.id for p in continual_order(val, hcfg["continual_passages"])]
        write_csv(matrix, continual_matrix(graded, order), ["after_update", *order])
        write_meta(matrix, config, method=method, rows="after update i = 1..N (row i learnt column i)",
                   columns="held-out passages in learning order", cell="mean score over questions and repeats")
    log.info("%s/%s: %d graded answers", setting, method, len(graded))


def _read_rows(path: str) -> list[dict]:
    return pd.read_csv(path, keep_default_na=False).to_dict("records")


def summary(config: dict, *, rows: Sequence[str], matrices: Sequence[str], pairs: Sequence[Sequence[str]],
            models: Sequence[str], writers: Sequence[str], matrix_methods: Sequence[str], summary: str, table: str,
            forgetting: str, effects: str) -> None:
    """``summary.csv`` (long), ``table.csv`` (the paper's layout), ``forgetting.csv`` and
    ``effects.csv`` (paired differences between methods on the same questions).

    ``matrix_paths[i]`` is the continual matrix of ``matrix_methods[i]``; its step-0 rows
    (accuracy before any update) are read from the matching continual row file.
    """
    from ..modeling import resolve_model_path

    row_paths, matrix_paths, summary_out, table_out, forgetting_out = rows, matrices, summary, table, forgetting
    n_boot = int(heldout_config(config)["bootstrap_samples"])
    summary = [summary_row(method, setting, _read_rows(path), resolve_model_path(model), writer, n_boot, config["seed"])
               for (setting, method), path, model, writer in zip(pairs, row_paths, models, writers)]
    summary = sort_summary(summary)
    write_csv(summary_out, summary, SUMMARY_COLUMNS)
    table = wide_table(summary)
    write_csv(table_out, table, list(table[0]) if table else ["method", "round"])
    continual_rows = {method: path for (setting, method), path in zip(pairs, row_paths) if setting == "continual"}
    forgetting = []
    for method, path in zip(matrix_methods, matrix_paths):
        matrix = _read_rows(path)
        order = [c for c in pd.read_csv(path, nrows=0).columns if c != "after_update"]
        before = accuracy_before(_read_rows(continual_rows[method])) if method in continual_rows else None
        forgetting += forgetting_rows(method, matrix, order, before)
    write_csv(forgetting_out, forgetting, FORGETTING_COLUMNS)
    effect_table = []
    for setting in dict.fromkeys(s for s, _ in pairs):
        scores = {method: per_question_map(final_rows(_read_rows(path)) if setting == "continual" else _read_rows(path))
                  for (s, method), path in zip(pairs, row_paths) if s == setting}
        effect_table += effect_rows(setting, scores, n_boot, config["seed"])
    write_csv(effects, effect_table, EFFECT_COLUMNS)
    write_meta(effects, config, interval="95% percentile bootstrap of the mean paired difference, resampling questions",
               pairs="each method against the one before it in table order; the last round against base")
    for path in (summary_out, table_out, forgetting_out):
        write_meta(path, config, grader=heldout_scoring(config).grader,
                   interval="95%: Wilson for 0/1 per-question scores, else percentile bootstrap over questions",
                   accuracy="mean over questions of each question's mean score over samples and repeats")
    log.info("held-out summary: %d rows", len(summary))
