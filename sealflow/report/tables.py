"""Report tables: pure functions from DataFrames/records to frames and self-contained HTML."""

from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from sealflow.records import parse_bool

EXAMPLE_COLUMNS = ["pick", "round", "edit_id", "input_id", "reward_mean", "score_base", "score_adapted",
                   "valid", "reason", "kept", "prompt", "completion"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1rem;color:#1d2433;font-size:14px}
h1{font-size:1.2rem;margin:0 0 .4rem}
p.note{color:#555;margin:.2rem 0 .8rem}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #d9dde3;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f5;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12.5px;background:#f7f8fa;padding:.4rem;
    border-radius:4px;max-width:60rem}
details summary{cursor:pointer;color:#3b5b7a}
.best{color:#1f7a6f;font-weight:600}.worst{color:#b5482b;font-weight:600}
.kept{background:#e5f4f1;border-radius:3px;padding:0 .3rem}
""".strip()


def _page(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{note_html}{body}</body></html>\n")


def _cell(value: Any, float_digits: int = 3) -> str:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return '<td class="num">–</td>'
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, np.integer)):
        return f'<td class="num">{int(value)}</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td class="num">{float(value):.{float_digits}f}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def frame_html(frame: pd.DataFrame, title: str, note: str = "", float_digits: int = 3) -> str:
    """A DataFrame as a small standalone HTML page (numbers right-aligned, NaN as a dash)."""
    if frame.empty:
        return _page(title, "<p>No rows.</p>", note)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.astype(object).itertuples(index=False):
        rows.append("<tr>" + "".join(_cell(v, float_digits) for v in record) + "</tr>")
    body = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return _page(title, body, note)


def select_examples(rewards: pd.DataFrame, edits: Iterable[Mapping[str, Any]],
                    kept_ids: Iterable[str] = (), n: int = 3) -> pd.DataFrame:
    """The ``n`` best and ``n`` worst self-edits of each round, with their text.

    Ties are broken by edit id so the choice is reproducible; a self-edit is never both
    best and worst (with fewer than 2n edits the worst list is shorter).
    """
    by_id = {str(e["id"]): e for e in edits}
    kept = {str(k) for k in kept_ids}
    if rewards.empty:
        return pd.DataFrame(columns=EXAMPLE_COLUMNS)
    data = rewards.copy()
    data["reward_mean"] = pd.to_numeric(data["reward_mean"], errors="coerce").fillna(0.0)
    data["edit_id"] = data["edit_id"].astype(str)
    rows = []
    for rnd, group in data.groupby("round", sort=True):
        ranked = group.sort_values(["reward_mean", "edit_id"], ascending=[False, True])
        best = ranked.head(n)
        rest = ranked.iloc[len(best):]
        worst = rest.sort_values(["reward_mean", "edit_id"], ascending=[True, True]).head(n)
        for pick, chosen in (("best", best), ("worst", worst)):
            for rank, row in enumerate(chosen.itertuples(index=False), 1):
                edit = by_id.get(row.edit_id, {})
                rows.append({
                    "pick": f"{pick} {rank}", "round": rnd, "edit_id": row.edit_id, "input_id": row.input_id,
                    "reward_mean": row.reward_mean, "score_base": getattr(row, "score_base", None),
                    "score_adapted": getattr(row, "score_adapted", None),
                    "valid": parse_bool(getattr(row, "valid", True)),
                    "reason": "" if pd.isna(getattr(row, "reason", "")) else str(getattr(row, "reason", "")),
                    "kept": row.edit_id in kept, "prompt": str(edit.get("prompt", "")),
                    "completion": str(edit.get("completion", "")),
                })
    return pd.DataFrame(rows, columns=EXAMPLE_COLUMNS)


def _num(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if pd.isna(value) else f"{value:.3f}"


def examples_html(examples: pd.DataFrame, title: str, note: str = "") -> str:
    """Best/worst self-edits as HTML: reward, scores, kept flag, the prompt folded, the completion in full."""
    if examples.empty:
        return _page(title, "<p>No self-edits were scored in this round.</p>", note)
    head = ("<tr><th>pick</th><th>self-edit</th><th>reward</th><th>base → adapted</th>"
            "<th>self-edit text (completion)</th></tr>")
    rows = []
    for row in examples.itertuples(index=False):
        css = "best" if row.pick.startswith("best") else "worst"
        flags = []
        if row.kept:
            flags.append('<span class="kept">kept for SFT</span>')
        if not row.valid:
            flags.append(f"invalid{': ' + html.escape(row.reason) if row.reason else ''}")
        prompt = (f"<details><summary>prompt</summary><pre>{html.escape(row.prompt)}</pre></details>"
                  if row.prompt else "")
        rows.append(
            f'<tr><td class="{css}">{html.escape(row.pick)}</td>'
            f"<td><code>{html.escape(row.edit_id)}</code><br>input <code>{html.escape(str(row.input_id))}</code>"
            f"<br>{' '.join(flags)}</td>"
            f'<td class="num">{_num(row.reward_mean)}</td>'
            f'<td class="num">{_num(row.score_base)} → {_num(row.score_adapted)}</td>'
            f"<td><pre>{html.escape(row.completion) or '(empty)'}</pre>{prompt}</td></tr>")
    body = f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    return _page(title, body, note)


def examples_note(rewards: pd.DataFrame) -> str:
    """A one-line note for the examples page, flagging rounds where every reward is equal."""
    if rewards.empty:
        return ""
    values = pd.to_numeric(rewards["reward_mean"], errors="coerce").fillna(0.0)
    note = f"{len(rewards)} self-edits; reward from {values.min():.3f} to {values.max():.3f}."
    if values.nunique() <= 1:
        note += " All rewards are equal, so best and worst are picked by id only."
    return note


def format_summary(summary: pd.DataFrame, sort_cols: Sequence[str] = ()) -> pd.DataFrame:
    """A summary file ready to show: rounds as integers where present, optional stable sort."""
    out = summary.copy()
    if "round" in out.columns:
        out["round"] = pd.to_numeric(out["round"], errors="coerce").astype("Int64")
    cols = [c for c in sort_cols if c in out.columns]
    return out.sort_values(cols, kind="stable", ignore_index=True) if cols else out.reset_index(drop=True)


def side_by_side_html(first: Sequence[Mapping[str, Any]], last: Sequence[Mapping[str, Any]], stats: pd.DataFrame,
                      n: int = 3) -> str:
    """For the first ``n`` passages: the first sample of the first round beside that of the last round."""
    info = {str(r.edit_id): r for r in stats.itertuples(index=False)} if not stats.empty else {}

    def cell(edit: Mapping[str, Any] | None) -> str:
        if edit is None:
            return "<td>(none)</td>"
        row = info.get(str(edit["id"]))
        scores = (f"reward {_num(row.reward_mean)}, faithfulness {_num(row.faithfulness)}" if row is not None else "")
        return (f"<td><code>{html.escape(str(edit['id']))}</code> {scores}"
                f"<pre>{html.escape(str(edit.get('completion', ''))) or '(empty)'}</pre></td>")

    def first_sample(edits: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        out: dict[str, Mapping[str, Any]] = {}
        for edit in sorted(edits, key=lambda e: (int(e.get("sample", 0)), str(e["id"]))):
            out.setdefault(str(edit["input_id"]), edit)
        return out

    early, late = first_sample(first), first_sample(last)
    inputs = list(dict.fromkeys(str(e["input_id"]) for e in first))[:n]
    rounds = (first[0].get("round", "first") if first else "first", last[0].get("round", "last") if last else "last")
    head = f"<tr><th>passage</th><th>round {rounds[0]}</th><th>round {rounds[1]}</th></tr>"
    rows = [f"<tr><td><code>{html.escape(pid)}</code></td>{cell(early.get(pid))}{cell(late.get(pid))}</tr>"
            for pid in inputs]
    body = f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    return _page("Self-edits of the first and the last round, same passages", body,
                 "sample 0 of each passage; faithfulness = share of content words found in the passage")
