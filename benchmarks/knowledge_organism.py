"""The knowledge organism over several seeds of the whole run: is SEAL's ordering more than luck?

Each seed is a complete, independent run of the embedded default (its own base model,
data, sampling and LoRA seeds): ``seed`` and ``knowledge.data.seed`` are both set to it.
The script runs the workflow per seed (resuming what is finished), then prints the
held-out single-passage table and the paired effects per seed, and how many seeds show
each effect with an interval above 0.

    python benchmarks/knowledge_organism.py --seeds 0 1 2 [--config config/config.yaml] [--cores 2]

Runs are named ``<run>-seed<s>`` (seed 0 with the default config is not ``demo``: a
separate run, so it never overwrites the demo's results).
"""

from __future__ import annotations

import argparse
import copy
import csv
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def seed_config(base: dict, seed: int, run: str) -> dict:
    cfg = copy.deepcopy(base)
    cfg["run"], cfg["seed"] = run, seed
    cfg["knowledge"]["data"]["seed"] = seed
    return cfg


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--run", default="organism")
    parser.add_argument("--no-run", action="store_true", help="only summarise finished runs")
    args = parser.parse_args()

    base = yaml.safe_load(open(REPO / args.config))
    folder = REPO / "results" / f"{args.run}-seeds"
    folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        run = f"{args.run}-seed{seed}"
        path = folder / f"config-seed{seed}.yaml"
        path.write_text(yaml.safe_dump(seed_config(base, seed, run), sort_keys=False))
        runs.append((seed, run))
        if args.no_run:
            continue
        started = time.time()
        cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--cores", str(args.cores),
               "--configfile", str(path), "--rerun-triggers", "mtime"]
        subprocess.run(cmd, cwd=REPO, check=True)
        print(f"seed {seed}: workflow finished in {time.time() - started:.0f} s", flush=True)

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


if __name__ == "__main__":
    main()
