"""Why a knowledge model does or does not show SEAL's effect: a copy probe and a storage probe.

* copy probe: does the policy's self-edit about a passage name the passage's entity and its answers
  (and how faithful is it, as the workflow measures it)?
* storage probe: does a LoRA trained on a text make the passage's questions answerable closed-book?
  Texts: nothing, the passage, the passage plus faithful restatements (a perfect self-edit in the
  implications style), and the questions with their answers (the upper bound). Each under the
  config's inner-loop settings and under the paper's (batch 1, 10 epochs).

    python benchmarks/knowledge_probes.py --model results/demo/knowledge/base/model [--passages 6]
        [--start-with-title true|false]   (default: the config's knowledge.self_edits.start_with_title)

Passages are generated with a seed the pretraining corpus never uses, so no fact was seen before.
"""

from __future__ import annotations

import argparse
import random

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/demo/knowledge/base/model")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--passages", type=int, default=6)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--start-with-title", choices=["true", "false"], default=None,
                        help="force the title as each self-edit's first words (default: the config's setting)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="the policy's sampling temperature (default: the config's); 0 samples greedily")
    parser.add_argument("--copy-only", action="store_true", help="the copy probe alone (seconds, not minutes)")
    args = parser.parse_args()

    from sealflow.backends import BackendSettings, make_backend
    from sealflow.devices import resolve_placement
    from sealflow.knowledge.copy_probe import copy_statistics
    from sealflow.knowledge.grading import clean_prediction, grade
    from sealflow.knowledge.prompts import question_prompt
    from sealflow.knowledge.sampling import SamplingSettings, sample_whole_self_edits
    from sealflow.knowledge.inner import training_texts
    from sealflow.lora import LoraSettings, TrainExample, TrainSettings, train_lora
    from sealflow.modeling import load_model, load_tokenizer
    from sealflow.worldgen import generate_entries

    cfg = yaml.safe_load(open(args.config))["knowledge"]
    placement = resolve_placement("cpu")
    tok, model = load_tokenizer(args.model), load_model(args.model, placement)
    entries = generate_entries(args.passages, args.seed)

    # ---- copy probe
    backend = make_backend(args.model, placement, BackendSettings(name="hf"), model=model, tokenizer=tok)
    se = {**cfg["self_edits"], "k": 3}
    if args.start_with_title is not None:
        se["start_with_title"] = args.start_with_title == "true"
    if args.temperature is not None:
        se["temperature"] = args.temperature
    sampling = SamplingSettings.from_config(se)
    _, _, outs = sample_whole_self_edits(backend, tok, [e.passage for e in entries], range(len(entries)), sampling)
    stats = copy_statistics([e.passage for e in entries], outs)  # what every build records (meta.json)
    # Two more views of the same lines: the entity's name anywhere, and a leading subject with a value.
    lines = [(e, line.strip()) for e, texts in zip(entries, outs) for t in texts for line in t.splitlines() if line.strip()]
    n = max(1, len(lines))
    names = sum(e.passage.title.split()[0].lower() in line.lower() for e, line in lines) / n
    both = sum(line.startswith(e.passage.title) and any(q.answer.lower() in line.lower() for q in e.passage.questions)
               for e, line in lines)
    print(f"copy probe ({stats.lines} self-edit lines, start_with_title {sampling.start_with_title}): entity name in "
          f"{names:.2f} of lines, starting with it {stats.subject_first:.2f}, an answer value in "
          f"{stats.value_copied:.2f}, both a leading subject and an answer {both / n:.2f}, "
          f"mean faithfulness {stats.faithfulness:.2f}")
    print("  example:", repr(outs[0][0][:160]))

    if args.copy_only:
        return

    # ---- storage probe
    def accuracy(m, passage) -> float:
        scores = []
        for q in passage.questions:
            enc = tok(question_prompt(q.question), return_tensors="pt", add_special_tokens=False)
            out = m.generate(**enc, max_new_tokens=cfg["scoring"]["max_new_tokens"], do_sample=False,
                             pad_token_id=tok.pad_token_id)
            scores.append(grade(clean_prediction(tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)),
                                q.answers, "em"))
        return sum(scores) / len(scores)

    il = cfg["inner_loop"]
    lora = LoraSettings.from_config({"dropout": 0.0, **il["lora"]})
    recipes = {"config": TrainSettings(epochs=il["epochs"], lr=il["lr"], batch_size=il["batch_size"]),
               "paper (batch 1, 10 epochs)": TrainSettings(epochs=10, lr=il["lr"], batch_size=1)}
    rng = random.Random(0)
    texts_of = {
        "passage": lambda e: training_texts(e.passage, "", "lines", True).texts,
        "passage + restatements": lambda e: training_texts(e.passage, "\n".join(e.restatements(rng)), "lines",
                                                           True).texts,
        "passage + explicit lines": lambda e: training_texts(e.passage, "\n".join(e.explicit_lines()), "lines",
                                                             True).texts,
        "questions and answers": lambda e: [f"{question_prompt(q.question)} {q.answer}" for q in e.passage.questions],
    }
    base = sum(accuracy(model, e.passage) for e in entries) / len(entries)
    print(f"storage probe (closed-book exact match on {sum(len(e.passage.questions) for e in entries)} questions)")
    print(f"  no training: {base:.2f}")
    for recipe, settings in recipes.items():
        for name, texts in texts_of.items():
            scores = []
            for e in entries:
                peft_model, _ = train_lora(model, tok, [TrainExample(t) for t in texts(e)], lora, settings)
                scores.append(accuracy(peft_model, e.passage))
                model = peft_model.unload()
            print(f"  {recipe:28s} {name:24s} {sum(scores) / len(scores):.2f}")


if __name__ == "__main__":
    main()
