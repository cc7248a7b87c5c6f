"""Snakemake ``benchmark:`` files: one TSV row per job, the rule and wildcards in the path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

DOMAINS = ("knowledge", "fewshot")
BENCHMARK_COLUMNS = ("s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out",
                     "mean_load", "cpu_time")
_ROUND = re.compile(r"^round(\d+)$")
_SHARD = re.compile(r"^shard(\d+)$")


_WILDCARD = re.compile(r"\{\s*([A-Za-z_]\w*)\s*(?:,((?:[^{}]|\{[^{}]*\})*))?\}")


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A Snakemake file pattern (``a/round{r}/x/shard{s}.tsv``) as a regex; a wildcard is one path part
    unless the pattern gives its own constraint (``{s,\\d+}``)."""
    parts, pos = [], 0
    for match in _WILDCARD.finditer(pattern):
        parts.append(re.escape(pattern[pos : match.start()]))
        parts.append(f"(?:{match.group(2) or '[^/]+'})")
        pos = match.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile("".join(parts) + r"\Z")


def rule_of_path(rel: str | Path, patterns: Mapping[str, str]) -> str | None:
    """The rule whose benchmark pattern matches ``rel``; the most specific (most literal text) wins."""
    text = Path(rel).as_posix()
    hits = [(len(_WILDCARD.sub("", pat)), rule) for rule, pat in patterns.items() if pattern_regex(pat).match(text)]
    return max(hits)[1] if hits else None


def parse_benchmark_path(rel: str | Path, rule_names: Iterable[str] = (),
                         patterns: Mapping[str, str] | None = None) -> dict[str, object]:
    """Rule, domain, round and shard from a path relative to the benchmarks folder.

    ``patterns`` maps rule names to their ``benchmark:`` patterns (relative to the same
    folder) and decides the rule exactly. Without a match, a path component equal to a
    known rule name wins, else the first component that is not a domain, round or shard
    (``base_model/knowledge.tsv``, ``knowledge/round1/inner_loop/shard0.tsv``).
    """
    parts = list(Path(rel).with_suffix("").parts)
    known = set(rule_names) | set(patterns or {})
    domain = next((p for p in parts if p in DOMAINS), None)
    rnd = next((int(m.group(1)) for p in parts if (m := _ROUND.match(p))), None)
    shard = next((int(m.group(1)) for p in parts if (m := _SHARD.match(p))), None)
    rule = rule_of_path(rel, patterns) if patterns else None
    if rule is None:
        rule = next((p for p in parts if p in known), None)
    if rule is None:
        rest = [p for p in parts if p not in DOMAINS and not _ROUND.match(p) and not _SHARD.match(p)]
        rule = rest[0] if rest else parts[0]
    return {"rule": rule, "domain": domain or "", "round": rnd, "shard": shard, "path": Path(rel).as_posix()}


def load_benchmarks(root: str | Path, patterns: Mapping[str, str] | Sequence[str] = ()) -> pd.DataFrame:
    """Every ``*.tsv`` under ``root`` as one frame: benchmark columns plus rule/domain/round/shard.

    ``patterns``: rule name -> benchmark pattern relative to ``root`` (or just rule names).
    """
    names = list(patterns)
    mapping = dict(patterns) if isinstance(patterns, Mapping) else None
    root = Path(root)
    frames = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        try:
            table = pd.read_csv(path, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if table.empty or "s" not in table.columns:
            continue
        meta = parse_benchmark_path(path.relative_to(root), names, mapping)
        for key, value in meta.items():
            table[key] = value
        table["repeat"] = range(len(table))
        frames.append(table)
    columns = ["rule", "domain", "round", "shard", "path", "repeat", *BENCHMARK_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    for col in ("s", "max_rss", "cpu_time", "mean_load", "io_in", "io_out"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce")  # "-" where not measured
    return out[[c for c in columns if c in out.columns] + [c for c in out.columns if c not in columns]]


def summarize_benchmarks(bench: pd.DataFrame) -> pd.DataFrame:
    """Per rule and domain: jobs, total / mean / max wall seconds, peak RSS (MB), CPU seconds."""
    cols = ["rule", "domain", "jobs", "wall_s_total", "wall_s_mean", "wall_s_max", "max_rss_mb", "cpu_s_total"]
    if bench.empty:
        return pd.DataFrame(columns=cols)
    grouped = bench.groupby(["rule", "domain"], sort=False, dropna=False)
    out = grouped.agg(jobs=("s", "size"), wall_s_total=("s", "sum"), wall_s_mean=("s", "mean"),
                      wall_s_max=("s", "max"), max_rss_mb=("max_rss", "max"),
                      cpu_s_total=("cpu_time", "sum")).reset_index()
    return out.sort_values(["wall_s_total", "rule"], ascending=[False, True], ignore_index=True)[cols]


# The three stages a round runs once per self-edit, by the rule names' ending (knowledge_…, fewshot_…).
LOOP_STAGES = {"generate_self_edits": "generation", "inner_loop": "inner loop", "score_adapters": "scoring"}


def seconds_per_self_edit(bench: pd.DataFrame, self_edits: Mapping[tuple[str, int], int]) -> pd.DataFrame:
    """Per domain, round and loop stage: jobs, self-edits, wall seconds and seconds per self-edit.

    ``self_edits`` maps (domain, round) to the round's number of self-edits (rows of its
    rewards.csv, invalid ones included: each was generated, and trained on or refused).
    Wall time includes each job's model loading, which a researcher pays too.
    """
    cols = ["domain", "round", "stage", "jobs", "self_edits", "wall_s", "s_per_self_edit"]
    rows = []
    for (domain, rnd, rule), group in bench.groupby(["domain", "round", "rule"], sort=True, dropna=True):
        stage = next((name for suffix, name in LOOP_STAGES.items() if str(rule).endswith(suffix)), None)
        n = self_edits.get((str(domain), int(rnd)), 0)
        if stage is None or n <= 0:
            continue
        wall = float(group["s"].sum())
        rows.append({"domain": domain, "round": int(rnd), "stage": stage, "jobs": len(group), "self_edits": n,
                     "wall_s": wall, "s_per_self_edit": wall / n})
    order = {name: i for i, name in enumerate(LOOP_STAGES.values())}
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["domain", "round", "stage"], key=lambda c: c.map(order) if c.name == "stage" else c,
                           ignore_index=True)
