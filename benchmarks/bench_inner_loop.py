"""Benchmark: the inner loop three ways, on the same model, self-edits and hyper-parameters.

(a) the SEAL authors' recipe: ``transformers.Trainer`` + peft, one LoRA per edit, batch 1,
    every sequence padded to ``max_length`` (2048 as in their server, and this config's 256);
(b) sealflow sequential: ``inner_loop.run_shard`` (``train_lora`` + ``save_adapter`` per edit);
(c) sealflow batched: ``multi_lora.train_adapters_batched`` with G adapters per
    forward/backward, saved with ``multi_lora.adapter_writer``.

Every variant trains and saves the same adapters: the paper's inner-loop settings (batch
1, 10 epochs, lr 1e-3, LoRA r 32 / alpha 64; on all seven projections for all three
variants, where the authors' server leaves peft's default targets) on knowledge
self-edits (a few restatement lines plus the passage). Timings are train + save per
edit. Unless ``--no-score``, each sealflow adapter also answers its passage's questions
greedily, per adapter through peft (as the HF backend does) or in one batched
``generate`` over all adapters; the authors score with vLLM, which is not timed here.
On a GPU the MFU is reported against a bf16 matmul peak measured in the same run
(FLOPs: 4 x non-embedding parameters x real tokens, as a frozen base needs no weight
gradients; padding counts as waste). Peak memory is per variant: CUDA max allocated,
or the peak RSS with the kernel's high-water mark reset before each variant.

    python benchmarks/bench_inner_loop.py [--quick] [--model PATH] [--device auto] [--edits N]
        [--groups 4,8,16] [--sequential-edits N] [--authors-edits N] [--authors-steps N]
        [--epochs 10] [--threads N] [--no-score]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Spinning OpenMP workers collapse when the cores are shared (one preempted worker stalls
# every op); passive waiting costs little when they are not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Result:
    name: str
    edits: int
    seconds: float  # train + save, all edits
    tokens: int  # real (unpadded) training tokens, all epochs
    processed: int  # tokens the model ran on, padding included
    peak_mb: float
    score_seconds: float | None = None

    @property
    def per_edit(self) -> float:
        return self.seconds / self.edits


# -- memory ---------------------------------------------------------------------------
class Peak:
    """Peak memory of one variant: CUDA max allocated, or the process's peak RSS with the
    kernel's high-water mark reset before the variant (``ru_maxrss`` where that fails)."""

    def __init__(self, device):
        self.device = device

    def reset(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def read_mb(self) -> float:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


# -- the variants ---------------------------------------------------------------------
def authors_recipe(model, tokenizer, plans, lora, max_length: int, work: Path, device,
                   max_steps: int | None = None) -> tuple[float, int, int]:
    """The authors' inner loop (their TTT server), one edit after another: every sequence
    tokenized with ``padding="max_length"`` (labels = input ids, padding included, as
    theirs), ``Trainer`` with batch 1, then ``save_pretrained``.

    With ``max_steps`` only that many optimizer steps run per edit and the remaining steps
    are added at the median measured step time (every step has the same padded shape, so
    its cost does not depend on the text); setup and saving are measured as they are."""
    import statistics

    import torch
    from datasets import Dataset as HFDataset
    from peft import get_peft_model
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainerCallback, TrainingArguments
    from transformers.utils import logging as hf_logging

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            sync(device)
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            self.times.append(time.perf_counter() - self.started)

    hf_logging.set_verbosity_error()
    tokenizer.padding_side = "right"
    seconds = tokens = processed = 0
    for plan in plans:
        sync(device)
        started = time.perf_counter()
        rows = []
        for example in plan.examples:
            tok = tokenizer(example.completion, truncation=True, max_length=max_length, padding="max_length")
            rows.append({"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"],
                         "labels": list(tok["input_ids"])})
            tokens += sum(tok["attention_mask"]) * plan.settings.epochs
            processed += len(tok["input_ids"]) * plan.settings.epochs
        lora_model = get_peft_model(model, lora.peft_config())
        out_dir = work / f"authors-{max_length}" / plan.edit_id
        trainer = Trainer(
            model=lora_model,
            args=TrainingArguments(
                output_dir=str(out_dir), per_device_train_batch_size=plan.settings.batch_size,
                gradient_accumulation_steps=plan.settings.grad_accum, num_train_epochs=plan.settings.epochs,
                learning_rate=plan.settings.lr, logging_steps=1, save_strategy="no", report_to="none",
                remove_unused_columns=False, fp16=False, bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
                seed=plan.settings.seed, disable_tqdm=True, use_cpu=device.type == "cpu",
                **({"max_steps": max_steps} if max_steps else {}),
            ),
            train_dataset=HFDataset.from_list(rows),
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.remove_callback(PrinterCallback)  # logging_steps=1 as theirs, without printing every step
        timer = StepTimer()
        trainer.add_callback(timer)
        trainer.train()
        lora_model.save_pretrained(str(out_dir / "final_adapter"))
        model = lora_model.unload()
        sync(device)
        seconds += time.perf_counter() - started
        full_steps = plan.settings.epochs * math.ceil(len(rows) / (plan.settings.batch_size * plan.settings.grad_accum))
        if len(timer.times) < full_steps:
            seconds += (full_steps - len(timer.times)) * statistics.median(timer.times)
    tokenizer.padding_side = "left"
    return seconds, tokens, processed


def planned_tokens(tokenizer, plans) -> int:
    """Real training tokens of the sealflow variants, all epochs."""
    from sealflow.lora import encode_example

    real = 0
    for plan in plans:
        for example in plan.examples:
            ids, _ = encode_example(tokenizer, example, plan.settings.max_seq_len, plan.mask_prompt)
            real += len(ids) * plan.settings.epochs
    return real


def sequential(model, tokenizer, plans, lora, device) -> float:
    from sealflow.inner_loop import run_shard

    sync(device)
    started = time.perf_counter()
    run_shard(model, tokenizer, "bench", plans, lora)
    sync(device)
    return time.perf_counter() - started


def batched(model, tokenizer, plans, lora, group: int, device) -> tuple[float, dict]:
    from sealflow.multi_lora import adapter_writer, train_adapters_batched

    sync(device)
    started = time.perf_counter()
    report: dict = {}
    results = train_adapters_batched(model, tokenizer, plans, lora, max_group=group, report=report)
    with adapter_writer(model, lora) as write:
        for plan, (weights, stats) in zip(plans, results):
            write(weights, plan.out_dir, {"edit_id": plan.edit_id, **stats.summary()})
    sync(device)
    return time.perf_counter() - started, report


def score_sequential(model, tokenizer, plans, questions, device, max_new_tokens: int) -> float:
    """Per adapter: load it with peft and answer its passage's questions in one batch."""
    from sealflow.backends import BackendSettings
    from sealflow.backends.base import GenerationRequest
    from sealflow.backends.hf import HFBackend
    from sealflow.devices import Placement

    backend = HFBackend("", Placement(device, next(model.parameters()).dtype), BackendSettings(batch_size=64),
                        model=model, tokenizer=tokenizer)
    sync(device)
    started = time.perf_counter()
    for plan, qs in zip(plans, questions):
        backend.generate([GenerationRequest(q, adapter=plan.out_dir, max_new_tokens=max_new_tokens) for q in qs])
    sync(device)
    return time.perf_counter() - started


def score_batched(model, tokenizer, plans, questions, lora, device, max_new_tokens: int) -> float:
    from sealflow.multi_lora import generate_batched, load_adapter_weights

    sync(device)
    started = time.perf_counter()
    adapters = [load_adapter_weights(plan.out_dir, device) for plan in plans]
    requests = [(i, q) for i, qs in enumerate(questions) for q in qs]
    generate_batched(model, tokenizer, lora, adapters, requests, max_new_tokens=max_new_tokens, batch_size=64)
    sync(device)
    return time.perf_counter() - started


# -- GPU roofline -----------------------------------------------------------------------
def bf16_peak_tflops(device) -> float:
    import torch

    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    iters = 20
    started = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - started) / 1e12


def non_embedding_params(model) -> int:
    embed = {id(p) for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None
             for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embed)


# -- main -------------------------------------------------------------------------------
def build_plans(root: Path, entries, lora_epochs: int):
    from sealflow.inner_loop import TrainPlan
    from sealflow.lora import TrainExample, TrainSettings

    rng = random.Random(0)
    plans, questions = [], []
    for i, entry in enumerate(entries):
        lines = entry.restatements(rng) + [entry.passage.context]
        plans.append(TrainPlan(edit_id=f"e{i}", repeat=0, out_dir=str(root / f"e{i}"),
                               examples=[TrainExample(t) for t in lines],
                               settings=TrainSettings(epochs=lora_epochs, lr=1e-3, batch_size=1, grad_accum=1,
                                                      max_seq_len=2048, seed=i)))
        questions.append([f"{q.question}\nAnswer:" for q in entry.passage.questions])
    return plans, questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: build a tiny Qwen2 model, demo-sized)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true",
                        help="fewer edits, and the authors' recipe timed on a few steps (<= 60 s on 2 CPU cores)")
    parser.add_argument("--edits", type=int, help="self-edits trained batched (default 32; quick: G per group size G)")
    parser.add_argument("--sequential-edits", type=int, help="edits trained sequentially (default 8; quick 2)")
    parser.add_argument("--authors-edits", type=int, help="edits trained with the authors' recipe (default 2; quick 1)")
    parser.add_argument("--authors-steps", type=int,
                        help="time only this many authors' steps per edit and add the rest at the median step time "
                             "(default: all; quick 4)")
    parser.add_argument("--groups", default="4,8,16", help="adapters per batched forward/backward")
    parser.add_argument("--epochs", type=int, default=10, help="inner-loop epochs (paper: 10)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-score", action="store_true", help="time training only")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from sealflow.base_model import BuildSettings, build_base_model
    from sealflow.devices import resolve_placement
    from sealflow.lora import LoraSettings
    from sealflow.modeling import load_model, load_tokenizer
    from sealflow.worldgen import generate_entries

    groups = [int(g) for g in args.groups.split(",") if g.strip()]
    edits = args.edits or (max(groups) if args.quick else 32)
    seq_edits = args.sequential_edits or (2 if args.quick else 8)
    authors_edits = args.authors_edits or (1 if args.quick else 2)
    authors_steps = args.authors_steps or (4 if args.quick else None)
    max_new_tokens = 8 if args.quick else 16
    score = not args.no_score
    work = Path(tempfile.mkdtemp(prefix="bench-inner-"))
    started_all = time.perf_counter()
    model_path = args.model
    if model_path is None:
        model_path = str(work / "model")
        corpus = [f"{e.passage.title}\n{e.passage.context}" for e in generate_entries(200, 7)]
        # The demo config's architecture (config/config.yaml), briefly pretrained: only timing matters.
        build_base_model(model_path, BuildSettings(vocab_size=2000, hidden_size=128, num_layers=4, num_heads=4,
                                                   num_kv_heads=2, intermediate_size=384, max_position_embeddings=2048,
                                                   pretrain_steps=4, batch_size=8, seq_len=64), corpus, seed=0)
    placement = resolve_placement(args.device)
    device = placement.device
    model, tok = load_model(model_path, placement), load_tokenizer(model_path)
    lora = LoraSettings(r=32, alpha=64, dropout=0.0, target_modules=TARGETS)
    entries = generate_entries(max(edits, seq_edits, authors_edits), 11)
    peak = Peak(device)
    results: list[Result] = []
    print(f"device={device} dtype={placement.dtype} threads={torch.get_num_threads()} "
          f"params={sum(p.numel() for p in model.parameters())} lora r={lora.r} alpha={lora.alpha} x{len(TARGETS)} "
          f"modules, epochs={args.epochs} batch=1 lr=1e-3", flush=True)

    for max_length in (2048, 256):
        plans, _ = build_plans(work / f"authors-{max_length}", entries[:authors_edits], args.epochs)
        peak.reset()
        seconds, tokens, processed = authors_recipe(model, tok, plans, lora, max_length, work, device, authors_steps)
        res = Result(f"authors (Trainer, pad {max_length})", len(plans), seconds, tokens, processed, peak.read_mb())
        results.append(res)
        print(f"  {res.name}: {res.per_edit:.3f} s/edit  (at {time.perf_counter() - started_all:.0f} s)", flush=True)

    plans, questions = build_plans(work / "sequential", entries[:seq_edits], args.epochs)
    real = planned_tokens(tok, plans)
    peak.reset()
    seconds = sequential(model, tok, plans, lora, device)
    res = Result("sealflow sequential (run_shard)", len(plans), seconds, real, real, peak.read_mb())
    if score:
        res.score_seconds = score_sequential(model, tok, plans, questions, device, max_new_tokens)
    results.append(res)
    print(f"  {res.name}: {res.per_edit:.3f} s/edit  (at {time.perf_counter() - started_all:.0f} s)", flush=True)

    for group in groups:
        n_batched = edits if args.edits or not args.quick else group  # quick: one full group per size
        plans, questions = build_plans(work / f"batched-{group}", entries[:n_batched], args.epochs)
        peak.reset()
        seconds, report = batched(model, tok, plans, lora, group, device)
        res = Result(f"sealflow batched G={group}", len(plans), seconds, report["tokens"], report["padded_tokens"],
                     peak.read_mb())
        if score:
            res.score_seconds = score_batched(model, tok, plans, questions, lora, device, max_new_tokens)
        results.append(res)
        print(f"  {res.name}: {res.per_edit:.3f} s/edit  (at {time.perf_counter() - started_all:.0f} s)", flush=True)

    peak_tflops = bf16_peak_tflops(device) if device.type == "cuda" else None
    n_params = non_embedding_params(model)
    print()
    header = (f"{'variant':36} {'edits':>5} {'train s/edit':>12} {'score s/edit':>12} {'tokens/s':>9} "
              f"{'pad waste':>9} {'peak MiB':>9}")
    if peak_tflops:
        header += f" {'MFU':>6}"
    print(header)
    for r in results:
        score_txt = f"{r.score_seconds / r.edits:12.3f}" if r.score_seconds is not None else f"{'n/a':>12}"
        line = (f"{r.name:36} {r.edits:5d} {r.per_edit:12.3f} {score_txt} {r.tokens / r.seconds:9.0f} "
                f"{1 - r.tokens / max(1, r.processed):9.1%} {r.peak_mb:9.0f}")
        if peak_tflops:
            line += f" {4 * n_params * r.tokens / r.seconds / 1e12 / peak_tflops:6.1%}"
        print(line)
    if peak_tflops:
        print(f"bf16 matmul peak measured: {peak_tflops:.1f} TFLOP/s")
    authors_2048 = next(r for r in results if r.name == "authors (Trainer, pad 2048)")
    authors_256 = next(r for r in results if r.name == "authors (Trainer, pad 256)")
    seq = next(r for r in results if r.name.startswith("sealflow sequential"))
    batch = [r for r in results if r.name.startswith("sealflow batched")]
    best = min(batch, key=lambda r: r.per_edit)
    extrapolated = f", {authors_steps} steps each, the rest at the median step time" if authors_steps else ""
    print(f"train = train + save per edit; score = greedy answers to the passage's questions "
          f"({'timed' if score else 'not timed'}; the authors score with vLLM, not timed here)")
    print(f"authors' recipe timed on {authors_2048.edits} edit(s){extrapolated}; sequential on {seq.edits} edits, "
          f"batched on {', '.join(str(r.edits) for r in batch)}; total run {time.perf_counter() - started_all:.0f} s")
    print(f"best batched: {best.name}; vs authors pad 256: {authors_256.per_edit / best.per_edit:.1f}x")
    if score and seq.score_seconds and best.score_seconds:
        speedup = seq.score_seconds / seq.edits / (best.score_seconds / best.edits)
        print(f"scoring, batched vs per-adapter peft: {speedup:.1f}x")
    shutil.rmtree(work, ignore_errors=True)
    print(f"batched vs authors: {authors_2048.per_edit / best.per_edit:.1f}x, "
          f"batched vs sequential: {seq.per_edit / best.per_edit:.1f}x")


if __name__ == "__main__":
    main()
