"""The knowledge organism over several seeds of the whole run: is SEAL's ordering more than luck?

Each seed is a complete, independent run of the embedded default (its own base model,
data, sampling and LoRA seeds): ``seed`` and ``knowledge.data.seed`` are both set to it.
The script runs the workflow per seed (resuming what is finished), then prints the
held-out single-passage table and the paired effects per seed, and how many seeds show
each effect with an interval above 0, and the effects pooled over the seeds: the paired
difference over all their questions, with a bootstrap that resamples each seed's questions
within that seed (written to ``results/<run>-seeds/pooled_effects.csv``).

    python benchmarks/knowledge_organism.py --seeds 0 1 2 [--config config/config.yaml] [--cores 2]

Runs are named ``<run>-seed<s>`` (seed 0 with the default config is not ``demo``: a
separate run, so it never overwrites the demo's results).
"""

from __future__ import annotations

import copy
from pathlib import Path

from seed_runs import REPO, read_csv, run_seeds, seed_arguments, write_csv


def seed_config(base: dict, seed: int, run: str) -> dict:
    cfg = copy.deepcopy(base)
    cfg["run"], cfg["seed"] = run, seed
    cfg["knowledge"]["data"]["seed"] = seed
    return cfg


def main() -> None:
    args = seed_arguments(__doc__.splitlines()[0], "config/config.yaml", "organism")
    folder, runs = run_seeds(args, seed_config)

    effects_seen: dict[str, list[bool]] = {}
    for seed, run in runs:
        heldout = REPO / "results" / run / "knowledge" / "heldout"
        print(f"\n== seed {seed} ({run})")
        for row in read_csv(heldout / "summary.csv"):
            if row["setting"] == "single":
                print(f"  {row['method']:16s} {float(row['accuracy']):.3f} "
                      f"[{float(row['ci95_low']):.3f}, {float(row['ci95_high']):.3f}] n={row['n_questions']}")
        for row in read_csv(heldout / "effects.csv"):
            if row["setting"] != "single":
                continue
            low, high = float(row["ci95_low"]), float(row["ci95_high"])
            print(f"  {row['pair']:36s} {float(row['difference']):+.3f} [{low:+.3f}, {high:+.3f}]")
            effects_seen.setdefault(row["pair"], []).append(low > 0)
        rounds = REPO / "results" / run / "knowledge" / "training" / "rounds.csv"
        if rounds.exists():
            for row in read_csv(rounds):
                print("  training " + ", ".join(f"{k}={v}" for k, v in row.items()))
    print(f"\nseeds whose 95% interval lies above 0 (single setting), of {len(runs)}:")
    for pair, seen in effects_seen.items():
        print(f"  {pair:36s} {sum(seen)}/{len(seen)}")
    pooled = pooled_effects([REPO / "results" / run / "knowledge" / "heldout" for _, run in runs])
    print(f"\npooled over the {len(runs)} seeds (single setting; questions resampled within each seed):")
    for row in pooled:
        print(f"  {row['pair']:36s} {row['difference']:+.3f} [{row['ci95_low']:+.3f}, {row['ci95_high']:+.3f}] "
              f"n={row['n_questions']}")
    write_csv(folder / "pooled_effects.csv", pooled)


def pooled_effects(heldout_dirs: list[Path]) -> list[dict]:
    """Each single-setting pair of every seed's effects.csv, pooled over the seeds' questions."""
    from sealflow.knowledge.heldout.summary import per_question_map
    from sealflow.stats import pooled_paired_bootstrap_interval

    pairs = [(r["method"], r["baseline"]) for r in read_csv(heldout_dirs[0] / "effects.csv") if r["setting"] == "single"]
    methods = {m for pair in pairs for m in pair}
    scores = {(h, m): per_question_map(read_csv(h / "single" / f"{m}.csv")) for h in heldout_dirs for m in methods}
    out = []
    for method, baseline in pairs:
        groups = []
        for heldout in heldout_dirs:
            a, b = scores[heldout, method], scores[heldout, baseline]
            groups.append([a[q] - b[q] for q in a if q in b])
        diff, low, high = pooled_paired_bootstrap_interval(groups)
        out.append({"pair": f"{method} - {baseline}", "setting": "single", "difference": diff, "ci95_low": low,
                    "ci95_high": high, "n_questions": sum(map(len, groups)), "n_seeds": len(groups),
                    "ci_method": "paired bootstrap over questions, stratified by seed"})
    return out


if __name__ == "__main__":
    main()
