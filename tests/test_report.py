"""Report plots and tables on synthetic frames: files written, non-empty, the expected labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sealflow.report import benchmarks, plots, tables
from sealflow.stages import report as stages


def _texts(fig) -> str:
    """Every text on a figure (titles, tick labels, annotations, legends) as one string."""
    out = []
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels() + ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    out += [t.get_text() for t in fig.texts]
    if fig._suptitle is not None:
        out.append(fig._suptitle.get_text())
    return "\n".join(out)


def rewards_frame(values_by_round: dict[int, list[float]], invalid: int = 0) -> pd.DataFrame:
    rows = []
    for rnd, values in values_by_round.items():
        for i, value in enumerate(values):
            rows.append({"edit_id": f"r{rnd}-s0-p{i:02d}-k0", "input_id": f"p{i}", "round": rnd, "shard": 0,
                         "sample": 0, "reward_mean": value, "reward_std": 0.0, "score_base": 0.2,
                         "score_adapted": 0.2 + value, "n_questions": 5, "n_repeats": 1,
                         "valid": i >= invalid, "reason": "" if i >= invalid else "no_usable_lines"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_reward_distribution_and_fraction_written(tmp_path: Path, suffix: str) -> None:
    data = rewards_frame({1: [0.0, 0.2, -0.1, 0.0], 2: [0.3, 0.1, 0.0, 0.4]}, invalid=1)
    fig = plots.reward_distribution(data, "Knowledge: reward per self-edit")
    text = _texts(fig)
    assert "round 1" in text and "round 2" in text and "n=4" in text and "invalid" in text
    out = plots.save_figure(fig, tmp_path / f"dist{suffix}")
    assert out.stat().st_size > 1000
    frac = plots.positive_fraction(data)
    assert "1/4\n(3 valid)" in _texts(frac) and "2/4" not in _texts(frac)
    assert "3/4\n(3 valid)" in _texts(frac)
    assert plots.save_figure(frac, tmp_path / f"frac{suffix}").stat().st_size > 1000
    assert not list(tmp_path.glob(".*tmp*")), "atomic write leaves no temporary file"


def test_all_zero_and_empty_rewards_still_plot(tmp_path: Path) -> None:
    zeros = rewards_frame({1: [0.0] * 8, 2: [0.0] * 8})
    fig = plots.reward_distribution(zeros)
    lo, hi = fig.axes[0].get_ylim()
    assert lo < 0 < hi
    table = plots.positive_fraction_table(zeros)
    assert table["fraction_positive"].tolist() == [0.0, 0.0]
    plots.save_figure(plots.positive_fraction(zeros), tmp_path / "zero.svg")
    empty = pd.DataFrame(columns=zeros.columns)
    for fig in (plots.reward_distribution(empty), plots.positive_fraction(empty)):
        assert "no self-edits were scored" in _texts(fig)
        assert plots.save_figure(fig, tmp_path / "empty.svg").stat().st_size > 500


def test_valid_column_read_from_csv_strings(tmp_path: Path) -> None:
    data = rewards_frame({1: [0.1, 0.0]}, invalid=1)
    data.to_csv(tmp_path / "rewards.csv", index=False)
    read = stages.read_rewards([tmp_path / "rewards.csv"])
    assert plots.prepare_rewards(read)["valid"].tolist() == [False, True]


def test_save_figure_is_reproducible(tmp_path: Path) -> None:
    data = rewards_frame({1: [0.0, 0.2, -0.1], 2: [0.3, 0.1, 0.0]})
    a = plots.save_figure(plots.reward_distribution(data), tmp_path / "a.svg").read_bytes()
    b = plots.save_figure(plots.reward_distribution(data), tmp_path / "b.svg").read_bytes()
    assert a == b


def heldout_summary() -> pd.DataFrame:
    rows = []
    for method, rnd, acc in [("base", "", 0.30), ("passage", "", 0.33), ("base_self_edits", 0, 0.39),
                             ("round2", 1, 0.44), ("round3", 2, 0.47)]:
        for setting, delta in [("single", 0.0), ("cpt", -0.05), ("continual", -0.1)]:
            a = acc + delta
            rows.append({"method": method, "setting": setting, "round": rnd, "accuracy": a, "ci95_low": a - 0.04,
                         "ci95_high": a + 0.04, "n_questions": 50})
    return pd.DataFrame(rows)


def test_heldout_accuracy_chart(tmp_path: Path) -> None:
    fig = plots.heldout_accuracy(heldout_summary())
    text = _texts(fig)
    for label in ("base", "passage", "base_self_edits", "round2", "round3", "single", "cpt", "continual"):
        assert label in text
    assert "0.47" in text and "accuracy (95% CI)" in text
    assert plots.save_figure(fig, tmp_path / "heldout.svg").stat().st_size > 2000
    # a summary without intervals or settings still plots
    bare = heldout_summary()[["method", "accuracy"]].drop_duplicates("method")
    assert "round3" in _texts(plots.heldout_accuracy(bare))
    assert "no held-out results" in _texts(plots.heldout_accuracy(pd.DataFrame()))


def test_method_labels_add_round_only_when_needed() -> None:
    frame = pd.DataFrame({"method": ["round", "round", "icl"], "round": [1, 2, None]})
    assert plots._method_labels(frame, ["method"]) == ["round (r1)", "round (r2)", "icl"]


def test_arc_success_chart(tmp_path: Path) -> None:
    summary = pd.DataFrame({"method": ["icl", "base_self_edits", "round2", "oracle"], "round": ["", 0, 1, ""],
                            "n_tasks": 8, "n_attempts": 8, "n_solved": [0, 2, 5, 8],
                            "success_rate": [0.0, 0.25, 0.625, 1.0], "ci95_low": [0.0, 0.07, 0.3, 0.68],
                            "ci95_high": [0.32, 0.59, 0.86, 1.0]})
    fig = plots.arc_success(summary)
    text = _texts(fig)
    assert all(m in text for m in ("icl", "base_self_edits", "round2", "oracle"))
    assert "5/8" in text and "0/8" in text
    assert plots.save_figure(fig, tmp_path / "arc.png").stat().st_size > 2000
    zero = summary.assign(success_rate=0.0, n_solved=0, ci95_low=np.nan, ci95_high=np.nan)
    plots.save_figure(plots.arc_success(zero), tmp_path / "arc0.svg")


def write_matrix(path: Path, n: int = 4) -> Path:
    """The held-out evaluation's layout: after_update, learnt, one column per passage; row 0 = before."""
    ids = [f"gen-1-{j:05d}" for j in range(n)]
    rows = []
    for step in range(n + 1):
        row = {"after_update": step, "learnt": ids[step - 1] if step else ""}
        for j, pid in enumerate(ids):
            row[pid] = 0.1 if step == 0 else (round(0.9 - 0.1 * (step - j - 1), 2) if j < step else "")
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_forgetting_curve_from_matrix_file(tmp_path: Path) -> None:
    matrix = plots.read_matrix(write_matrix(tmp_path / "continual_matrix_round2.csv"))
    assert list(matrix.index) == [0, 1, 2, 3, 4] and "learnt" not in matrix.columns and matrix.shape[1] == 4
    summary = plots.forgetting_summary(matrix)
    assert summary["mean_seen"].round(3).tolist()[1:] == [0.9, 0.85, 0.8, 0.75]
    assert summary["newest"].tolist()[1:] == [0.9, 0.9, 0.9, 0.9]
    fig = plots.forgetting_curve(matrix, "round2")
    text = _texts(fig)
    assert "Forgetting in the continual setting (round2)" in text
    assert "mean over passages learnt so far" in text and "before any update (mean)" in text
    stages.forgetting(matrix=tmp_path / "continual_matrix_round2.csv", method="round2",
                      out=tmp_path / "forgetting_round2.svg")
    assert (tmp_path / "forgetting_round2.svg").stat().st_size > 2000


def test_forgetting_curve_plain_matrix_and_empty() -> None:
    plain = pd.DataFrame(np.eye(3), columns=["a", "b", "c"])  # rows 0..2 read as updates 0..2
    assert plots.forgetting_curve(plain).axes
    assert "no continual-learning results" in _texts(plots.forgetting_curve(pd.DataFrame()))


def test_benchmark_paths_and_patterns() -> None:
    patterns = {
        "inner_loop": "knowledge/round{r,\\d+}/inner_loop/shard{s,\\d+}.tsv",
        "fewshot_inner_loop": "fewshot/round{r}/inner_loop/shard{s}.tsv",
        "heldout_evaluate": "knowledge/heldout/{setting,single|cpt}/{method}.tsv",
        "heldout_continual": "knowledge/heldout/continual/{method}.tsv",
        "base_model": "base_model/{domain}.tsv",
        "update_policy": "{domain}/round{r}/update_policy.tsv",
    }
    parse = lambda p: benchmarks.parse_benchmark_path(p, patterns=patterns)  # noqa: E731
    assert parse("knowledge/round1/inner_loop/shard0.tsv") == {
        "rule": "inner_loop", "domain": "knowledge", "round": 1, "shard": 0,
        "path": "knowledge/round1/inner_loop/shard0.tsv"}
    assert parse("fewshot/round2/inner_loop/shard3.tsv")["rule"] == "fewshot_inner_loop"
    assert parse("knowledge/heldout/continual/base.tsv")["rule"] == "heldout_continual"
    assert parse("knowledge/heldout/cpt/round2.tsv")["rule"] == "heldout_evaluate"
    assert parse("base_model/fewshot.tsv")["domain"] == "fewshot"
    assert parse("knowledge/round2/update_policy.tsv")["rule"] == "update_policy"
    # without patterns: known names, then the first non-domain/round/shard part
    assert benchmarks.parse_benchmark_path("knowledge/round2/score_adapters/shard1.tsv")["rule"] == "score_adapters"


BENCH = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n{s}\t0:00:01\t{rss}\t1\t1\t1\t1\t1\t50\t{s}\n"


def test_cost_overview_from_benchmark_files(tmp_path: Path) -> None:
    root = tmp_path / "benchmarks"
    for rel, s, rss in [("base_model/knowledge.tsv", 10.0, 400.0), ("knowledge/round1/inner_loop/shard0.tsv", 5.0, 600.0),
                        ("knowledge/round1/inner_loop/shard1.tsv", 7.0, 650.0), ("knowledge/round2/update_policy.tsv", 3.0, 500.0)]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(BENCH.format(s=s, rss=rss))
    (root / "knowledge" / "broken.tsv").write_text("")  # an empty file is skipped
    bench = benchmarks.load_benchmarks(root, {"inner_loop": "knowledge/round{r}/inner_loop/shard{s}.tsv"})
    assert len(bench) == 4
    summary = benchmarks.summarize_benchmarks(bench)
    inner = summary.set_index("rule").loc["inner_loop"]
    assert inner["jobs"] == 2 and inner["wall_s_total"] == 12.0 and inner["max_rss_mb"] == 650.0
    assert summary["rule"].iloc[0] == "inner_loop"  # most expensive first
    fig = plots.cost_overview(summary)
    text = _texts(fig)
    assert "inner_loop [knowledge]" in text and "12.0s / 2 jobs" in text and "650 MB" in text
    stages.cost(benchmarks=root, patterns={}, plot=tmp_path / "cost.svg", table=tmp_path / "cost.html")
    assert "inner_loop" in (tmp_path / "cost.html").read_text()
    assert "no benchmark files" in _texts(plots.cost_overview(benchmarks.summarize_benchmarks(
        benchmarks.load_benchmarks(tmp_path / "missing"))))


def test_seconds_per_self_edit_divides_each_rounds_stage_by_its_self_edits(tmp_path: Path) -> None:
    root = tmp_path / "benchmarks"
    jobs = [("knowledge/round1/generate_self_edits/shard0.tsv", 6.0), ("knowledge/round1/generate_self_edits/shard1.tsv", 4.0),
            ("knowledge/round1/inner_loop/shard0.tsv", 30.0), ("knowledge/round1/score_adapters/shard0.tsv", 8.0),
            ("knowledge/round2/inner_loop/shard0.tsv", 9.0), ("knowledge/round2/update_policy.tsv", 3.0),
            ("fewshot/round1/inner_loop/shard0.tsv", 12.0)]
    for rel, s in jobs:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(BENCH.format(s=s, rss=100.0))
    patterns = {f"{d}_{stage}": f"{d}/round{{r}}/{stage}/shard{{s}}.tsv" for d in ("knowledge", "fewshot")
                for stage in ("generate_self_edits", "inner_loop", "score_adapters")}
    patterns["update_policy"] = "{domain}/round{r}/update_policy.tsv"
    rewards = []
    for domain, rnd, n in (("knowledge", 1, 5), ("knowledge", 2, 3), ("fewshot", 1, 4)):
        path = tmp_path / "run" / domain / f"round{rnd}" / "rewards.csv"
        path.parent.mkdir(parents=True)
        pd.DataFrame({"edit_id": [f"e{i}" for i in range(n)], "reward_mean": 0.0}).to_csv(path, index=False)
        rewards.append(path)
    stages.cost(benchmarks=root, patterns=patterns, plot=tmp_path / "cost.svg", table=tmp_path / "cost.html",
                rewards=rewards, per_self_edit=tmp_path / "per_edit.html")
    per = benchmarks.seconds_per_self_edit(benchmarks.load_benchmarks(root, patterns),
                                           {("knowledge", 1): 5, ("knowledge", 2): 3, ("fewshot", 1): 4})
    got = {(r.domain, r.round, r.stage): (r.jobs, r.s_per_self_edit) for r in per.itertuples()}
    assert got == {("fewshot", 1, "inner loop"): (1, 3.0), ("knowledge", 1, "generation"): (2, 2.0),
                   ("knowledge", 1, "inner loop"): (1, 6.0), ("knowledge", 1, "scoring"): (1, 1.6),
                   ("knowledge", 2, "inner loop"): (1, 3.0)}  # update_policy is not a per-edit stage
    assert per["stage"].tolist()[1:4] == ["generation", "inner loop", "scoring"]
    html = (tmp_path / "per_edit.html").read_text()
    assert "Seconds per self-edit" in html and "1.60" in html


def test_examples_best_and_worst(tmp_path: Path) -> None:
    data = rewards_frame({1: [0.5, -0.2, 0.0, 0.1, 0.3], 2: [0.0, 0.0]}, invalid=0)
    edits = [{"id": row.edit_id, "prompt": f"Passage {row.input_id}", "completion": f"<b>fact</b> {i}"}
             for i, row in enumerate(data.itertuples())]
    picked = tables.select_examples(data, edits, kept_ids=["r1-s0-p00-k0"], n=2)
    r1 = picked[picked["round"] == 1]
    assert r1["pick"].tolist() == ["best 1", "best 2", "worst 1", "worst 2"]
    assert r1["reward_mean"].tolist() == [0.5, 0.3, -0.2, 0.0]
    assert r1["kept"].tolist() == [True, False, False, False]
    r2 = picked[picked["round"] == 2]
    assert r2["pick"].tolist() == ["best 1", "best 2"], "a self-edit is never both best and worst"
    page = tables.examples_html(r1, "Round 1: best and worst self-edits", tables.examples_note(data))
    assert "&lt;b&gt;fact&lt;/b&gt; 0" in page and "<b>fact" not in page, "self-edit text is escaped"
    assert "kept for SFT" in page and "best 1" in page and "worst 2" in page
    note = tables.examples_note(rewards_frame({1: [0.0, 0.0]}))
    assert "All rewards are equal" in note
    assert "No self-edits" in tables.examples_html(pd.DataFrame(columns=tables.EXAMPLE_COLUMNS), "t")


def test_examples_stage_on_files(tmp_path: Path) -> None:
    data = rewards_frame({1: [0.2, 0.0, -0.1]})
    data.to_csv(tmp_path / "rewards.csv", index=False)
    edits = [{"id": e, "input_id": "p", "sample": 0, "prompt": "P", "completion": f"text {e}", "round": 1}
             for e in data["edit_id"]]
    (tmp_path / "shard0.jsonl").write_text("".join(json.dumps(e) + "\n" for e in edits))
    (tmp_path / "filtered.jsonl").write_text(json.dumps({"edit_id": edits[0]["id"], "prompt": "P",
                                                         "completion": "x", "reward": 0.2}) + "\n")
    out = tmp_path / "examples.html"
    stages.examples(domain="knowledge", r=1, rewards=tmp_path / "rewards.csv", edits=[tmp_path / "shard0.jsonl"],
                    filtered=tmp_path / "filtered.jsonl", out=out, n=1)
    page = out.read_text()
    assert "Knowledge incorporation, round 1: best and worst self-edits" in page
    assert f"text {edits[0]['id']}" in page and f"text {edits[2]['id']}" in page and "kept for SFT" in page


def test_summary_tables_as_html(tmp_path: Path) -> None:
    summary = heldout_summary()
    summary.to_csv(tmp_path / "summary.csv", index=False)
    pd.DataFrame([{"pair": "passage - base", "setting": "single", "difference": 0.1, "ci95_low": 0.05,
                   "ci95_high": 0.15}]).to_csv(tmp_path / "effects.csv", index=False)
    stages.heldout(summary=tmp_path / "summary.csv", effects=tmp_path / "effects.csv", plot=tmp_path / "heldout.svg",
                   table=tmp_path / "heldout.html", effects_plot=tmp_path / "effects.svg")
    assert (tmp_path / "effects.svg").read_text().startswith("<?xml")
    page = (tmp_path / "heldout.html").read_text()
    assert "<th>ci95_low</th>" in page and "base_self_edits" in page and "0.470" in page
    assert (tmp_path / "heldout.svg").stat().st_size > 2000
    formatted = tables.format_summary(summary)
    assert str(formatted["round"].dtype) == "Int64"
    assert "No rows." in tables.frame_html(pd.DataFrame(), "empty")


def test_paired_effects_plot_marks_intervals_that_exclude_zero():
    data = pd.DataFrame([
        {"pair": "passage - base", "setting": "single", "difference": 0.1, "ci95_low": 0.05, "ci95_high": 0.15},
        {"pair": "round3 - base_self_edits", "setting": "single", "difference": 0.02, "ci95_low": -0.01,
         "ci95_high": 0.05},
    ])
    fig = plots.paired_effects(data)
    colors = [line.get_color() for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert colors == [plots.PALETTE[0], "0.55"]
    empty = plots.paired_effects(pd.DataFrame())
    assert "no paired differences" in empty.axes[0].texts[0].get_text()
