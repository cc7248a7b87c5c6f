"""Throughput of the HF and vLLM backends on the same shard of requests.

    python benchmarks/bench_backends.py                      # builds a tiny Qwen2 model
    python benchmarks/bench_backends.py --model PATH --device cuda --prompts 256

The shard mimics a SEAL scoring/sampling job: every prompt is answered greedily by the
base model and by each adapter (scoring), and sampled ``k`` times by the base model
(self-edit generation). Both backends get identical requests in one ``generate`` call.
Throughput counts completion tokens (the returned texts re-encoded with the model's
tokenizer, the same count for both backends) per second of ``generate``; model/engine
loading is timed separately.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path


def build_tiny(out: Path, seed: int = 0) -> Path:
    from sealflow.base_model import BuildSettings, build_base_model
    from sealflow.worldgen import generate_passages

    # head size 32 (64 / 2): vLLM's CPU attention does not support smaller heads.
    settings = BuildSettings(architecture="qwen2", vocab_size=600, hidden_size=64, num_layers=2, num_heads=2,
                             num_kv_heads=1, intermediate_size=128, max_position_embeddings=512, pretrain_steps=30,
                             batch_size=8, seq_len=64, lr=3e-3)
    corpus = [f"{p.title}\n{p.context}" for p in generate_passages(200, seed=123)]
    build_base_model(out, settings, corpus, seed=seed)
    return out


def train_adapters(model_path: Path, out: Path, count: int) -> list[str]:
    from sealflow.devices import resolve_placement
    from sealflow.lora import LoraSettings, TrainExample, TrainSettings, save_adapter, train_lora
    from sealflow.modeling import load_model, load_tokenizer

    tok = load_tokenizer(model_path)
    model = load_model(model_path, resolve_placement("cpu"))
    paths = []
    for i in range(count):
        text = f"adapter {i} says " + " ".join(["zzz", "qqq", "river", "harbour"][i % 4:] * 4)
        peft_model, _ = train_lora(model, tok, [TrainExample(text)] * 8, LoraSettings(r=8, alpha=32),
                                   TrainSettings(epochs=3, lr=5e-2, batch_size=8, seed=i))
        save_adapter(peft_model, out / f"adapter{i}", {"text": text})
        model = peft_model.unload()
        paths.append(str(out / f"adapter{i}"))
    return paths


def make_requests(prompts: int, adapters: list[str], k: int, max_new: int):
    from sealflow.backends import GenerationRequest
    from sealflow.worldgen import generate_passages

    texts = [p.context[:120] for p in generate_passages(prompts, seed=7)]
    scoring = [GenerationRequest(t, adapter=a, max_new_tokens=max_new) for t in texts for a in [None, *adapters]]
    sampling = [GenerationRequest(t, n=k, max_new_tokens=max_new, temperature=1.0, top_p=0.95, seed=i)
                for i, t in enumerate(texts)]
    return scoring, sampling


def run(backend, name: str, shards: dict, tokenizer) -> dict:
    from sealflow.backends import GenerationRequest

    backend.generate([GenerationRequest("warm up", max_new_tokens=2)])
    result = {}
    for shard, requests in shards.items():
        started = time.time()
        out = backend.generate(requests)
        seconds = time.time() - started
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for texts in out for t in texts)
        result[shard] = {"seconds": round(seconds, 2), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}
        print(f"{name:5s} {shard:9s} {tokens:7d} tokens in {seconds:7.2f} s = {tokens / seconds:9.1f} tokens/s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: build a tiny Qwen2)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--adapters", type=int, default=2)
    parser.add_argument("--k", type=int, default=5, help="samples per prompt in the sampling shard")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64, help="HF backend batch size")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from sealflow.backends import BackendSettings, make_backend
    from sealflow.devices import resolve_placement
    from sealflow.modeling import load_tokenizer

    placement = resolve_placement(args.device)
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as scratch:
        scratch = Path(scratch)
        model = Path(args.model) if args.model else build_tiny(scratch / "tiny")
        adapters = train_adapters(model, scratch / "adapters", args.adapters)
        scoring, sampling = make_requests(args.prompts, adapters, args.k, args.max_new_tokens)
        shards = {"scoring": scoring, "sampling": sampling, "both": scoring + sampling}
        tokenizer = load_tokenizer(model)
        print(f"device {placement.device}, {os.cpu_count()} CPUs; {len(scoring)} scoring requests "
              f"({args.prompts} prompts x (base + {args.adapters} adapters)), {len(sampling)} sampling requests "
              f"(k={args.k}), max_new_tokens={args.max_new_tokens}", flush=True)

        report = {"device": str(placement.device), "prompts": args.prompts, "adapters": args.adapters, "k": args.k,
                  "max_new_tokens": args.max_new_tokens}
        # HF first: the in-process vLLM CPU engine binds this process's OpenMP threads.
        started = time.time()
        hf = make_backend(str(model), placement, BackendSettings(name="hf", batch_size=args.batch_size))
        report["hf_load_s"] = round(time.time() - started, 2)
        report["hf"] = run(hf, "hf", shards, tokenizer)
        hf.close()

        settings = BackendSettings(name="vllm", max_loras=max(1, args.adapters + 1), max_lora_rank=8,
                                   max_model_len=512)
        started = time.time()
        vllm_backend = make_backend(str(model), placement, settings)
        report["vllm_startup_s"] = round(time.time() - started, 2)
        report["vllm_engine_s"] = round(vllm_backend.startup_seconds, 2)
        report["vllm"] = run(vllm_backend, "vllm", shards, tokenizer)
        vllm_backend.close()

    print(f"\nvLLM engine start-up: {report['vllm_startup_s']:.1f} s (engine {report['vllm_engine_s']:.1f} s); "
          f"HF model load: {report['hf_load_s']:.1f} s")
    report["ratio_vllm_over_hf"] = {}
    for shard in shards:
        ratio = report["vllm"][shard]["tokens_per_s"] / report["hf"][shard]["tokens_per_s"]
        report["ratio_vllm_over_hf"][shard] = round(ratio, 2)
        print(f"{shard:9s} hf {report['hf'][shard]['tokens_per_s']:9.1f} tok/s   vllm "
              f"{report['vllm'][shard]['tokens_per_s']:9.1f} tok/s   vllm/hf {ratio:5.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
