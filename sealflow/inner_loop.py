"""The inner loop shared by both domains: one fresh LoRA per (self-edit, repeat).

A shard job loads its model once and walks its self-edits. Each adapter is written
atomically with a *training key* (a hash of everything that determines it: the
training examples, settings, LoRA shape and the model it adapts). When a shard job
is rerun, an adapter whose folder is valid and whose key matches is kept as it is
(same file, same mtime); anything missing, corrupt or stale is retrained. The rule
declares these files with Snakemake's ``update()`` flag, which is the truth: the job
updates its outputs in place instead of recreating them from scratch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import torch
from peft import get_peft_model

from .faults import maybe_delay, maybe_fail
from .ids import ADAPTER_FILES
from .lora import AdapterError, LoraSettings, adapter_dtype, dtype_name, save_adapter, train_lora, validate_adapter
from .settings import TrainPlan  # re-exported: it lives with the settings so light modules can build plans

log = logging.getLogger(__name__)

NO_TRAINING_STEP = "no_training_step"  # every training example was truncated to nothing


def model_fingerprint(path: str | os.PathLike) -> str:
    """Identity of a model: file names, sizes and mtimes of a local folder, or the hub id."""
    folder = Path(path)
    if not folder.is_dir():
        return str(path)
    items = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    return hashlib.sha256(json.dumps([str(path), items]).encode()).hexdigest()[:16]


def training_key(plan: TrainPlan, lora: LoraSettings, model_id: str, dtype: str) -> str:
    """Hash of everything an adapter's saved weights depend on, its dtype (the model's) included."""
    blob = json.dumps({
        "examples": [[e.prompt, e.completion] for e in plan.examples],
        "settings": asdict(plan.settings), "mask_prompt": plan.mask_prompt, "valid": plan.valid,
        "lora": asdict(lora), "model": model_id, "repeat": plan.repeat, "dtype": dtype,
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _reusable(out_dir: Path, key: str) -> bool:
    if not out_dir.exists() or not any(out_dir.iterdir()):  # Snakemake pre-creates output folders
        return False
    try:
        meta = validate_adapter(out_dir)
    except AdapterError as err:
        log.warning("retraining: %s", err)
        return False
    if meta.get("training_key") != key:
        log.info("retraining %s: its training key is stale", out_dir)
        return False
    return True


def _kept_row(row: dict, out_dir: Path) -> dict:
    meta = json.loads((out_dir / "meta.json").read_text())
    row.update(status="kept", seconds=0.0, steps=meta.get("steps"), final_loss=meta.get("final_loss"),
               dtype=meta.get("dtype"),
               sha256=meta.get("sha256"), valid=meta["valid"], reason=meta["reason"],
               dropped_examples=meta.get("dropped_examples", 0), truncated_examples=meta.get("truncated_examples", 0))
    log.info("kept %s (complete, valid, same training key)", out_dir)
    return row


def _verdict(plan: TrainPlan, steps: int) -> tuple[bool, str | None]:
    if plan.valid and steps == 0:  # every example was cut to nothing: no self-edit's effect
        return False, NO_TRAINING_STEP
    return plan.valid, plan.reason


def _trained_row(row: dict, valid: bool, reason: str | None, summary: dict, seconds: float, sha256: str) -> dict:
    row.update(status="trained" if valid else "inert", valid=valid, reason=reason, seconds=seconds,
               steps=summary.get("steps"), final_loss=summary.get("final_loss"), sha256=sha256,
               dropped_examples=summary.get("dropped_examples", 0),
               truncated_examples=summary.get("truncated_examples", 0))
    log.info("%s %s in %.1f s (steps=%s, loss=%s)", row["status"], row["adapter"], seconds, row["steps"],
             row["final_loss"])
    return row


def run_shard(model: torch.nn.Module, tokenizer, model_id: str, plans: Sequence[TrainPlan], lora: LoraSettings,
              fault_key: str = "", parallel_adapters: int = 1, fault_stage: str = "inner_loop") -> list[dict]:
    """Train (or keep) every planned adapter; return one manifest row per adapter, in plan order.

    ``parallel_adapters`` > 1 trains that many adapters at once in one batched pass
    (``multi_lora``); each is saved as it would be alone, so everything downstream is the same.
    ``fault_stage`` names this caller to the test-only fault hooks (``sealflow.faults``).
    """
    rows: list[dict | None] = [None] * len(plans)
    todo: list[tuple[int, TrainPlan, str, dict]] = []
    dtype = dtype_name(adapter_dtype(model))
    for index, plan in enumerate(plans):
        out_dir = Path(plan.out_dir)
        key = training_key(plan, lora, model_id, dtype)
        row = {"edit_id": plan.edit_id, "repeat": plan.repeat, "adapter": str(out_dir), "valid": plan.valid,
               "reason": plan.reason, "training_key": key, "dtype": dtype, **plan.info}
        if _reusable(out_dir, key):
            rows[index] = _kept_row(row, out_dir)
        else:
            todo.append((index, plan, key, row))
    written = 0

    def meta_of(plan: TrainPlan, key: str, valid: bool, reason: str | None, summary: dict) -> dict:
        return {"edit_id": plan.edit_id, "repeat": plan.repeat, "training_key": key, "valid": valid,
                "reason": reason, "model": model_id, **summary}

    if parallel_adapters <= 1:
        for index, plan, key, row in todo:
            if written == 1:
                maybe_fail(fault_stage, fault_key)  # test-only: die after the first adapter of a shard
            started = time.time()
            if plan.valid:
                peft_model, stats = train_lora(model, tokenizer, plan.examples, lora, plan.settings, plan.mask_prompt)
                summary = stats.summary()
            else:
                # An inert adapter (LoRA B starts at zero) keeps the artifact layout uniform.
                torch.manual_seed(plan.settings.seed)
                peft_model, summary = get_peft_model(model, lora.peft_config()), {"steps": 0}
            valid, reason = _verdict(plan, summary["steps"])
            meta = save_adapter(peft_model, plan.out_dir, meta_of(plan, key, valid, reason, summary))
            model = peft_model.unload()
            rows[index] = _trained_row(row, valid, reason, summary, time.time() - started, meta["sha256"])
            written += 1
            maybe_delay(fault_stage)  # test-only: a window in which a kill lands mid-shard
        return rows  # type: ignore[return-value]

    from .multi_lora import adapter_writer, train_adapters_batched

    for start in range(0, len(todo), parallel_adapters):
        group = todo[start : start + parallel_adapters]
        started = time.time()
        results = train_adapters_batched(model, tokenizer, [plan for _, plan, _, _ in group], lora,
                                         max_group=parallel_adapters)
        log.info("trained %d adapters in one batched pass in %.1f s", len(group), time.time() - started)
        with adapter_writer(model, lora) as write:
            for (index, plan, key, row), (weights, stats) in zip(group, results):
                if written == 1:
                    maybe_fail(fault_stage, fault_key)  # test-only: die after the first adapter is written
                summary = stats.summary() if plan.valid else {"steps": 0}
                valid, reason = _verdict(plan, summary["steps"])
                meta = write(weights, plan.out_dir, meta_of(plan, key, valid, reason, summary))
                rows[index] = _trained_row(row, valid, reason, summary, stats.seconds, meta["sha256"])
                written += 1
                maybe_delay(fault_stage)
    return rows  # type: ignore[return-value]


def check_declared(plans: Sequence[TrainPlan], declared: Sequence[str]) -> None:
    """Every adapter a plan writes is one the rule declared, and the other way round.

    The rule declares its files from ``sealflow.ids`` at parse time; the plans build
    theirs from the self-edits. A mismatch would make Snakemake lose track of adapters.
    """
    planned = {f"{Path(p.out_dir).as_posix()}/{name}" for p in plans for name in ADAPTER_FILES}
    declared_set = {Path(d).as_posix() for d in declared}
    if planned != declared_set:
        missing, extra = sorted(declared_set - planned)[:3], sorted(planned - declared_set)[:3]
        raise RuntimeError(f"adapters planned and declared differ: declared but not planned {missing}, "
                           f"planned but not declared {extra}")


# ---- reading what run_shard wrote (scoring checks every adapter against it) ----------

def load_manifest(path: str) -> dict[tuple[str, int], dict]:
    """A shard manifest's rows by (edit id, repeat)."""
    rows = json.loads(Path(path).read_text())["adapters"]
    return {(r["edit_id"], int(r["repeat"])): r for r in rows}


def check_inputs_cover(manifest: Mapping[tuple[str, int], dict], declared: Sequence[str]) -> None:
    """Every adapter the manifest names is among the files the scoring rule declares as input.

    Snakemake deletes ``temp()`` adapters (``keep_adapters: false``) once their last
    consumer is done, so scoring must declare what it reads, or they would vanish first.
    """
    declared_set = {Path(d).as_posix() for d in declared}
    missing = sorted(f"{Path(e['adapter']).as_posix()}/{name}" for e in manifest.values() for name in ADAPTER_FILES
                     if f"{Path(e['adapter']).as_posix()}/{name}" not in declared_set)
    if missing:
        raise RuntimeError(f"the manifest names adapter files the scoring rule does not declare: {missing[:3]}")


def checked_adapter(manifest: Mapping[tuple[str, int], dict], edit_id: str, repeat: int) -> str:
    """The adapter folder for (edit, repeat), validated against the inner loop's manifest."""
    entry = manifest.get((edit_id, repeat))
    if entry is None:
        raise AdapterError(f"no adapter recorded for edit {edit_id} repeat {repeat} in the inner-loop manifest")
    meta = validate_adapter(entry["adapter"])
    if entry.get("sha256") and meta.get("sha256") != entry["sha256"]:
        raise AdapterError(f"adapter {entry['adapter']} differs from the one the inner loop recorded")
    return entry["adapter"]
