"""Report figures: pure functions from DataFrames to matplotlib ``Figure`` objects.

No pyplot and no global state: every function builds its own ``Figure`` (rendered by
the Agg/SVG canvases on save), so they are safe to call from tests and scripts alike.
Every function draws something readable even for empty or all-zero inputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: report jobs run on cluster nodes without a display

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sealflow.atomic import atomic_file
from sealflow.records import parse_bool

POSITIVE = "#2a9d8f"
NEUTRAL = "#8d99ae"
NEGATIVE = "#e76f51"
PALETTE = ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#6d597a", "#457b9d", "#8ab17d")


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` atomically; the format comes from the suffix (.svg, .png, .pdf).

    Dates and random ids are left out of the file so equal inputs give equal bytes.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "svg"
    metadata = {"Date": None} if fmt in ("svg", "pdf") else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": "sealflow", "svg.fonttype": "path"}):
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format=fmt, metadata=metadata, bbox_inches="tight", dpi=120)
    return path


def message_figure(title: str, message: str) -> Figure:
    """A placeholder figure that says why there is nothing to plot."""
    fig = Figure(figsize=(6, 2.5))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="0.35", wrap=True,
            transform=ax.transAxes)
    return fig


def _as_bool(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    return series.map(parse_bool).astype(bool)


def prepare_rewards(rewards: pd.DataFrame) -> pd.DataFrame:
    """Numeric round/reward and a boolean ``valid`` column (missing means valid)."""
    out = rewards.copy()
    out["round"] = pd.to_numeric(out.get("round"), errors="coerce")
    out["reward_mean"] = pd.to_numeric(out.get("reward_mean"), errors="coerce").fillna(0.0)
    out["valid"] = _as_bool(out["valid"]) if "valid" in out.columns else True
    return out.dropna(subset=["round"]).astype({"round": int})


def reward_distribution(rewards: pd.DataFrame, title: str = "Reward per self-edit") -> Figure:
    """Box plot of rewards per round with every self-edit as a point (invalid ones hollow)."""
    data = prepare_rewards(rewards)
    if data.empty:
        return message_figure(title, "no self-edits were scored")
    rounds = sorted(data["round"].unique())
    fig = Figure(figsize=(max(4.5, 1.4 * len(rounds) + 2.5), 3.8))
    ax = fig.add_subplot()
    groups = [data.loc[data["round"] == r, "reward_mean"].to_numpy() for r in rounds]
    ax.boxplot(groups, positions=range(len(rounds)), widths=0.5, showfliers=False,
               medianprops={"color": "#264653", "linewidth": 2}, boxprops={"color": "0.4"},
               whiskerprops={"color": "0.4"}, capprops={"color": "0.4"})
    rng = np.random.default_rng(0)  # fixed jitter: same picture for the same data
    for pos, r in enumerate(rounds):
        sub = data[data["round"] == r]
        x = pos + rng.uniform(-0.18, 0.18, size=len(sub))
        colors = np.where(sub["reward_mean"] > 0, POSITIVE, np.where(sub["reward_mean"] < 0, NEGATIVE, NEUTRAL))
        valid = sub["valid"].to_numpy()
        ax.scatter(x[valid], sub["reward_mean"].to_numpy()[valid], c=colors[valid], s=22, alpha=0.85,
                   zorder=3, label="valid" if pos == 0 else None)
        if (~valid).any():
            labelled = "invalid" in ax.get_legend_handles_labels()[1]
            ax.scatter(x[~valid], sub["reward_mean"].to_numpy()[~valid], facecolors="none",
                       edgecolors=colors[~valid], s=22, zorder=3, label=None if labelled else "invalid")
        ax.text(pos, 1.0, f"n={len(sub)}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=8, color="0.35")
    ax.axhline(0.0, color="0.6", linewidth=0.8, linestyle="--", zorder=1)
    ax.set_xticks(range(len(rounds)), [f"round {r}" for r in rounds])
    ax.set_ylabel("reward (adapted − base accuracy)")
    ax.set_title(title, pad=16)
    lo, hi = float(data["reward_mean"].min()), float(data["reward_mean"].max())
    if lo == hi:  # all equal (e.g. all zero): give the axis some height
        ax.set_ylim(lo - 0.1, hi + 0.1)
    if (~data["valid"]).any():
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def positive_fraction_table(rewards: pd.DataFrame) -> pd.DataFrame:
    """Per round: self-edits, valid ones, ones with reward > 0 and their fraction."""
    data = prepare_rewards(rewards)
    cols = ["round", "n", "n_valid", "n_positive", "fraction_positive"]
    if data.empty:
        return pd.DataFrame(columns=cols)
    grouped = data.groupby("round")
    out = pd.DataFrame({
        "n": grouped.size(),
        "n_valid": grouped["valid"].sum().astype(int),
        "n_positive": grouped["reward_mean"].apply(lambda s: int((s > 0).sum())),
    }).reset_index()
    out["fraction_positive"] = out["n_positive"] / out["n"].where(out["n"] > 0)
    return out[cols]


def positive_fraction(rewards: pd.DataFrame, title: str = "Self-edits with positive reward") -> Figure:
    """Bar per round: fraction of self-edits whose adapted model beat the un-adapted one."""
    table = positive_fraction_table(rewards)
    if table.empty:
        return message_figure(title, "no self-edits were scored")
    fig = Figure(figsize=(max(4.5, 1.2 * len(table) + 2.5), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(table))
    ax.bar(x, table["fraction_positive"].fillna(0.0), color=POSITIVE, width=0.6)
    for xi, row in zip(x, table.itertuples()):
        ax.text(xi, (row.fraction_positive or 0.0) + 0.02, f"{row.n_positive}/{row.n}\n({row.n_valid} valid)",
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"round {r}" for r in table["round"]])
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("fraction with reward > 0")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _method_labels(frame: pd.DataFrame, group_cols: Sequence[str]) -> list[str]:
    """``method``, plus `` (rN)`` where one method appears with several rounds in a group."""
    methods = frame["method"].astype(str)
    if "round" not in frame.columns:
        return methods.tolist()
    rounds = pd.to_numeric(frame["round"], errors="coerce")
    counts = frame.assign(_r=rounds).groupby(list(group_cols), dropna=False)["_r"].nunique()
    multi = {str(key[0] if isinstance(key, tuple) else key) for key, n in counts.items() if n > 1}
    return [f"{m} (r{int(r)})" if m in multi and pd.notna(r) else m for m, r in zip(methods, rounds)]


def _yerr(value: pd.Series, low: pd.Series | None, high: pd.Series | None) -> np.ndarray | None:
    if low is None or high is None:
        return None
    lo = (value - pd.to_numeric(low, errors="coerce")).clip(lower=0).fillna(0.0)
    hi = (pd.to_numeric(high, errors="coerce") - value).clip(lower=0).fillna(0.0)
    if not (lo.any() or hi.any()):
        return None
    return np.vstack([lo.to_numpy(), hi.to_numpy()])


def heldout_accuracy(summary: pd.DataFrame, title: str = "Held-out accuracy") -> Figure:
    """Grouped bars: accuracy per method (x) and setting (colour) with 95% intervals.

    The chart form of the paper's knowledge-incorporation table; methods keep the order of
    the summary file, settings are single, cpt, continual (others after them).
    """
    if summary.empty or "accuracy" not in summary.columns:
        return message_figure(title, "no held-out results")
    data = summary.copy()
    data["accuracy"] = pd.to_numeric(data["accuracy"], errors="coerce")
    if "setting" not in data.columns:
        data["setting"] = "all"
    data["setting"] = data["setting"].fillna("all").astype(str)
    data["label"] = _method_labels(data, ["method", "setting"])
    labels = list(dict.fromkeys(data["label"]))
    order = {"single": 0, "cpt": 1, "continual": 2}
    settings = sorted(dict.fromkeys(data["setting"]), key=lambda s: (order.get(s, 9), s))
    width = 0.8 / max(1, len(settings))
    fig = Figure(figsize=(max(6.0, 0.9 * len(labels) * max(1, len(settings)) ** 0.5 + 2.5), 4.2))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    bars: list[tuple[np.ndarray, np.ndarray]] = []
    for i, setting in enumerate(settings):
        sub = data[data["setting"] == setting].drop_duplicates("label", keep="last").set_index("label")
        sub = sub.reindex(labels)
        present = sub["accuracy"].notna().to_numpy()
        offsets = x + (i - (len(settings) - 1) / 2) * width
        yerr = _yerr(sub["accuracy"], sub.get("ci95_low"), sub.get("ci95_high"))
        color = PALETTE[i % len(PALETTE)]
        ax.bar(offsets[present], sub["accuracy"].to_numpy()[present], width=width * 0.95, color=color,
               edgecolor=color, linewidth=1.5, label=setting,  # the edge keeps a zero bar visible
               yerr=None if yerr is None else yerr[:, present], capsize=3, error_kw={"elinewidth": 1})
        bars.append((offsets[present], sub["accuracy"].to_numpy()[present]))
    ax.set_xticks(x, labels, rotation=20, ha="right")
    top = np.nanmax(pd.to_numeric(data.get("ci95_high", data["accuracy"]), errors="coerce").fillna(0).to_numpy())
    ymax = max(0.05, min(1.05, float(max(top, data["accuracy"].max())) * 1.15 + 0.02))
    ax.set_ylim(0, ymax)
    for offs, accs in bars:  # value inside a tall bar, above a short one
        for xo, acc in zip(offs, accs):
            inside = acc > 0.25 * ymax
            ax.text(xo, 0.01 * ymax if inside else acc + 0.01 * ymax, f"{acc:.2f}", ha="center", va="bottom",
                    fontsize=7, rotation=90, color="white" if inside else "0.2")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(title)
    ax.legend(title="setting", fontsize=8, title_fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def arc_success(summary: pd.DataFrame, title: str = "ARC success rate") -> Figure:
    """Bar per method: fraction of held-out tasks solved, 95% intervals, solved/tasks on top."""
    if summary.empty or "success_rate" not in summary.columns:
        return message_figure(title, "no ARC results")
    data = summary.copy()
    data["success_rate"] = pd.to_numeric(data["success_rate"], errors="coerce").fillna(0.0)
    data["label"] = _method_labels(data, ["method"])
    fig = Figure(figsize=(max(5.0, 0.9 * len(data) + 2.5), 4.0))
    ax = fig.add_subplot()
    x = np.arange(len(data))
    colors = [PALETTE[3] if m == "oracle" else PALETTE[0] if m == "icl" else PALETTE[1]
              for m in data["method"].astype(str)]
    ax.bar(x, data["success_rate"], color=colors, width=0.6,
           yerr=_yerr(data["success_rate"], data.get("ci95_low"), data.get("ci95_high")), capsize=3)
    for xi, row in zip(x, data.itertuples()):
        solved, tasks = getattr(row, "n_solved", None), getattr(row, "n_tasks", None)
        if solved is not None and tasks is not None and pd.notna(solved) and pd.notna(tasks):
            ax.text(xi, row.success_rate + 0.02, f"{int(solved)}/{int(tasks)}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, data["label"], rotation=20, ha="right")
    top = pd.to_numeric(data.get("ci95_high", data["success_rate"]), errors="coerce").fillna(0).max()
    ax.set_ylim(0, max(0.1, min(1.1, float(max(top, data["success_rate"].max())) * 1.15 + 0.05)))
    ax.set_ylabel("success rate (95% CI)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


INDEX_NAMES = ("after", "after_update", "update", "step", "i", "row", "")


def read_matrix(path: str | os.PathLike) -> pd.DataFrame:
    """A continual-learning matrix CSV: rows = after update i, columns = passage j.

    The held-out evaluation writes ``after_update, learnt, <passage ids...>`` with row 0 the
    model before any update and blanks for passages not learnt yet. An index-like first
    column becomes the row index; text columns (``learnt``) are dropped; cells are numbers.
    """
    frame = pd.read_csv(path)
    if frame.shape[1] > 1:
        first = str(frame.columns[0])
        if (first.startswith("Unnamed") or first.lower() in INDEX_NAMES
                or not pd.api.types.is_numeric_dtype(frame.iloc[:, 0])):
            frame = frame.set_index(frame.columns[0])
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    keep = [c for c in numeric.columns if numeric[c].notna().any() or frame[c].isna().all()]
    return numeric[keep]


def _updates(matrix: pd.DataFrame) -> np.ndarray:
    """Number of sequential updates behind each row (the index if numeric, else 1..n)."""
    index = pd.to_numeric(pd.Series(matrix.index), errors="coerce")
    if index.notna().all():
        return index.to_numpy(dtype=float)
    return np.arange(1, len(matrix) + 1, dtype=float)


def forgetting_summary(matrix: pd.DataFrame) -> pd.DataFrame:
    """Per row: updates so far, mean accuracy on the passages learnt so far, on the newest one,
    and on the first one. Passage j (0-based column) is learnt by update j + 1."""
    values = matrix.to_numpy(dtype=float)
    rows = []
    for i, u in enumerate(_updates(matrix)):
        n_seen = int(min(max(u, 0), values.shape[1]))
        seen = values[i, :n_seen]
        rows.append({
            "update": int(u),
            "mean_seen": float(np.nanmean(seen)) if np.isfinite(seen).any() else np.nan,
            "newest": float(values[i, n_seen - 1]) if n_seen else np.nan,
            "first": float(values[i, 0]) if n_seen else np.nan,
        })
    return pd.DataFrame(rows, columns=["update", "mean_seen", "newest", "first"])


def forgetting_curve(matrix: pd.DataFrame, method: str = "") -> Figure:
    """Continual setting: the accuracy matrix as a heatmap and each passage's accuracy over updates.

    Rows are "after update i" (0 = before any update, where present), columns "passage j",
    learnt in column order. The right panel follows every passage from the update that
    taught it onwards, with the mean over the passages learnt so far in bold.
    """
    title = f"Forgetting in the continual setting{f' ({method})' if method else ''}"
    if matrix.empty or matrix.shape[1] == 0 or not np.isfinite(matrix.to_numpy(dtype=float)).any():
        return message_figure(title, "no continual-learning results")
    values = matrix.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    updates = _updates(matrix)
    fig = Figure(figsize=(10.5, 4.0))
    ax_heat, ax_curve = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    image = ax_heat.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    if max(n_rows, n_cols) <= 12:
        for i in range(n_rows):
            for j in range(n_cols):
                if np.isfinite(values[i, j]):
                    ax_heat.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                                 color="white" if values[i, j] < 0.6 else "black")
    short = [str(c) if len(str(c)) <= 12 else f"{str(c)[:5]}…{str(c)[-5:]}" for c in matrix.columns]
    ax_heat.set_xticks(range(n_cols), short, rotation=45, ha="right", fontsize=7)
    ax_heat.set_yticks(range(n_rows), [str(int(u)) for u in updates], fontsize=7)
    ax_heat.set_xlabel("passage j (in learning order)")
    ax_heat.set_ylabel("after update i")
    fig.colorbar(image, ax=ax_heat, fraction=0.046, pad=0.04, label="accuracy")
    for j in range(n_cols):
        mask = (updates >= j + 1) & np.isfinite(values[:, j])
        if mask.any():
            ax_curve.plot(updates[mask], values[mask, j], color=PALETTE[j % len(PALETTE)], alpha=0.5,
                          linewidth=1, marker="o", markersize=3)
    summary = forgetting_summary(matrix)
    learnt = summary[summary["update"] >= 1]
    ax_curve.plot(learnt["update"], learnt["mean_seen"], color="black", linewidth=2.2, marker="o",
                  label="mean over passages learnt so far")
    if (updates == 0).any():
        base = float(np.nanmean(values[updates == 0])) if np.isfinite(values[updates == 0]).any() else np.nan
        if np.isfinite(base):
            ax_curve.axhline(base, color="0.5", linestyle=":", linewidth=1.2, label="before any update (mean)")
    ax_curve.set_xlabel("number of sequential updates")
    ax_curve.set_ylabel("accuracy")
    ax_curve.set_ylim(-0.02, 1.02)
    ticks = updates[updates >= 1]
    if len(ticks):
        ax_curve.set_xticks(ticks)
    ax_curve.legend(fontsize=8, frameon=False, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def cost_overview(summary: pd.DataFrame, title: str = "Cost per rule") -> Figure:
    """Two panels per rule (and domain): total wall time and peak resident memory."""
    if summary.empty:
        return message_figure(title, "no benchmark files were found")
    data = summary.copy()
    data["label"] = [f"{r} [{d}]" if d else str(r) for r, d in zip(data["rule"], data["domain"].fillna(""))]
    data = data.sort_values("wall_s_total", ascending=True)
    height = max(2.8, 0.38 * len(data) + 1.4)
    fig = Figure(figsize=(10.0, height))
    ax_time, ax_mem = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(data))
    domains = list(dict.fromkeys(data["domain"].fillna("")))
    colors = [PALETTE[domains.index(d) % len(PALETTE)] for d in data["domain"].fillna("")]
    ax_time.barh(y, data["wall_s_total"].fillna(0), color=colors)
    for yi, row in zip(y, data.itertuples()):
        ax_time.text(row.wall_s_total if pd.notna(row.wall_s_total) else 0, yi,
                     f" {row.wall_s_total:.1f}s / {row.jobs} job{'s' if row.jobs != 1 else ''}",
                     va="center", fontsize=7)
    ax_time.set_yticks(y, data["label"], fontsize=8)
    ax_time.set_xlabel("wall time, all jobs (s)")
    ax_time.margins(x=0.35)
    ax_mem.barh(y, data["max_rss_mb"].fillna(0), color=colors)
    for yi, value in zip(y, data["max_rss_mb"]):
        if pd.notna(value):
            ax_mem.text(value, yi, f" {value:.0f} MB", va="center", fontsize=7)
    ax_mem.set_xlabel("peak resident memory, max over jobs (MB)")
    ax_mem.margins(x=0.25)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def paired_effects(effects: pd.DataFrame, title: str = "Paired differences") -> Figure:
    """Each (method - baseline) difference per setting with its 95% interval; a line at 0.

    An interval that does not cross the line is an effect on these questions, not noise.
    """
    if effects.empty or "difference" not in effects.columns:
        return message_figure(title, "no paired differences")
    data = effects.copy()
    for col in ("difference", "ci95_low", "ci95_high"):
        data[col] = pd.to_numeric(data[col], errors="coerce")
    data["label"] = data["pair"].astype(str) + " (" + data["setting"].astype(str) + ")"
    fig = Figure(figsize=(7.5, 0.45 * len(data) + 1.6))
    ax = fig.add_subplot()
    y = np.arange(len(data))[::-1]
    low = (data["difference"] - data["ci95_low"]).clip(lower=0).to_numpy()
    high = (data["ci95_high"] - data["difference"]).clip(lower=0).to_numpy()
    excludes_zero = ((data["ci95_low"] > 0) | (data["ci95_high"] < 0)).to_numpy()
    colors = [PALETTE[0] if e else "0.55" for e in excludes_zero]
    for yi, d, lo, hi, c in zip(y, data["difference"], low, high, colors):
        ax.errorbar(d, yi, xerr=[[lo], [hi]], fmt="o", color=c, capsize=3)
    ax.axvline(0, color="0.3", linewidth=1)
    ax.set_yticks(y, data["label"])
    ax.set_xlabel("difference in accuracy, 95% interval (dark: excludes 0, grey: does not)")
    return _titled(fig, ax, title)


def training_rounds(rounds: pd.DataFrame, title: str = "Training rounds") -> Figure:
    """Mean reward, share of positive rewards and mean faithfulness, per ReST-EM round."""
    if rounds.empty:
        return message_figure(title, "no rounds")
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.add_subplot()
    x = pd.to_numeric(rounds["round"], errors="coerce").to_numpy()
    for i, (col, label) in enumerate((("reward_mean", "mean reward"), ("positive_share", "share positive"),
                                      ("faithfulness_mean", "faithfulness"))):
        ax.plot(x, pd.to_numeric(rounds[col], errors="coerce").to_numpy(), marker="o", color=PALETTE[i], label=label)
    ax.set_xticks(x)
    ax.set_xlabel("round")
    ax.axhline(0, color="0.7", linewidth=0.8)
    ax.legend(frameon=False)
    return _titled(fig, ax, title)


def _titled(fig: Figure, ax, title: str) -> Figure:
    ax.set_title(title)
    fig.tight_layout()
    return fig
