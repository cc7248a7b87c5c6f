"""The ARC organism over several seeds of the whole run: ICL < TTT (base self-edits) < SEAL <= oracle?

Each seed is a complete, independent run of ``config/fewshot-organism.yaml`` (its own base
model, tasks, sampling and LoRA seeds): ``seed`` and ``fewshot.data.seed`` are both set to it.
The script runs the workflow per seed (resuming what is finished), then prints per seed the
evaluation table, the paired effects, what each oracle configuration solves alone, the training
rewards per round and which configuration choices the policy sampled and which paid off; then the
effects pooled over the seeds (a bootstrap that resamples each seed's tasks within that seed),
written to ``results/<run>-seeds/pooled_effects.csv``.

    python benchmarks/arc_organism_seeds.py --seeds 0 1 2 [--config config/fewshot-organism.yaml] [--cores 2]
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from seed_runs import REPO, read_csv, run_seeds, seed_arguments, write_csv

sys.path.insert(0, str(REPO))


def seed_config(base: dict, seed: int, run: str) -> dict:
    cfg = copy.deepcopy(base)
    cfg["run"], cfg["seed"] = run, seed
    cfg["fewshot"]["data"]["seed"] = seed
    return cfg


def choices_per_round(fewshot: Path) -> list[dict]:
    """Per round: the share of self-edits choosing each configuration value, and their mean reward."""
    from sealflow.fewshot.choices import choice_rows

    out = []
    for rewards_path in sorted(fewshot.glob("round*/rewards.csv"), key=lambda p: int(p.parent.name[5:])):
        edits = [json.loads(line) for path in sorted(rewards_path.parent.glob("self_edits/shard*.jsonl"))
                 for line in path.read_text().splitlines() if line.strip()]
        out += choice_rows(int(rewards_path.parent.name[5:]), read_csv(rewards_path), edits)
    return out


def fixed_configurations(eval_dir: Path) -> list[tuple[int, int, str]]:
    """Per oracle configuration: (tasks it solves alone, tasks, its JSON); the oracle takes the best per task."""
    solved: dict[str, set] = {}
    tasks = set()
    for row in read_csv(eval_dir / "oracle.csv"):
        tasks.add(row["input_id"])
        solved.setdefault(row["config"], set())
        if row["correct"] == "True":
            solved[row["config"]].add(row["input_id"])
    return [(len(ids), len(tasks), config) for config, ids in solved.items()]


def pooled_effects(eval_dirs: list[Path]) -> list[dict]:
    """Each pair of the seeds' effects.csv, pooled over the seeds' tasks."""
    from sealflow.fewshot.evaluation import success_by_task
    from sealflow.stats import pooled_paired_bootstrap_interval

    pairs = [(r["method"], r["baseline"]) for r in read_csv(eval_dirs[0] / "effects.csv")]
    out = []
    for method, baseline in pairs:
        groups = []
        for folder in eval_dirs:
            by_method = {}
            for path in folder.glob("*.csv"):
                rows = read_csv(path)
                if rows and "method" in rows[0] and "correct" in rows[0]:
                    by_method[rows[0]["method"]] = success_by_task(rows, rows[0]["method"])
            a, b = by_method[method], by_method[baseline]
            groups.append([a[t] - b[t] for t in a if t in b])
        diff, low, high = pooled_paired_bootstrap_interval(groups)
        out.append({"pair": f"{method} - {baseline}", "difference": diff, "ci95_low": low, "ci95_high": high,
                    "n_tasks": sum(map(len, groups)), "n_seeds": len(groups),
                    "ci_method": "paired bootstrap over tasks, stratified by seed"})
    return out


def main() -> None:
    args = seed_arguments(__doc__.splitlines()[0], "config/fewshot-organism.yaml", "arc-organism")
    folder, runs = run_seeds(args, seed_config)

    for seed, run in runs:
        fewshot = REPO / "results" / run / "fewshot"
        print(f"\n== seed {seed} ({run})")
        for row in read_csv(fewshot / "eval" / "summary.csv"):
            print(f"  {row['method']:22s} {int(row['n_solved']):4d}/{int(row['n_attempts']):<4d} "
                  f"{float(row['success_rate']):.3f} [{float(row['ci95_low']):.3f}, {float(row['ci95_high']):.3f}]")
        for row in read_csv(fewshot / "eval" / "effects.csv"):
            print(f"  {row['pair']:40s} {float(row['difference']):+.3f} "
                  f"[{float(row['ci95_low']):+.3f}, {float(row['ci95_high']):+.3f}] n={row['n_tasks']}")
        for n_solved, n_tasks, config in fixed_configurations(fewshot / "eval"):
            print(f"  fixed configuration alone {n_solved:3d}/{n_tasks} {config}")
        for rewards in sorted(fewshot.glob("round*/rewards.csv")):
            values = [float(r["reward_mean"]) for r in read_csv(rewards)]
            print(f"  training {rewards.parent.name}: {sum(values):.0f}/{len(values)} self-edits solved their task")
        for row in choices_per_round(fewshot):
            print(f"    round {row['round']} {row['slot']:24s} {row['value']:22s} share {row['share']:.2f} "
                  f"(n={row['n']:3d}) mean reward {row['mean_reward']:.2f}")
    pooled = pooled_effects([REPO / "results" / run / "fewshot" / "eval" for _, run in runs])
    print(f"\npooled over the {len(runs)} seeds (tasks resampled within each seed):")
    for row in pooled:
        print(f"  {row['pair']:40s} {row['difference']:+.3f} [{row['ci95_low']:+.3f}, {row['ci95_high']:+.3f}] "
              f"n={row['n_tasks']}")
    write_csv(folder / "pooled_effects.csv", pooled)


if __name__ == "__main__":
    main()
