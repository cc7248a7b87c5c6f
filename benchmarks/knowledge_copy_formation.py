"""Does a knowledge base model copy its passage? Pretrain a variant, then probe it.

The probe, on 20 fresh passages (a seed no corpus uses): the faithful self-edit (every fact
as a sentence naming its entity) is fed after the self-edit prompt, and "copied" is the
share of its name tokens that occur in the prompt and that the model predicts exactly; then
greedy self-edits, and the share of their lines that start with the passage's subject.
Variants reproduce the README's table, e.g.

    python benchmarks/knowledge_copy_formation.py                       # the default build
    python benchmarks/knowledge_copy_formation.py --no-name-lists --vocab 2500   # before the fix
    python benchmarks/knowledge_copy_formation.py --layers 2 --steps 1600
    python benchmarks/knowledge_copy_formation.py --no-name-lists --vocab 2500 --warmup-steps 300   # repeats first
    python benchmarks/knowledge_copy_formation.py --no-name-lists --vocab 2500 --mix 0.25   # a quarter of batches
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import torch

from sealflow.base_model import BuildSettings, make_model, train_tokenizer
from sealflow.knowledge.corpus import knowledge_corpus
from sealflow.knowledge.prompts import self_edit_prompt
from sealflow.worldgen import NAMES, generate_entries


def repeated_batch(rng, tok, name_ids, lines, batch, length):
    """Rows of random names or two random sentences, then the same again: continued only by looking back."""
    eos, newline = tok.eos_token_id, tok("\n", add_special_tokens=False)["input_ids"]
    rows = []
    for _ in range(batch):
        seq: list[int] = []
        while len(seq) < length:
            if rng.random() < 0.5:
                chunk = [rng.choice(name_ids) for _ in range(rng.randint(4, 12))]
            else:
                chunk = tok("\n".join(rng.sample(lines, 2)), add_special_tokens=False)["input_ids"]
            seq += chunk + newline + chunk + [eos]
        rows.append(seq[:length])
    return torch.tensor(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--lr", type=float, default=6e-3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=192)
    p.add_argument("--vocab", type=int, default=3000)
    p.add_argument("--passages", type=int, default=3000)
    p.add_argument("--no-name-lists", action="store_true", help="the corpus without its name lists (before the fix)")
    p.add_argument("--warmup-steps", type=int, default=0, help="steps of repeated sequences before the corpus")
    p.add_argument("--mix", type=float, default=0.0, help="share of corpus batches replaced by repeated sequences")
    a = p.parse_args()

    torch.manual_seed(0)
    rng = random.Random(0)
    corpus = knowledge_corpus(a.passages, 0, name_lists=not a.no_name_lists)
    tok = train_tokenizer(corpus, "qwen2", a.vocab)
    model = make_model(BuildSettings(architecture="qwen2", vocab_size=a.vocab, hidden_size=a.hidden,
                                     num_layers=a.layers, num_heads=4, num_kv_heads=2,
                                     intermediate_size=3 * a.hidden), tok)
    eos = tok.eos_token_id
    ids, starts = [], []
    for text in corpus:
        starts.append(len(ids))
        ids += tok(text, add_special_tokens=False)["input_ids"] + [eos]
    data = torch.tensor(ids)
    starts = [s for s in starts if s < len(ids) - a.seq - 1]
    name_ids = sorted({tok(form, add_special_tokens=False)["input_ids"][0] for n in NAMES for form in (n, " " + n)})
    lines = [line for e in generate_entries(400, 777777, subjects="corpus") for line in e.explicit_lines()]

    total = a.warmup_steps + a.steps
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.1 + 0.45 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    started = time.time()
    model.train()
    for step in range(total):
        if step < a.warmup_steps or rng.random() < a.mix:
            batch = repeated_batch(rng, tok, name_ids, lines, 32 if step < a.warmup_steps else a.batch,
                                   64 if step < a.warmup_steps else a.seq)
        else:
            batch = torch.stack([data[s:s + a.seq] for s in (rng.choice(starts) for _ in range(a.batch))])
        model(input_ids=batch, labels=batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad()
    seconds = time.time() - started

    model.eval()
    hits = counted = starting = lines_seen = 0
    with torch.no_grad():
        for entry in generate_entries(20, 4242):
            prompt = tok(self_edit_prompt("implications", entry.passage, tok), add_special_tokens=False)["input_ids"]
            faithful = tok("\n".join(entry.explicit_lines()), add_special_tokens=False)["input_ids"]
            predicted = model(input_ids=torch.tensor([prompt + faithful])).logits[0, len(prompt) - 1:-1].argmax(-1)
            for target, guess in zip(faithful, predicted.tolist()):
                if target in name_ids and target in prompt:
                    counted += 1
                    hits += target == guess
            out = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=80, do_sample=False, pad_token_id=eos)
            lines = [l.strip() for l in tok.decode(out[0, len(prompt):], skip_special_tokens=True).split("\n") if l.strip()][:5]
            lines_seen += len(lines)
            starting += sum(line.startswith(entry.passage.title) for line in lines)
    print(json.dumps({**vars(a), "pretrain_s": round(seconds), "names_copied": round(hits / max(1, counted), 3),
                      "greedy_lines_naming_subject": round(starting / max(1, lines_seen), 3)}))


if __name__ == "__main__":
    main()
