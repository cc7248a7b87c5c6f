"""The prepared GPU check: the inner loop's device and bf16 paths on models of real shapes.

For each shape it builds a random-weight model (no download: only torch, transformers and
peft are needed), saves it with the project's own tiny tokenizer, and runs
``benchmarks/bench_inner_loop.py`` on it: the authors' recipe, sealflow sequential and
batched training (bf16 autocast on CUDA), batched and per-adapter HF scoring, MFU against
a bf16 matmul peak measured in the same run, and peak memory. Each shape has its own time
limit, so the whole check stays within about 8 minutes on one H100-class GPU.

    python benchmarks/gpu_check.py                  # llama-1b and qwen2-7b shapes on cuda
    python benchmarks/gpu_check.py --shapes tiny --device cpu   # the same code path, in seconds, anywhere

Targets (issue): >= 40% of the measured bf16 peak during batched training at 1B shape, and at
most 2 s per self-edit (train + score) at 7B shape with the paper's inner-loop settings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {  # architecture, hidden, layers, heads, kv heads, intermediate, vocab
    "tiny": ("llama", 128, 2, 4, 2, 256, 2000),
    "llama-1b": ("llama", 2048, 16, 32, 8, 8192, 128256),  # Llama-3.2-1B
    "qwen2-7b": ("qwen2", 3584, 28, 28, 4, 18944, 152064),  # Qwen2.5-7B
}
BENCH_ARGS = {  # per shape: enough edits to time, few enough to fit the limit
    "tiny": ["--quick", "--groups", "2,4"],
    "llama-1b": ["--edits", "16", "--groups", "4,8,16", "--sequential-edits", "4", "--authors-edits", "1",
                 "--authors-steps", "8"],
    "qwen2-7b": ["--edits", "8", "--groups", "4,8", "--sequential-edits", "2", "--authors-edits", "1",
                 "--authors-steps", "4"],
}


def build(shape: str, out: Path, device: str) -> None:
    """A random-weight model of ``shape`` in bf16 (float32 on CPU), with a tiny offline tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from sealflow.base_model import train_tokenizer
    from sealflow.worldgen import generate_entries

    arch, hidden, layers, heads, kv, inter, vocab = SHAPES[shape]
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if arch == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    config = config_cls(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        num_key_value_heads=kv, intermediate_size=inter, vocab_size=vocab,
                        max_position_embeddings=4096, tie_word_embeddings=arch == "llama")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = model_cls(config).to(dtype)
    texts = [f"{e.passage.title}\n{e.passage.context}" for e in generate_entries(200, 7)]
    tokenizer = train_tokenizer(texts, arch, 2000)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="llama-1b,qwen2-7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--limit-s", type=int, default=210, help="time limit per shape (build + benchmark)")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    failed = []
    for shape in args.shapes.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"gpu-check-{shape}-"))
        started = time.time()
        print(f"== {shape}: building a random-weight model", flush=True)
        build(shape, work / "model", args.device)
        print(f"   built in {time.time() - started:.0f} s", flush=True)
        cmd = [sys.executable, str(here / "bench_inner_loop.py"), "--model", str(work / "model"), "--device",
               args.device, *BENCH_ARGS[shape]]
        try:
            proc = subprocess.run(cmd, timeout=max(30, args.limit_s - (time.time() - started)))
            if proc.returncode:
                failed.append(f"{shape}: benchmark exit {proc.returncode}")
        except subprocess.TimeoutExpired:
            failed.append(f"{shape}: over its {args.limit_s} s limit")
    print("gpu check:", "; ".join(failed) if failed else "every shape ran")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
