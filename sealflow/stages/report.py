"""Stages of rules/report.smk: file I/O around the pure plot and table functions of ``sealflow.report``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..atomic import read_jsonl, write_text
from ..report import DOMAIN_TITLES, plots, tables
from ..report.benchmarks import load_benchmarks, seconds_per_self_edit, summarize_benchmarks

log = logging.getLogger(__name__)
PathLike = str | os.PathLike


def read_rewards(paths: Sequence[PathLike]) -> pd.DataFrame:
    frames = [pd.read_csv(p) for p in paths]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["edit_id", "input_id", "round", "reward_mean", "valid"])


def reward_plots(*, domain: str, rewards: Sequence[PathLike], distribution: PathLike, fraction: PathLike) -> None:
    """Reward distribution and fraction of positive rewards, every round of one domain."""
    data = read_rewards(rewards)
    title = DOMAIN_TITLES.get(domain, domain)
    log.info("%s: %d rewards from %d files", domain, len(data), len(rewards))
    plots.save_figure(plots.reward_distribution(data, f"{title}: reward per self-edit"), distribution)
    plots.save_figure(plots.positive_fraction(data, f"{title}: self-edits with positive reward"), fraction)


def examples(*, domain: str, r: int, rewards: PathLike, edits: Sequence[PathLike], filtered: PathLike | None,
             out: PathLike, n: int = 3) -> None:
    """Best and worst self-edits of one round, with their text, as an HTML page."""
    data = read_rewards([rewards])
    edit_rows = [row for path in edits for row in read_jsonl(path)]
    kept = [row["edit_id"] for row in read_jsonl(filtered)] if filtered else []
    picked = tables.select_examples(data, edit_rows, kept, n=n)
    title = f"{DOMAIN_TITLES.get(domain, domain)}, round {r}: best and worst self-edits"
    write_text(out, tables.examples_html(picked, title, tables.examples_note(data)))
    log.info("%d examples written to %s", len(picked), out)


def fewshot_choices(*, rewards: Sequence[PathLike], edits: Sequence[PathLike], n_shards: int, out: PathLike) -> None:
    """ARC: per round, the share of self-edits choosing each configuration value and its mean reward.

    ``edits`` lists every round's ``n_shards`` self-edit files, round after round.
    """
    from ..fewshot.choices import CHOICE_COLUMNS, choice_rows

    rows = []
    for r, reward_path in enumerate(rewards, start=1):
        edit_paths = edits[(r - 1) * n_shards : r * n_shards]
        rows += choice_rows(r, pd.read_csv(reward_path).to_dict("records"),
                            [row for path in edit_paths for row in read_jsonl(path)])
    frame = pd.DataFrame(rows, columns=CHOICE_COLUMNS)
    write_text(out, tables.frame_html(frame, "ARC: configuration choices per round",
                                      "share: of the round's parseable self-edits; mean reward: of those choosing "
                                      "the value (1 = solved its task)"))


def heldout(*, summary: PathLike, effects: PathLike, plot: PathLike, table: PathLike, effects_plot: PathLike) -> None:
    """Held-out knowledge accuracy by method and setting (chart and table) and the paired differences."""
    plots.save_figure(plots.paired_effects(pd.read_csv(effects), "Knowledge incorporation: paired differences"),
                      effects_plot)
    data = pd.read_csv(summary)
    plots.save_figure(plots.heldout_accuracy(data, "Knowledge incorporation: held-out accuracy"), plot)
    write_text(table, tables.frame_html(tables.format_summary(data), "Held-out accuracy by method and setting",
                                        "accuracy with 95% confidence interval over held-out questions"))


def forgetting(*, matrix: PathLike, method: str, out: PathLike) -> None:
    """Continual setting: the accuracy matrix and the forgetting curve of one method."""
    plots.save_figure(plots.forgetting_curve(plots.read_matrix(matrix), method), out)


def fewshot_eval(*, summary: PathLike, effects: PathLike, plot: PathLike, table: PathLike,
                 effects_plot: PathLike) -> None:
    """ARC success rate by method (chart and table) and the paired differences between methods."""
    plots.save_figure(plots.paired_effects(pd.read_csv(effects), "Few-shot ARC: paired differences"), effects_plot)
    data = pd.read_csv(summary)
    plots.save_figure(plots.arc_success(data, "Few-shot ARC: success rate on held-out tasks"), plot)
    write_text(table, tables.frame_html(tables.format_summary(data), "ARC success by method",
                                        "success rate with 95% confidence interval over held-out tasks"))


def cost(*, benchmarks: PathLike, patterns: Mapping[str, str], plot: PathLike, table: PathLike,
         rewards: Sequence[PathLike] = (), per_self_edit: PathLike | None = None) -> None:
    """Wall time and peak memory per rule from every Snakemake benchmark file of the run,
    and seconds per self-edit of each round's generation, inner loop and scoring.

    ``patterns`` maps each rule with a ``benchmark:`` to its file pattern relative to
    ``benchmarks``, so every file is attributed to the rule that wrote it. ``rewards`` are
    the rounds' ``{domain}/round{r}/rewards.csv``: one row per self-edit.
    """
    bench = load_benchmarks(Path(benchmarks), dict(patterns))
    summary = summarize_benchmarks(bench)
    log.info("%d benchmark rows, %d rule/domain groups", len(bench), len(summary))
    plots.save_figure(plots.cost_overview(summary, "Cost per rule (from benchmark files)"), plot)
    write_text(table, tables.frame_html(summary, "Cost per rule",
                                        f"{len(bench)} jobs with a benchmark file; memory in MB, time in s",
                                        float_digits=1))
    if per_self_edit is not None:
        counts = {(Path(p).parent.parent.name, int(Path(p).parent.name.removeprefix("round"))): len(pd.read_csv(p))
                  for p in rewards}
        per_edit = seconds_per_self_edit(bench, counts)
        log.info("seconds per self-edit:\n%s", per_edit.to_string(index=False))
        write_text(per_self_edit, tables.frame_html(
            per_edit, "Seconds per self-edit", "wall time of each round's jobs (model loading included) "
            "divided by the round's self-edits", float_digits=2))


def training(*, rounds: PathLike, edit_stats: PathLike, first_edits: Sequence[PathLike], last_edits: Sequence[PathLike],
             plot: PathLike, side_by_side: PathLike, n: int = 3) -> None:
    """Reward, positive share and faithfulness per round (plot), and first- vs last-round self-edits."""
    plots.save_figure(plots.training_rounds(pd.read_csv(rounds), "Knowledge incorporation: training rounds"), plot)
    stats = pd.read_csv(edit_stats)
    first = [row for path in first_edits for row in read_jsonl(path)]
    last = [row for path in last_edits for row in read_jsonl(path)]
    write_text(side_by_side, tables.side_by_side_html(first, last, stats, n))
