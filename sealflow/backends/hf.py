"""Hugging Face ``generate`` backend, with LoRA adapters through peft."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from typing import Iterator, Sequence

import torch
from peft import PeftModel

from ..devices import Placement
from ..modeling import load_model, load_tokenizer
from .base import BackendSettings, GenerationRequest, apply_stop, draw_choices

log = logging.getLogger(__name__)


class HFBackend:
    """Batches requests that share an adapter and sampling settings into one ``generate``."""

    def __init__(self, model_path: str, placement: Placement, settings: BackendSettings | None = None,
                 model: torch.nn.Module | None = None, tokenizer=None):
        self.settings = settings or BackendSettings()
        self.placement = placement
        self.tokenizer = tokenizer or load_tokenizer(model_path)
        self.tokenizer.padding_side = "left"
        self.model = model if model is not None else load_model(model_path, placement)
        self._peft: PeftModel | None = None
        self._loaded: dict[str, str] = {}  # adapter path -> adapter name

    # -- adapters -------------------------------------------------------------------
    @contextlib.contextmanager
    def _active(self, path: str | None) -> Iterator[torch.nn.Module]:
        """The model with adapter ``path`` on, or the base model with every adapter off.

        ``PeftModel.from_pretrained`` injects LoRA layers into ``self.model`` in place, so
        once any adapter is loaded a base request must switch them off explicitly; else it
        would be answered with the last adapter, whatever the order of the requests.
        """
        if path is not None:
            yield self._use_adapter(path)
        elif self._peft is None:
            yield self.model
        else:
            with self._peft.disable_adapter():
                yield self._peft

    def _use_adapter(self, path: str) -> torch.nn.Module:
        if path not in self._loaded:
            name = f"a{len(self._loaded)}"
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            else:
                self._peft.load_adapter(path, adapter_name=name)
            self._loaded[path] = name
        self._peft.set_adapter(self._loaded[path])
        return self._peft

    def _drop_adapters(self) -> None:
        """Remove every LoRA layer so memory stays flat across shards."""
        if self._peft is not None:
            self.model = self._peft.unload()
            self._peft = None
            self._loaded.clear()

    # -- generation -----------------------------------------------------------------
    @torch.no_grad()
    def _run(self, model: torch.nn.Module, prompts: list[str], request: GenerationRequest) -> list[list[str]]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.placement.device) for k, v in enc.items()}
        sample = not request.greedy
        # greedy decoding has one answer per prompt: generate it once and repeat it n times
        # (transformers refuses num_return_sequences > 1 without sampling; vLLM returns n copies)
        n_generated = request.n if sample else 1
        kwargs = dict(max_new_tokens=request.max_new_tokens, do_sample=sample, num_return_sequences=n_generated,
                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        if sample:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if request.stop:  # a row ends at its first stop string, not after the whole token budget
            kwargs.update(stop_strings=list(request.stop), tokenizer=self.tokenizer)
        torch.manual_seed(request.seed)
        out = model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        texts = [apply_stop(t, request.stop) for t in texts]
        per_prompt = [texts[i * n_generated : (i + 1) * n_generated] for i in range(len(prompts))]
        return per_prompt if sample else [rows * request.n for rows in per_prompt]

    @torch.no_grad()
    def choice_logprobs(self, model: torch.nn.Module, prompt: str, choices: Sequence[str]) -> list[float]:
        """Total log-probability of each choice after ``prompt`` (choices tokenized on their
        own and appended, as a guided decoder appends their tokens)."""
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        choice_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        width = len(prompt_ids) + max(len(ids) for ids in choice_ids)
        pad = self.tokenizer.pad_token_id or 0
        rows = [prompt_ids + ids + [pad] * (width - len(prompt_ids) - len(ids)) for ids in choice_ids]
        mask = [[1] * (len(prompt_ids) + len(ids)) + [0] * (width - len(prompt_ids) - len(ids)) for ids in choice_ids]
        device = self.placement.device
        logits = model(input_ids=torch.tensor(rows, device=device),
                       attention_mask=torch.tensor(mask, device=device)).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        totals = []
        for row, ids in enumerate(choice_ids):
            # token t of the choice is predicted at position (len(prompt) + t - 1)
            positions = torch.arange(len(prompt_ids) - 1, len(prompt_ids) - 1 + len(ids), device=device)
            totals.append(float(logprobs[row, positions, torch.tensor(ids, device=device)].sum()))
        return totals

    def _choose(self, request: GenerationRequest) -> list[str]:
        with self._active(request.adapter) as model:
            scores = self.choice_logprobs(model, request.prompt, request.choices)
        picks = draw_choices(scores, request.n, request.temperature, request.top_p, request.seed)
        return [request.choices[i] for i in picks]

    def _greedy_with_adapters(self, requests: Sequence[GenerationRequest], results: list) -> None:
        """Answer every greedy request in shared batches, each row with its own adapter (or none).

        One ``generate`` per batch over many adapters (``multi_lora.generate_batched``)
        instead of one per adapter: a scoring shard's questions for all its adapters at
        once. Only when every adapter has the same LoRA shape; else the per-adapter path.
        """
        import json
        from pathlib import Path

        picked = [i for i, r in enumerate(requests) if r.greedy and not r.choices]
        paths = list(dict.fromkeys(requests[i].adapter for i in picked if requests[i].adapter))
        if not paths:
            return
        shapes = {json.dumps({k: sorted(v) if isinstance(v, list) else v for k, v in json.loads(
            (Path(p) / "adapter_config.json").read_text()).items() if k in ("r", "lora_alpha", "target_modules")},
            sort_keys=True) for p in paths}
        if len(shapes) != 1:
            return
        from ..multi_lora import generate_batched, load_adapter_weights
        from ..settings import LoraSettings

        shape = json.loads(shapes.pop())
        lora = LoraSettings(r=shape["r"], alpha=shape["lora_alpha"], target_modules=tuple(shape["target_modules"]))
        weights = [load_adapter_weights(p, self.placement.device) for p in paths]
        slot = {p: s for s, p in enumerate(paths)}
        by_budget: dict[tuple, list[int]] = defaultdict(list)
        for i in picked:
            by_budget[(requests[i].max_new_tokens, requests[i].stop)].append(i)
        for (max_new, stop), indices in by_budget.items():
            rows = [(slot.get(requests[i].adapter), requests[i].prompt) for i in indices]
            texts = generate_batched(self.model, self.tokenizer, lora, weights, rows, max_new_tokens=max_new,
                                     batch_size=self.settings.batch_size, stop=stop)
            for i, text in zip(indices, texts):
                results[i] = [apply_stop(text, stop)] * requests[i].n  # greedy: n identical answers

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        results: list[list[str] | None] = [None] * len(requests)
        self._greedy_with_adapters(requests, results)
        # Requests that differ only in seed share a batch: one ``generate`` call per batch is
        # what makes sampling fast. The batch is seeded with its first request's seed, so
        # results are reproducible for the same shard (but depend on how it is batched).
        groups: dict[tuple, list[int]] = defaultdict(list)
        guided: list[int] = []
        for index, req in enumerate(requests):
            if results[index] is not None:
                continue  # answered above, with its adapter, in a shared batch
            if req.choices:
                guided.append(index)
            else:
                groups[(req.adapter, req.n, req.max_new_tokens, req.temperature, req.top_p, req.stop)].append(index)
        try:
            for index in guided:
                results[index] = self._choose(requests[index])
            for key, indices in groups.items():
                size = max(1, self.settings.batch_size // max(1, key[1]))
                with self._active(key[0]) as model:
                    for start in range(0, len(indices), size):
                        chunk = indices[start : start + size]
                        outs = self._run(model, [requests[i].prompt for i in chunk], requests[chunk[0]])
                        for i, texts in zip(chunk, outs):
                            results[i] = texts
        finally:
            self._drop_adapters()
        return [r if r is not None else [] for r in results]

    def close(self) -> None:
        self._drop_adapters()
        self.model = None
