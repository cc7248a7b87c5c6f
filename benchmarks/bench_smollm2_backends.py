"""HF vs vLLM on SmolLM2-135M-Instruct: sampling self-edits and greedy question answering.

    python benchmarks/bench_smollm2_backends.py              # 4 passages x k=4, 20 questions, CPU
    python benchmarks/bench_smollm2_backends.py --device cuda --json out.json

The model is the packaged GGUF (``base_model.source: smollm2-135m-instruct``), converted once
into the cache (``$SEALFLOW_CACHE`` or resources/models/). Two shards, as in a SEAL round:

* sampling: ``k`` self-edits per generated passage, prompt family ``chat-implications`` in
  the model's chat template, ``--edit-tokens`` new tokens at temperature 1;
* scoring: closed-book questions of the generated passages, greedy, ``--answer-tokens``.

Both backends get identical requests in one ``generate`` call each, in this one process
(HF first: the in-process vLLM CPU engine binds this process's OpenMP threads), so the
printed vLLM/HF ratio is measured on one machine under one load. Loading is timed apart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

SOURCE = "smollm2-135m-instruct"


def make_shards(tokenizer, passages: int, k: int, questions: int, edit_tokens: int, answer_tokens: int) -> dict:
    from sealflow.backends import GenerationRequest
    from sealflow.knowledge.prompts import question_prompt, self_edit_prompt
    from sealflow.worldgen import generate_passages

    texts = [self_edit_prompt("chat-implications", p, tokenizer) for p in generate_passages(passages, seed=7)]
    sampling = [GenerationRequest(t, n=k, max_new_tokens=edit_tokens, temperature=1.0, top_p=0.95, seed=i)
                for i, t in enumerate(texts)]
    asked = [q.question for p in generate_passages(questions, seed=11) for q in p.questions][:questions]
    scoring = [GenerationRequest(question_prompt(q), max_new_tokens=answer_tokens) for q in asked]
    return {"sampling": (sampling, passages * k, "self-edit"), "scoring": (scoring, len(scoring), "question")}


def time_backend(backend, name: str, shards: dict) -> dict:
    from sealflow.backends import GenerationRequest

    backend.generate([GenerationRequest("warm up", max_new_tokens=2)])
    result = {}
    for shard, (requests, units, unit) in shards.items():
        started = time.time()
        out = backend.generate(requests)
        seconds = time.time() - started
        assert sum(len(texts) for texts in out) == units
        result[shard] = {"seconds": round(seconds, 2), "units": units, "s_per_unit": round(seconds / units, 3)}
        print(f"{name:5s} {shard:8s} {units:3d} {unit}s in {seconds:7.2f} s = {seconds / units:6.3f} s per {unit}",
              flush=True)
    return result


def load(name: str, model: Path, placement, settings) -> tuple[object, float]:
    from sealflow.backends import make_backend

    started = time.time()
    backend = make_backend(str(model), placement, settings)
    return backend, round(time.time() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--passages", type=int, default=4)
    parser.add_argument("--k", type=int, default=4, help="self-edits sampled per passage")
    parser.add_argument("--edit-tokens", type=int, default=64)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32, help="HF backend batch size")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from sealflow.backends import BackendSettings
    from sealflow.devices import resolve_placement
    from sealflow.gguf_source import ensure_converted
    from sealflow.modeling import load_tokenizer

    placement = resolve_placement(args.device)
    model, _ = ensure_converted(SOURCE)
    shards = make_shards(load_tokenizer(model), args.passages, args.k, args.questions, args.edit_tokens,
                         args.answer_tokens)
    print(f"SmolLM2-135M-Instruct on {placement.device}, {len(os.sched_getaffinity(0))} CPUs; sampling "
          f"{args.passages} passages x k={args.k}, {args.edit_tokens} tokens; scoring {args.questions} questions, "
          f"{args.answer_tokens} tokens, greedy", flush=True)
    report = {"device": str(placement.device), **{k: v for k, v in vars(args).items() if k != "json"}}

    hf, report["hf_load_s"] = load("hf", model, placement, BackendSettings(name="hf", batch_size=args.batch_size))
    report["hf"] = time_backend(hf, "hf", shards)
    hf.close()
    engine, report["vllm_load_s"] = load("vllm", model, placement,
                                         BackendSettings(name="vllm", max_loras=1, max_lora_rank=8, max_model_len=1024))
    report["vllm"] = time_backend(engine, "vllm", shards)
    engine.close()

    print(f"\nload: hf {report['hf_load_s']:.1f} s, vllm engine {report['vllm_load_s']:.1f} s")
    report["ratio_vllm_over_hf"] = {}
    for shard, (_, _, unit) in shards.items():
        hf_s, vllm_s = report["hf"][shard]["s_per_unit"], report["vllm"][shard]["s_per_unit"]
        report["ratio_vllm_over_hf"][shard] = round(vllm_s / hf_s, 3)
        print(f"{shard:8s} s per {unit:9s} hf {hf_s:7.3f}   vllm {vllm_s:7.3f}   vllm/hf {vllm_s / hf_s:5.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
