"""Shared by the organism benchmarks: one whole workflow run per seed, and CSV helpers.

A seed's run is named ``<run>-seed<s>`` and made from ``config_for(base, seed, run)``, written
to ``results/<run>-seeds/config-seed<s>.yaml``; Snakemake resumes whatever is finished.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

REPO = Path(__file__).resolve().parents[1]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["pair"])
        writer.writeheader()
        writer.writerows(rows)


def seed_arguments(description: str, config: str, run: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=config)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--run", default=run)
    parser.add_argument("--no-run", action="store_true", help="only summarise finished runs")
    return parser.parse_args()


def run_seeds(args: argparse.Namespace, config_for: Callable[[dict, int, str], dict]) -> tuple[Path, list[tuple[int, str]]]:
    """Run (or, with ``--no-run``, only name) each seed's workflow; returns the folder and (seed, run) pairs."""
    base = yaml.safe_load(open(REPO / args.config))
    folder = REPO / "results" / f"{args.run}-seeds"
    folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        run = f"{args.run}-seed{seed}"
        runs.append((seed, run))
        if args.no_run:  # summarise only: the config files stay those the runs were made with
            continue
        path = folder / f"config-seed{seed}.yaml"
        path.write_text(yaml.safe_dump(config_for(base, seed, run), sort_keys=False))
        started = time.time()
        cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--cores", str(args.cores),
               "--configfile", str(path), "--rerun-triggers", "mtime"]
        subprocess.run(cmd, cwd=REPO, check=True)
        print(f"seed {seed}: workflow finished in {time.time() - started:.0f} s", flush=True)
    return folder, runs
