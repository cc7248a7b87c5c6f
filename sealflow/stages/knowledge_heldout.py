"""Stages of rules/knowledge_heldout.smk: held-out self-edits, per-question rows, summaries."""

from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd

from ..atomic import write_csv, write_jsonl
from ..backends import BackendSettings, make_backend
from ..devices import resolve_placement
from ..knowledge.data import read_passages_jsonl
from ..knowledge.heldout.external import ExternalSettings, import_external, sample_external
from ..knowledge.heldout.methods import EXTERNAL, heldout_config, needs_self_edits
from ..knowledge.heldout.run import (continual_order, edits_by_passage, evaluate_continual, evaluate_cpt,
                                     evaluate_single, sample_heldout_edits)
from ..knowledge.heldout.settings import EvalSettings, sampling_config
from ..knowledge.heldout.summary import (EFFECT_COLUMNS, FORGETTING_COLUMNS, ROW_COLUMNS, SUMMARY_COLUMNS,
                                         accuracy_before, continual_matrix, effect_rows, final_rows, forgetting_rows,
                                         per_question_map, sort_summary, summary_row, wide_table)
from ..knowledge.sampling import SamplingSettings
from ..knowledge.seal_layout import read_seal_file, to_seal_layout, write_seal_file
from ..modeling import load_model, load_tokenizer, resolve_model_path
from ..provenance import write_meta
from ..records import read_edits
from ..runtime import collect_warnings

log = logging.getLogger(__name__)


def self_edits(config: dict, *, method: str, passages: str, out: str, policy: str | None = None,
               imported: str | None = None) -> None:
    """Held-out self-edits of ``method``: from its policy, from the external endpoint, or (external
    with ``heldout.external.path``) from ``imported``, a file in the SEAL authors' layout."""
    passages_path = passages
    passages = read_passages_jsonl(passages_path)
    sampling = SamplingSettings.from_config(sampling_config(config))
    extra: dict = {}
    if method == EXTERNAL and imported:
        ext = ExternalSettings.from_config(heldout_config(config)["external"])
        with collect_warnings("sealflow.knowledge.seal_layout") as seen:
            edits, report = import_external(read_seal_file(imported), passages, sampling, ext.model, config["seed"],
                                            imported, method)
        writer = f"external:{ext.model} (file {imported})"
        extra = {**report.as_meta(), "warnings": seen.messages}
    elif method == EXTERNAL:
        ext = ExternalSettings.from_config(heldout_config(config)["external"])
        edits = sample_external(passages, ext, sampling.k, sampling.temperature, sampling.top_p,
                                sampling.max_new_tokens, config["seed"], method)
        writer = f"external:{ext.model}"
    else:
        if policy is None:
            raise ValueError(f"method {method!r} has no policy to sample held-out self-edits from")
        placement = resolve_placement(config["device"])
        tokenizer = load_tokenizer(policy)
        backend = make_backend(policy, placement, BackendSettings.from_config(config["backend"]))
        try:
            edits = sample_heldout_edits(backend, tokenizer, passages, sampling, method, config["seed"],
                                         resolve_model_path(policy))
        finally:
            backend.close()
        writer = resolve_model_path(policy)
    write_jsonl(out, [e.to_dict() for e in edits])
    write_meta(out, config, seed=config["seed"], method=method, model=writer, n_edits=len(edits),
               n_passages=len(passages), **extra)
    log.info("%s: %d held-out self-edits for %d passages", method, len(edits), len(passages))


def export_self_edits(config: dict, *, edits: str, passages: str, out: str) -> None:
    """A method's held-out self-edits in the SEAL authors' layout."""
    records = to_seal_layout(read_passages_jsonl(passages), read_edits(edits))
    write_seal_file(out, records)
    write_meta(out, config, layout="SEAL authors' synthetic data: [{title, context, questions, completions, prompt}]",
               n_passages=len(records), n_edits=sum(len(r["completions"]) for r in records))
    log.info("exported %d passages' held-out self-edits to %s", len(records), out)


def evaluate(config: dict, *, method: str, setting: str, passages: str, model: str, rows: str,
             edits: str | None = None, matrix: str | None = None) -> None:
    """Per-question ``rows`` of one (method, setting); continual also writes its ``matrix``."""
    passages_path, model_path, edits_path, out, matrix_out = passages, model, edits, rows, matrix
    settings = EvalSettings.from_config(config)
    passages = read_passages_jsonl(passages_path)
    edits = edits_by_passage(read_edits(edits_path)) if edits_path else {}
    if needs_self_edits(method) and not edits:
        raise ValueError(f"method {method!r} needs held-out self-edits but {edits_path} holds none")
    placement = resolve_placement(config["device"])
    tokenizer = load_tokenizer(model_path)
    batch = int(config["backend"]["batch_size"])
    if setting == "continual":
        rows = evaluate_continual(lambda: load_model(model_path, placement), tokenizer, placement, method, passages,
                                  edits, settings, batch)
    else:
        model = load_model(model_path, placement)
        run = evaluate_single if setting == "single" else evaluate_cpt
        rows = run(model, tokenizer, placement, method, passages, edits, settings, batch)
    write_csv(out, rows, ROW_COLUMNS)
    write_meta(out, config, seed=config["seed"], method=method, setting=setting, model=resolve_model_path(model_path),
               self_edits=edits_path, grader=settings.scoring.grader, k=settings.k, eval_repeats=settings.eval_repeats)
    if matrix_out:
        order = [p.id for p in continual_order(passages, settings.continual_passages)]
        matrix = continual_matrix(rows, order)
        write_csv(matrix_out, matrix, ["after_update", *order])
        write_meta(matrix_out, config, method=method, rows="after update i = 1..N (row i learnt column i)",
                   columns="held-out passages in learning order", cell="mean score over questions and repeats")
    log.info("%s/%s: %d graded answers", setting, method, len(rows))


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
        write_meta(path, config, grader=EvalSettings.from_config(config).scoring.grader,
                   interval="95%: Wilson for 0/1 per-question scores, else percentile bootstrap over questions",
                   accuracy="mean over questions of each question's mean score over samples and repeats")
    log.info("held-out summary: %d rows", len(summary))
