"""Does the ARC organism give SEAL a signal? ICL, TTT per fixed configuration, and their oracle.

Builds (or loads) the organism's tiny base model, takes held-out evaluation tasks of
``config/fewshot-organism.yaml`` (compositions never pretrained on) and reports exact
match of

* in-context answering (the base model, demonstrations in the prompt);
* test-time training with each configuration of ``fewshot.evaluation.oracle``
  (learning rate x epochs x augmentation), the same code path as the workflow's oracle;
* the oracle over those configurations (a task counts when any configuration solves it).

    python benchmarks/arc_organism_probe.py --n-tasks 8 [--pretrain-steps 300] [--corpus 1500] [--model DIR]

The base model is cached under ``results/<run>-probe/model-<steps>-<corpus>`` and reused;
the table and per-task answers go to ``results/<run>-probe/probe.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_config(path: str, overrides: dict) -> dict:
    from snakemake.utils import update_config

    from sealflow.config import check_config, validate_config

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / path).read_text()))
    update_config(config, overrides)
    validate_config(config, str(REPO / "config/schema.yaml"))
    check_config(config)
    return config


def base_model(config: dict, folder: Path) -> tuple[str, dict]:
    """The organism's tiny model: built once into ``folder`` with the config's build settings."""
    from sealflow.base_model import BuildSettings, build_base_model
    from sealflow.stages.base import corpus_for

    stats_path = folder.parent / f"{folder.name}.json"
    if (folder / "config.json").is_file():
        return str(folder), json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    settings = BuildSettings.from_config(config["fewshot"]["base_model"]["build"])
    started = time.time()
    corpus = corpus_for("fewshot", settings, config["seed"])
    corpus_s = time.time() - started
    stats = build_base_model(folder, settings, corpus, config["seed"])
    stats.update(corpus_seconds=round(corpus_s, 1), build_seconds=round(time.time() - started, 1),
                 documents=len(corpus))
    stats_path.write_text(json.dumps(stats, indent=1))
    return str(folder), stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/fewshot-organism.yaml")
    parser.add_argument("--n-tasks", type=int, default=8, help="held-out evaluation tasks")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="override base_model.build.pretrain_steps")
    parser.add_argument("--corpus", type=int, default=None, help="override base_model.build.corpus_passages")
    parser.add_argument("--model", default=None, help="an already built base model folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    build = {k: v for k, v in (("pretrain_steps", args.pretrain_steps), ("corpus_passages", args.corpus)) if v}
    overrides = {"device": "cpu", "fewshot": {"data": {"n_eval": args.n_tasks}, "base_model": {"build": build}}}
    config = load_config(args.config, overrides)
    fs = config["fewshot"]

    from sealflow.fewshot.data import choose_tasks, load_pool
    from sealflow.fewshot.evaluation import oracle_configs
    from sealflow.fewshot.inner import TTTSettings, plan_for_config
    from sealflow.fewshot.scoring import ScoringSettings, answer_all, is_correct
    from sealflow.fewshot.toolconfig import config_key
    from sealflow.ids import adapter_dir, derived_seed
    from sealflow.stages.fewshot_eval import _device_owner, _train_and_answer

    out_dir = REPO / "results" / f"{config['run']}-probe"
    out_dir.mkdir(parents=True, exist_ok=True)
    b = fs["base_model"]["build"]
    folder = Path(args.model) if args.model else out_dir / f"model-{b['pretrain_steps']}-{b['corpus_passages']}"
    started = time.time()
    model, build_stats = base_model(config, folder)
    build_s = time.time() - started

    _, tasks = choose_tasks(fs["data"], load_pool(fs["data"], "train"), load_pool(fs["data"], "eval"))
    by_id = {t.id: t for t in tasks}
    configs = oracle_configs(fs["evaluation"]["oracle"])
    scoring = ScoringSettings.from_config(fs["scoring"])
    settings = TTTSettings.from_config(fs["inner_loop"])
    timings = {}
    with tempfile.TemporaryDirectory() as root, _device_owner(config, model) as owner:
        t0 = time.time()
        icl = answer_all(owner.backend(), owner.tokenizer, [(t, None) for t in tasks], scoring)
        timings["icl_s"] = round(time.time() - t0, 1)
        plans, labels = [], {}
        for pos, task in enumerate(tasks):
            for c, tool in enumerate(configs):
                edit_id = f"probe-p{pos:02d}-c{c}"
                labels[edit_id] = (task.id, c)
                plans.append(plan_for_config(task, tool, None, edit_id, adapter_dir(root, f"p{pos:02d}-c{c}"),
                                             settings, derived_seed(config["seed"], edit_id, 0)))
        t0 = time.time()
        rows, answers = _train_and_answer(config, model, by_id, plans, owner, "organism-probe")
        timings["ttt_s"] = round(time.time() - t0, 1)
    entries = {r["edit_id"]: r for r in rows}

    per_task = {t.id: {"icl": is_correct(a, t), "icl_answer": a.text, "ttt": {}} for t, a in zip(tasks, icl)}
    solved_by = [0] * len(configs)
    for edit_id, (task_id, c) in labels.items():
        answer = answers.get(edit_id)
        ok = bool(answer is not None and is_correct(answer, by_id[task_id]))
        solved_by[c] += ok
        per_task[task_id]["ttt"][c] = {"correct": ok, "answer": answer.text if answer else "",
                                       "valid": entries[edit_id]["valid"], "reason": entries[edit_id].get("reason"),
                                       "n_examples": entries[edit_id].get("n_examples")}
    n = len(tasks)
    oracle = sum(any(v["correct"] for v in row["ttt"].values()) for row in per_task.values())
    table = [{"method": "icl", "solved": sum(r["icl"] for r in per_task.values()), "n": n}]
    for c, tool in enumerate(configs):
        table.append({"method": f"ttt_c{c}", "config": json.loads(config_key(tool)), "solved": solved_by[c], "n": n})
    table.append({"method": "oracle", "solved": oracle, "n": n})
    result = {"tasks": [t.id for t in tasks], "table": table, "per_task": per_task, "build": build_stats,
              "build_or_load_s": round(build_s, 1), **timings,
              "command": " ".join(["python", "benchmarks/arc_organism_probe.py", *sys.argv[1:]])}
    (out_dir / "probe.json").write_text(json.dumps(result, indent=1, default=str))

    print(f"\n{n} held-out tasks ({len({t.split('-', 3)[3] for t in result['tasks']})} compositions); "
          f"base model: {build_stats}")
    for row in table:
        cfg = row.get("config")
        what = "" if cfg is None else (f"lr {cfg['learning_rate']:g} x {cfg['num_train_epochs']} ep, basic aug "
                                       f"{cfg['use_basic_augmentations']}, repeat aug {cfg['use_repeat_augmentations']}")
        print(f"{row['method']:8s} {row['solved']}/{row['n']}  {what}")
    print(f"timings: build/load {build_s:.0f} s, ICL {timings['icl_s']} s, TTT {timings['ttt_s']} s")


if __name__ == "__main__":
    main()
