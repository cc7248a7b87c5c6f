"""The ReST-EM policy update: SFT on kept (prompt, self-edit) pairs, merged into new weights.

The loss covers completion tokens only (the prompt is masked), the LoRA is merged so
the next policy is a plain model folder that ``from_pretrained`` and vLLM both load.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Mapping, Sequence

from .atomic import atomic_dir
from .devices import Placement
from .lora import LoraSettings, TrainExample, TrainSettings, train_lora
from .modeling import load_model, load_tokenizer, resolve_model_path

log = logging.getLogger(__name__)


def sft_examples(rows: Sequence[Mapping], replay: Sequence[str] = ()) -> list[TrainExample]:
    """Kept (prompt, self-edit) pairs, then ``replay`` documents as plain text (no prompt: every token learnt)."""
    kept = [TrainExample(completion=str(r["completion"]), prompt=str(r["prompt"])) for r in rows]
    return kept + [TrainExample(completion=doc) for doc in replay]


def replay_documents(corpus: Sequence[str], n: int, seed: int, round_: int) -> list[str]:
    """``n`` pretraining documents for round ``round_``'s update: a fresh draw each round, the same on a rerun."""
    if n > len(corpus):
        raise ValueError(f"sft.replay={n} exceeds the {len(corpus)} documents of the pretraining corpus")
    return random.Random(f"replay:{seed}:{round_}").sample(list(corpus), n)


def update_policy(policy: str, rows: Sequence[Mapping], lora: LoraSettings, settings: TrainSettings,
                  out_dir: str | Path, placement: Placement, replay: Sequence[str] = ()) -> dict:
    """Write the next policy to ``out_dir``; with no rows it is a copy of ``policy`` (replay alone is no update)."""
    if not rows:
        log.warning("the filter kept no self-edits: the next policy equals the current one")
        with atomic_dir(out_dir) as tmp:
            shutil.copytree(policy, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("meta.json"))
        return {"examples": 0, "steps": 0, "copied_from": str(policy)}
    tokenizer = load_tokenizer(policy)
    model = load_model(policy, placement)
    examples = sft_examples(rows, replay)
    peft_model, stats = train_lora(model, tokenizer, examples, lora, settings, mask_prompt=True)
    if stats.steps == 0:
        raise ValueError(f"the policy update has {len(examples)} kept self-edits but nothing to learn from them: "
                         f"every completion is cut away at sft.max_seq_len={settings.max_seq_len}; raise it")
    merged = peft_model.merge_and_unload()
    merged.eval()
    tokenizer.padding_side = "right"  # saved default; generation code sets left padding itself
    with atomic_dir(out_dir) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    log.info("policy update: %d examples (%d replayed documents), %d steps, loss %s -> %s", len(examples),
             len(replay), stats.steps, stats.first_loss, stats.final_loss)
    return {**stats.summary(), "base": resolve_model_path(policy), "replayed": len(replay)}
