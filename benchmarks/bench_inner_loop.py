"""Benchmark: the sharded inner loop (load the model once per shard) against loading it per edit.

Prints seconds per self-edit for both, their ratio, and peak memory. Both variants train
the same adapters on the same model in the same invocation, so the ratio is meaningful
on any machine.

    python benchmarks/bench_inner_loop.py [--model PATH] [--edits 8] [--device auto]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: build a tiny Qwen2 model)")
    parser.add_argument("--edits", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from sealflow.base_model import BuildSettings, build_base_model
    from sealflow.devices import resolve_placement
    from sealflow.inner_loop import TrainPlan, run_shard
    from sealflow.lora import LoraSettings, TrainExample, TrainSettings
    from sealflow.modeling import load_model, load_tokenizer
    from sealflow.worldgen import generate_entries

    work = Path(tempfile.mkdtemp(prefix="bench-inner-"))
    model_path = args.model
    if model_path is None:
        model_path = str(work / "model")
        corpus = [f"{e.passage.title}\n{e.passage.context}" for e in generate_entries(300, 7)]
        build_base_model(model_path, BuildSettings(vocab_size=800, hidden_size=64, num_layers=2, num_heads=2,
                                                   num_kv_heads=1, intermediate_size=128, pretrain_steps=20,
                                                   batch_size=8, seq_len=64), corpus, seed=0)
    placement = resolve_placement(args.device)
    lora = LoraSettings(r=8, alpha=16, target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    entries = generate_entries(args.edits, 11)

    def plans(root: Path) -> list[TrainPlan]:
        import random

        rng = random.Random(0)
        return [TrainPlan(edit_id=f"e{i}", repeat=0, out_dir=str(root / f"e{i}"),
                          examples=[TrainExample(t) for t in e.restatements(rng) + [e.passage.context]],
                          settings=TrainSettings(epochs=5, lr=1e-3, batch_size=4, seed=i))
                for i, e in enumerate(entries)]

    started = time.perf_counter()
    model, tok = load_model(model_path, placement), load_tokenizer(model_path)
    run_shard(model, tok, "bench", plans(work / "sharded"), lora)
    sharded = (time.perf_counter() - started) / args.edits
    del model

    started = time.perf_counter()
    for plan in plans(work / "per-edit"):
        model, tok = load_model(model_path, placement), load_tokenizer(model_path)
        run_shard(model, tok, "bench", [plan], lora)
        del model
    per_edit = (time.perf_counter() - started) / args.edits

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"device={placement.device} dtype={placement.dtype} model={model_path} edits={args.edits}")
    print(f"sharded inner loop (model loaded once): {sharded:.3f} s per edit")
    print(f"baseline (model loaded per edit):       {per_edit:.3f} s per edit")
    print(f"speed-up of sharding: {per_edit / sharded:.2f}x   peak RSS: {peak_mb:.0f} MiB")


if __name__ == "__main__":
    main()
