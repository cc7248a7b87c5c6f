"""Build a tiny base model offline: tokenizer, architecture, brief pretraining.

The architectures match the paper's models (Qwen2 for knowledge incorporation, Llama
for ARC), so LoRA target module names and chat templates are the real ones, and
the saved folder loads with the same ``from_pretrained`` code as a hub id.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from .atomic import atomic_dir

log = logging.getLogger(__name__)

# Chat templates in the style of the real models, so chat-prompt code paths are exercised.
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
_SPECIALS = {
    "qwen2": {"eos": "<|endoftext|>", "bos": None, "extra": ["<|im_start|>", "<|im_end|>"], "template": QWEN2_CHAT_TEMPLATE},
    "llama": {
        "eos": "<|eot_id|>",
        "bos": "<|begin_of_text|>",
        "extra": ["<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"],
        "template": LLAMA3_CHAT_TEMPLATE,
    },
}


@dataclass
class BuildSettings:
    architecture: str = "qwen2"  # qwen2 | llama
    vocab_size: int = 2000
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 1024
    corpus_passages: int = 1500
    pretrain_steps: int = 700
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 3e-3
    windows: str = "anywhere"  # anywhere | documents: where pretraining windows start
    corpus: str = "synthetic"  # synthetic | organism (few-shot only): which corpus stages.base builds
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict) -> "BuildSettings":
        known = {k: v for k, v in cfg.items() if k in cls.__dataclass_fields__ and k != "extra"}
        return cls(**known, extra={k: v for k, v in cfg.items() if k not in cls.__dataclass_fields__})


def train_tokenizer(texts: Sequence[str], architecture: str, vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE on the project's own corpus, wrapped as a transformers tokenizer."""
    if architecture not in _SPECIALS:
        raise ValueError(f"base_model.build.architecture must be one of {sorted(_SPECIALS)}, got {architecture!r}")
    spec = _SPECIALS[architecture]
    specials = [t for t in [spec["bos"], spec["eos"], *spec["extra"]] if t]
    tok = Tokenizer(models.BPE())
    # One token per digit, as Qwen2.5's tokenizer splits numbers: an ARC grid cell is
    # then exactly one token, which a tiny model needs to copy and move cells around.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec["bos"],
        eos_token=spec["eos"],
        pad_token=spec["eos"],
        additional_special_tokens=spec["extra"],
    )
    wrapped.chat_template = spec["template"]
    return wrapped


def make_model(settings: BuildSettings, tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_kv_heads,
        max_position_embeddings=settings.max_position_embeddings,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    if settings.architecture == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common, bos_token_id=tokenizer.eos_token_id))
    return LlamaForCausalLM(LlamaConfig(**common, bos_token_id=tokenizer.bos_token_id))


def _packed_batches(ids: list[int], seq_len: int, batch_size: int, steps: int, rng: random.Random,
                    doc_starts: list[int] | None = None):
    """Random windows of one long token stream: simple, fast pretraining batches.

    With ``doc_starts``, windows start at a document's first token. A window that starts
    anywhere often holds a self-edit without the passage it is about, which teaches a model
    to write about whatever it likes instead of copying from its context.
    """
    top = len(ids) - seq_len - 1
    if top <= 0:
        raise ValueError(f"pretraining corpus has {len(ids)} tokens, fewer than seq_len={seq_len}")
    starts_from = [s for s in doc_starts if s < top] if doc_starts is not None else None
    data = torch.tensor(ids, dtype=torch.long)
    for _ in range(steps):
        starts = [rng.choice(starts_from) if starts_from else rng.randrange(top) for _ in range(batch_size)]
        yield torch.stack([data[s : s + seq_len] for s in starts])


def pretrain(model: torch.nn.Module, tokenizer, texts: Sequence[str], settings: BuildSettings, seed: int) -> list[float]:
    """Next-token pretraining on the packed corpus (cosine schedule); returns the loss curve."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    ids: list[int] = []
    doc_starts: list[int] = []
    eos = tokenizer.eos_token_id
    for text in texts:
        doc_starts.append(len(ids))
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(eos)
    if settings.windows not in ("anywhere", "documents"):
        raise ValueError(f"base_model.build.windows must be 'anywhere' or 'documents', got {settings.windows!r}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    warmup = max(1, settings.pretrain_steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, settings.pretrain_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    losses: list[float] = []
    started = time.time()
    for step, batch in enumerate(_packed_batches(ids, settings.seq_len, settings.batch_size, settings.pretrain_steps, rng,
                                                       doc_starts if settings.windows == "documents" else None)):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == settings.pretrain_steps - 1:
            log.info("pretrain step %d/%d loss %.3f (%.0f s)", step, settings.pretrain_steps, losses[-1], time.time() - started)
    model.eval()
    return losses


def build_base_model(out_dir: str | Path, settings: BuildSettings, corpus: Sequence[str], seed: int) -> dict:
    """Train tokenizer and model on ``corpus`` and save both to ``out_dir`` atomically."""
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(corpus, settings.architecture, settings.vocab_size)
    model = make_model(settings, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built %s with %d parameters, vocab %d", settings.architecture, n_params, len(tokenizer))
    losses = pretrain(model, tokenizer, corpus, settings, seed)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    tail = losses[-20:]
    return {"parameters": n_params, "vocab_size": len(tokenizer), "final_loss": sum(tail) / max(1, len(tail)),
            "first_loss": losses[0] if losses else None, "steps": len(losses)}
