"""Batched multi-LoRA inner loop: train many self-edits' adapters in one forward/backward.

The sequential inner loop (:func:`sealflow.lora.train_lora` per plan) runs one tiny
batch per step through the whole model, so a shard of small self-edits is bound by
per-step overhead, not by arithmetic. Here G adapters share the frozen base model:

* every targeted ``nn.Linear`` gets a forward hook adding ``scale * B_g A_g x`` to the
  rows of adapter ``g`` (``A``/``B`` stacked over adapters, ``scale = alpha / r``); the
  hooks are removed afterwards and the model is left exactly as it was;
* batched step ``t`` runs micro-batch ``t`` of every adapter that still has one, right
  padded (the attention mask hides padding); its rows are split into a few width
  buckets, one forward/backward each, when that pads fewer tokens than it costs;
* the loss is the sum over adapters of each adapter's own mean token loss (computed
  from the logits, label tokens only), so each adapter's gradient is the one it would
  get alone;
* torch's AdamW with one parameter group per adapter (its lr and step count) and an
  active mask: an adapter that has finished, or is inside a ``grad_accum`` window, is
  not touched at all.

Initialisation (bit for bit), batch order (the same ``random.Random(seed)`` shuffles)
and optimizer arithmetic follow the sequential path per adapter, so the trained
weights equal ``train_lora``'s up to float rounding from padding and batching (the
tests check atol 1e-5 / rtol 1e-4 in float32). LoRA dropout must be 0.

Use from a shard job (``inner_loop.run_shard``), for the plans whose adapters are not
kept::

    results = train_adapters_batched(model, tokenizer, plans, lora, max_group=16)
    with adapter_writer(model, lora) as write:
        for plan, (weights, stats) in zip(plans, results):
            summary = stats.summary() if plan.valid else {"steps": 0}
            meta = write(weights, plan.out_dir, {"edit_id": plan.edit_id, ..., **summary})

``write`` is :func:`sealflow.lora.save_adapter` on a peft wrapper holding ``weights``:
the same folder (adapter_config.json, adapter_model.safetensors, meta.json with its
sha256), loadable with ``PeftModel.from_pretrained``. Plans with ``valid=False`` are not
trained: their weights are the seeded initial LoRA (``B = 0``), the same inert adapter
the sequential shard writes, so the caller need not filter them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from peft import PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

from .inner_loop import TrainPlan
from .lora import LoraSettings, TrainSettings, TrainStats, _batches, encode_for_training, save_adapter

log = logging.getLogger(__name__)

__all__ = [
    "AdapterWeights", "StackedAdamW", "adapter_writer", "generate_batched", "initial_weights", "load_adapter_weights",
    "save_adapter_weights", "to_peft_model", "train_adapters_batched",
]

PEFT_PREFIX = "base_model.model."  # keys of a saved peft state dict: PEFT_PREFIX + module + ".lora_A.weight"
AdapterWeights = dict  # {"base_model.model.<module>.lora_A.weight": [r, in], "....lora_B.weight": [out, r]}


# -- model state --------------------------------------------------------------------
@contextmanager
def _preserved(model: torch.nn.Module):
    """Restore what wrapping with peft changes on the base model: ``requires_grad``
    flags, train/eval modes and the ``peft_config`` attribute peft leaves behind."""
    grads = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    had_config = "peft_config" in model.__dict__
    old_config = model.__dict__.get("peft_config")
    try:
        yield
    finally:
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, flag in modes:
            m.training = flag
        if had_config:
            model.__dict__["peft_config"] = old_config
        else:
            model.__dict__.pop("peft_config", None)


def _lora_layers(peft_model: PeftModel) -> list[tuple[str, LoraLayer]]:
    """(module path in the base model, LoRA layer) in module order."""
    found = []
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer):
            if not name.startswith(PEFT_PREFIX):
                raise RuntimeError(f"unexpected peft module path {name!r}")
            found.append((name[len(PEFT_PREFIX):], module))
    if not found:
        raise ValueError("no LoRA layer was created: check lora.target_modules against the model's module names")
    return found


def _key(module: str, which: str) -> str:
    return f"{PEFT_PREFIX}{module}.lora_{which}.weight"


def initial_weights(model: torch.nn.Module, lora: LoraSettings, seed: int) -> AdapterWeights:
    """The LoRA ``train_lora`` would start from with this seed (``torch.manual_seed(seed)``
    then ``get_peft_model``): kaiming-uniform ``A``, zero ``B``, bit for bit."""
    with _preserved(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, lora.peft_config())
        weights: AdapterWeights = {}
        for module, layer in _lora_layers(peft_model):
            weights[_key(module, "A")] = layer.lora_A["default"].weight.detach().clone()
            weights[_key(module, "B")] = layer.lora_B["default"].weight.detach().clone()
        peft_model.unload()
    return weights


class _InitReplay:
    """Seeded initial weights without wrapping the model once per adapter.

    peft draws, per target module in module order, ``nn.Linear(in, r)`` and
    ``nn.Linear(r, out)`` default inits and then re-draws ``A`` with kaiming-uniform
    (``B`` is zeroed), on the CPU generator, before moving the weights to the base
    layer's device and dtype. Replaying those draws gives the same tensors at a
    fraction of the cost; the replay is checked bit for bit against peft on the first
    seed, and peft itself is used for every seed if they ever differ.
    """

    def __init__(self, model: torch.nn.Module, lora: LoraSettings, first_seed: int):
        self.model, self.lora = model, lora
        self.reference = initial_weights(model, lora, first_seed)
        self.shapes = []
        for key, tensor in self.reference.items():
            if key.endswith(".lora_A.weight"):
                module = key[len(PEFT_PREFIX): -len(".lora_A.weight")]
                base = model.get_submodule(module).weight
                out_features = self.reference[_key(module, "B")].shape[0]
                self.shapes.append((module, tensor.shape[1], out_features, base.dtype, tensor.dtype, tensor.device))
        replayed = self._replay(first_seed)
        self.exact = set(replayed) == set(self.reference) and all(
            torch.equal(replayed[k], v) for k, v in self.reference.items())
        if not self.exact:
            log.warning("peft's LoRA init could not be replayed exactly; wrapping the model once per adapter")

    def _replay(self, seed: int) -> AdapterWeights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            weights: AdapterWeights = {}
            for module, fan_in, fan_out, base_dtype, dtype, device in self.shapes:
                r = self.lora.r
                for shape in ((r, fan_in), (fan_out, r)):  # the nn.Linear constructors' draws
                    torch.nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5))
                a = torch.empty(r, fan_in)
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                weights[_key(module, "A")] = a.to(device=device, dtype=base_dtype).to(dtype)
                weights[_key(module, "B")] = torch.zeros(fan_out, r, device=device, dtype=dtype)
        return weights

    def __call__(self, seed: int) -> AdapterWeights:
        return self._replay(seed) if self.exact else initial_weights(self.model, self.lora, seed)


def to_peft_model(model: torch.nn.Module, lora: LoraSettings, weights: AdapterWeights | None) -> PeftModel:
    """Wrap ``model`` with a LoRA holding ``weights``, e.g. to ``save_adapter`` it or to
    compare with a sequentially trained one; ``unload()`` it afterwards."""
    with torch.random.fork_rng(devices=[]):  # peft's (overwritten) init must not move the caller's RNG
        peft_model = get_peft_model(model, lora.peft_config())
    if weights is not None:
        _load_into(_lora_layers(peft_model), weights)
    return peft_model


def _load_into(layers: list[tuple[str, LoraLayer]], weights: AdapterWeights) -> None:
    expected = {_key(m, w) for m, _ in layers for w in "AB"}
    if expected != set(weights):
        raise ValueError(f"adapter weights do not match the model's LoRA layers: missing "
                         f"{sorted(expected - set(weights))[:3]}, unexpected {sorted(set(weights) - expected)[:3]}")
    with torch.no_grad():
        for module, layer in layers:
            layer.lora_A["default"].weight.copy_(weights[_key(module, "A")])
            layer.lora_B["default"].weight.copy_(weights[_key(module, "B")])


@contextmanager
def adapter_writer(model: torch.nn.Module, lora: LoraSettings):
    """Wrap ``model`` with peft once and yield ``write(weights, out_dir, meta) -> record``,
    which saves each adapter with :func:`sealflow.lora.save_adapter` (the same folder,
    files and ``meta.json`` as the sequential path). The model is restored on exit."""
    with _preserved(model):
        peft_model = to_peft_model(model, lora, None)
        layers = _lora_layers(peft_model)
        try:
            def write(weights: AdapterWeights, out_dir: str | Path, meta: dict) -> dict:
                _load_into(layers, weights)
                return save_adapter(peft_model, out_dir, meta)

            yield write
        finally:
            peft_model.unload()


def save_adapter_weights(model: torch.nn.Module, lora: LoraSettings, weights: AdapterWeights, out_dir: str | Path,
                         meta: dict) -> dict:
    """Save one adapter's weights as a peft folder; see :func:`adapter_writer` for many."""
    with adapter_writer(model, lora) as write:
        return write(weights, out_dir, meta)


def load_adapter_weights(path: str | Path, device: torch.device | str | None = None) -> AdapterWeights:
    """The weights of a saved peft LoRA folder, in the format the functions here use."""
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "adapter_model.safetensors"), device=str(device or "cpu"))


# -- stacked LoRA forward -----------------------------------------------------------
class _Rows:
    """Which stacked adapter each group of rows uses: ``slots`` (on the device) and the
    same as Python ints; ``unique`` when no slot repeats, ``identity`` when slots are
    ``0..G-1`` in order."""

    def __init__(self, slots: Sequence[int], size: int, device: torch.device):
        self.list = list(slots)
        self.tensor = torch.tensor(self.list, device=device)
        self.unique = len(set(self.list)) == len(self.list)
        self.identity = self.list == list(range(size))


class _Stack:
    """The LoRA weights of G adapters in one ``[G, P]`` buffer, one contiguous row per
    adapter holding every module's ``A`` and ``B`` transposed (``[in, r]``, ``[r, out]``),
    plus (when trained) a gradient buffer of the same shape.

    * One row per adapter lets the optimizer update each adapter as a single tensor (a
      fused AdamW over 56 small tensors per adapter spent most of its time in per-tensor
      overhead: ~38 ms against ~3 ms per step for 16 adapters on 2 CPU cores).
    * Transposed storage makes ``x @ A^T`` a plain ``bmm`` whose weight gradient comes
      out contiguous; the products are bit-identical to ``F.linear``'s.
    * The hooks gather rows through :class:`_GatherRows`, whose backward adds straight
      into the gradient rows: backward never builds a whole ``[G, ...]`` gradient per
      module, as ``index_select``'s own backward does (zero-fill plus add, every time).
    """

    def __init__(self, model: torch.nn.Module, adapters: Sequence[AdapterWeights], device: torch.device,
                 requires_grad: bool):
        first = adapters[0]
        self.names = [k[len(PEFT_PREFIX): -len(".lora_A.weight")] for k in first if k.endswith(".lora_A.weight")]
        self.keys = [_key(name, which) for name in self.names for which in "AB"]
        if set(self.keys) != set(first) or any(set(w) != set(first) for w in adapters):
            raise ValueError("all adapters must hold lora_A and lora_B of the same modules")
        self.size = len(adapters)
        self.layout: dict[str, tuple[int, torch.Size]] = {}  # key -> (offset, stored shape = peft shape transposed)
        offset = 0
        for key in self.keys:
            shape = first[key].t().shape
            self.layout[key] = (offset, shape)
            offset += shape.numel()
        self.flat = torch.stack([torch.cat([w[k].t().reshape(-1) for k in self.keys]) for w in adapters]).to(device)
        self.flat_grad = torch.zeros_like(self.flat) if requires_grad else None
        # requires_grad only makes autograd run _GatherRows.backward; no .grad is ever stored on them.
        self.weight = {k: self._view(self.flat, k).requires_grad_(requires_grad) for k in self.keys}
        self.grad = {k: self._view(self.flat_grad, k) for k in self.keys} if requires_grad else {}
        self.modules = {name: model.get_submodule(name) for name in self.names}

    def _view(self, buffer: torch.Tensor, key: str) -> torch.Tensor:
        offset, shape = self.layout[key]
        return buffer[:, offset : offset + shape.numel()].view(buffer.shape[0], *shape)

    def gather(self, key: str, rows: _Rows) -> torch.Tensor:
        if not self.grad:
            return self.weight[key].index_select(0, rows.tensor)
        return _GatherRows.apply(self.weight[key], self.grad[key], rows)

    def weights(self, slot: int) -> AdapterWeights:
        return {k: v[slot].detach().t().contiguous() for k, v in self.weight.items()}


class _GatherRows(torch.autograd.Function):
    """``weight[slots]`` whose backward accumulates into ``grad_buffer[slots]`` in place
    (the same sums AccumulateGrad would form) and returns no gradient for ``weight``.
    The buffer rows are strided views (one row of the ``[G, P]`` buffer per adapter), where
    ``index_add_`` is ~10x slower than adding contiguous slices, so it is used only for
    repeated slots."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, grad_buffer: torch.Tensor, rows: _Rows) -> torch.Tensor:
        ctx.grad_buffer, ctx.rows = grad_buffer, rows
        return weight.index_select(0, rows.tensor)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        buffer, rows = ctx.grad_buffer, ctx.rows
        grad_out = grad_out.to(buffer.dtype)
        if rows.identity:
            buffer.add_(grad_out)
        elif rows.unique:
            for i, slot in enumerate(rows.list):
                buffer[slot].add_(grad_out[i])
        else:
            buffer.index_add_(0, rows.tensor, grad_out)
        return None, None, None


class _StackedLora:
    """Forward hooks on the target linears adding each row's own adapter delta.

    ``set_rows`` gives the adapter slot of every row. The delta is a gather of the rows'
    ``A``/``B`` and two ``bmm``; when every adapter has the same number of rows ``k``
    (batch 1, the paper's setting, or equal batch sizes) the rows are viewed as
    ``[G', k*T, in]`` and each adapter's weights are gathered once instead of per row.

    Why not a loop over each adapter's contiguous rows (two ``F.linear`` per segment)?
    Measured while choosing, on 2 CPU cores (demo-sized Qwen2, r=32, G=16, 2 epochs,
    1 thread): batch 1 4.6 s gathered vs 6.4 s segment loop, batch 4 5.3 vs 6.2 s, mixed
    batch sizes and example counts 4.0 vs 4.4 s. With small per-adapter slices the loop
    pays G tiny GEMMs (and their autograd nodes) per module forward and backward; the
    gather pays one copy of the weights, which is cheap at LoRA rank.
    """

    def __init__(self, stack: _Stack, scale: float):
        self.stack, self.scale = stack, scale
        self.rows: _Rows | None = None  # adapter slot per row, or per group of ``k`` rows
        self.handles: list = []

    def set_rows(self, row_slots: Sequence[int], device: torch.device) -> None:
        """Adapter slot of each row (the grouped path needs each adapter's rows contiguous)."""
        runs: list[list[int]] = []  # [slot, count]
        for slot in row_slots:
            if runs and runs[-1][0] == slot:
                runs[-1][1] += 1
            else:
                runs.append([slot, 1])
        if len({count for _, count in runs}) == 1 and len({slot for slot, _ in runs}) == len(runs):
            self.rows = _Rows([slot for slot, _ in runs], self.stack.size, device)
        else:
            self.rows = _Rows(row_slots, self.stack.size, device)

    def _forward_hook(self, name: str, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        a = self.stack.gather(_key(name, "A"), self.rows)  # [groups, in, r]
        b = self.stack.gather(_key(name, "B"), self.rows)  # [groups, r, out]
        # As peft: the input is cast to the adapter's dtype (autocast, if on, then picks bf16).
        xs = x.reshape(len(self.rows.list), -1, x.shape[-1]).to(a.dtype)
        delta = torch.bmm(torch.bmm(xs, a), b) * self.scale
        return output + delta.reshape(output.shape).to(output.dtype)

    def __enter__(self) -> "_StackedLora":
        for name, module in self.stack.modules.items():
            self.handles.append(module.register_forward_hook(functools.partial(self._forward_hook, name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


# -- stacked AdamW ------------------------------------------------------------------
class StackedAdamW:
    """``torch.optim.AdamW(lr=lr_g, weight_decay=0.0)`` per adapter over stacked ``[G, ...]``
    tensors, with an active mask: ``step(slots)`` updates only those adapters.

    Adapter ``g``'s rows of every tensor form its own parameter group (its own lr, step
    count and so bias correction); an adapter left out of a step is hidden from that step
    (its group is not in ``param_groups``), so its weights, moments and step count stay
    untouched and its gradient keeps accumulating. This
    is torch's AdamW itself (betas 0.9/0.999, eps 1e-8, as ``train_loop``'s), in its fused
    kernel where the device has one: on 2 CPU cores and 16 demo-sized adapters a step took
    ~7 ms fused against ~18 ms for the per-tensor loop torch uses on CPU by default.
    """

    def __init__(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lrs: Sequence[float]):
        self.params, self.grads = list(params), list(grads)
        if any(p.shape[0] != len(lrs) or g.shape != p.shape for p, g in zip(self.params, self.grads)):
            raise ValueError(f"every tensor must stack {len(lrs)} adapters and match its gradient")
        # Leaf views of each adapter's rows: what the optimizer updates (in place, so the
        # stacks see it); their .grad are views of the stacked gradient buffers.
        self.rows = [[p[g].detach().requires_grad_(True) for p in self.params] for g in range(len(lrs))]
        for g, rows in enumerate(self.rows):
            for row, grad in zip(rows, self.grads):
                row.grad = grad[g]
        try:
            self.optimizer = torch.optim.AdamW([{"params": rows, "lr": lr} for rows, lr in zip(self.rows, lrs)],
                                               weight_decay=0.0, fused=True)
        except (RuntimeError, ValueError):  # no fused kernel for this device / dtype
            self.optimizer = torch.optim.AdamW([{"params": rows, "lr": lr} for rows, lr in zip(self.rows, lrs)],
                                               weight_decay=0.0)
        self.groups = list(self.optimizer.param_groups)

    @torch.no_grad()
    def step(self, slots: Sequence[int]) -> None:
        """One AdamW step for the adapters in ``slots``, then zero their gradients."""
        chosen = sorted(set(slots))
        if not chosen:
            return
        # Only the chosen adapters' groups are visible to this step: the others are not
        # touched at all (not even their step counts), as if they had no optimizer.
        self.optimizer.param_groups = [self.groups[g] for g in chosen]
        try:
            self.optimizer.step()
        finally:
            self.optimizer.param_groups = self.groups
        if len(chosen) == len(self.groups):
            for grad in self.grads:
                grad.zero_()
        else:
            index = torch.tensor(chosen, device=self.grads[0].device)
            for grad in self.grads:
                grad.index_fill_(0, index, 0.0)

    def state_of(self, slot: int) -> list[dict]:
        """AdamW's state (``step``, ``exp_avg``, ``exp_avg_sq``) of each of one adapter's tensors."""
        return [self.optimizer.state.get(row, {}) for row in self.rows[slot]]


# -- training -----------------------------------------------------------------------
@dataclass
class _Job:
    index: int  # position in ``plans``
    slot: int  # row in the stacked tensors
    settings: TrainSettings
    encoded: list
    stats: TrainStats
    total_micro: int = 0
    micro: int = 0
    batches: Iterator | None = None
    work: int = 0  # tokens it puts through the model: the share of wall time it is charged
    loss_refs: list = field(default_factory=list)  # (recorded step, position) of each micro-batch loss


def _job_batches(encoded, settings: TrainSettings, pad_id: int):
    """Exactly ``train_loop``'s micro-batches: one ``random.Random(seed)`` over all epochs."""
    rng = random.Random(settings.seed)
    for _ in range(settings.epochs):
        yield from _batches(encoded, settings.batch_size, pad_id, rng)


_HEAD_SPLIT_TYPES = {"qwen2", "qwen3", "llama", "mistral"}


def _head_split(model: torch.nn.Module):
    """(backbone, lm_head) for causal LMs whose logits are just ``lm_head(hidden)``, so the
    head runs on label positions only; ``None`` means use the full ``model(...).logits``."""
    config = getattr(model, "config", None)
    known = getattr(config, "model_type", None) in _HEAD_SPLIT_TYPES
    if known and hasattr(model, "model") and hasattr(model, "lm_head"):
        return model.model, model.lm_head
    return None


def _token_losses(model, split, input_ids, mask, flat, targets):
    """Cross-entropy (float32) of each label token: ``flat`` indexes ``[N, T-1]`` positions."""
    if split is not None:
        backbone, head = split
        hidden = backbone(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
        hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1]).index_select(0, flat)
        logits = head(hidden)
    else:
        logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
        logits = logits[:, :-1].reshape(-1, logits.shape[-1]).index_select(0, flat)
    return F.cross_entropy(logits.float(), targets, reduction="none")


def train_adapters_batched(model: torch.nn.Module, tokenizer, plans: Sequence[TrainPlan], lora: LoraSettings,
                           max_group: int | None = None, report: dict | None = None
                           ) -> list[tuple[AdapterWeights, TrainStats]]:
    """Train one LoRA per plan, ``max_group`` (default: all) adapters per forward/backward.

    Returns ``(weights, stats)`` per plan, in order: ``weights`` in peft's saved format
    (see :func:`save_adapter_weights`), ``stats`` as ``train_loop``'s. The weights equal
    ``train_lora(model, tokenizer, plan.examples, lora, plan.settings, plan.mask_prompt)``
    up to float rounding. Plans with ``valid=False`` (and plans with no learnable token)
    are not trained: they get the seeded initial weights. ``model`` is unchanged afterwards.
    ``report``, if given, is filled with totals: ``tokens`` (real), ``padded_tokens`` (what
    the model ran on), ``forwards`` and ``steps`` (batched steps).
    """
    if lora.dropout:
        raise ValueError("batched LoRA training needs lora.dropout == 0 (dropout masks of the sequential "
                         "path cannot be reproduced); train these adapters with sealflow.lora.train_lora")
    results: list = [None] * len(plans)
    if report is not None:
        report.update(tokens=0, padded_tokens=0, forwards=0, steps=0)
    if not plans:
        return results
    replay = _InitReplay(model, lora, plans[0].settings.seed)
    trainable = []
    for index, plan in enumerate(plans):
        if not plan.valid:
            started = time.time()
            results[index] = (replay(plan.settings.seed),
                              TrainStats(examples=len(plan.examples), seconds=time.time() - started))
        else:
            trainable.append(index)
    # Adapters with similar step counts share a group, so few slots idle at the end.
    if max_group and len(trainable) > max_group:
        def planned(i):
            s = plans[i].settings
            return s.epochs * math.ceil(max(1, len(plans[i].examples)) / s.batch_size)
        trainable.sort(key=planned)
    size = max_group or max(1, len(trainable))
    for start in range(0, len(trainable), size):
        group = trainable[start : start + size]
        trained = _train_group(model, tokenizer, [plans[i] for i in group], lora, replay, report)
        for index, result in zip(group, trained):
            results[index] = result
    return results


def _train_group(model, tokenizer, plans: Sequence[TrainPlan], lora: LoraSettings, replay: _InitReplay,
                 report: dict | None) -> list[tuple[AdapterWeights, TrainStats]]:
    started = time.time()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    inits = [replay(plan.settings.seed) for plan in plans]
    jobs: list[_Job] = []
    stats_all = []
    for index, plan in enumerate(plans):
        stats = TrainStats(examples=len(plan.examples))
        stats_all.append(stats)
        encoded = encode_for_training(tokenizer, plan.examples, plan.settings.max_seq_len, plan.mask_prompt, stats)
        if not encoded:
            continue
        stats.tokens = sum(len(ids) for ids, _ in encoded)
        s = plan.settings
        jobs.append(_Job(index, len(jobs), s, encoded, stats,
                         total_micro=s.epochs * math.ceil(len(encoded) / s.batch_size),
                         batches=_job_batches(encoded, s, pad_id), work=stats.tokens * s.epochs))
    weights = [dict(w) for w in inits]
    if jobs:
        with _preserved(model):
            for p in model.parameters():
                p.requires_grad_(False)
            stack = _Stack(model, [inits[j.index] for j in jobs], device, requires_grad=True)
            optimizer = StackedAdamW([stack.flat], [stack.flat_grad], [j.settings.lr for j in jobs])
            patch = _StackedLora(stack, lora.alpha / lora.r)
            recorded = _run_steps(model, patch, optimizer, jobs, device, pad_id, report)
            values = torch.cat(recorded).tolist() if recorded else []  # the one host sync for all losses
            offsets = [0]
            for chunk in recorded:
                offsets.append(offsets[-1] + chunk.numel())
            for job in jobs:
                job.stats.losses = [values[offsets[step] + pos] for step, pos in job.loss_refs]
                job.stats.first_loss = job.stats.losses[0] if job.stats.losses else None
                job.stats.final_loss = job.stats.losses[-1] if job.stats.losses else None
                weights[job.index] = stack.weights(job.slot)
    seconds = time.time() - started
    total_work = sum(j.work for j in jobs)
    share = {j.index: j.work / total_work for j in jobs} if total_work else {}
    for index, stats in enumerate(stats_all):
        stats.seconds = seconds * share.get(index, 0.0) if share else seconds / max(1, len(plans))
    log.info("trained %d adapters batched in %.1f s (%d with data)", len(plans), seconds, len(jobs))
    return list(zip(weights, stats_all))


# A forward/backward costs about this many tokens' worth of work on top of its tokens
# (dispatch, kernel launches, per-layer fixed costs): the price of splitting a step into
# one more bucket. Measured ~100 on 2 CPU cores for the demo-sized model (34 ms for a
# 16-token row, +0.27 ms per token); the split is not sensitive to it within 2x.
_FORWARD_OVERHEAD_TOKENS = 96


def _buckets(lengths: Sequence[int], overhead: int = _FORWARD_OVERHEAD_TOKENS) -> list[list[int]]:
    """Split rows (indices into ``lengths``) into width buckets minimising the padded
    tokens plus ``overhead`` per bucket: an exact dynamic programme over sorted lengths."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best, cut = [0.0] + [math.inf] * n, [0] * (n + 1)
    for end in range(1, n + 1):
        width = lengths[order[end - 1]]
        for start in range(end):
            cost = best[start] + (end - start) * width + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], n
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def _run_steps(model, patch: _StackedLora, optimizer: StackedAdamW, jobs: list[_Job], device, pad_id: int,
               report: dict | None = None) -> list:
    """Step ``t`` runs micro-batch ``t`` of every adapter that has one. Its rows are right-padded
    per width bucket (short and long rows need not share one padded width); each bucket is
    one forward/backward, and each adapter's loss is its token sum over all buckets divided
    by its own label-token count, so the gradient is the one of its mean token loss."""
    use_autocast = device.type == "cuda"
    split = _head_split(model)
    recorded: list[torch.Tensor] = []
    model.train()  # as train_loop (the models' own dropout is 0; LoRA dropout must be 0)
    with patch:
        for t in range(max(j.total_micro for j in jobs)):
            active = [j for j in jobs if t < j.total_micro]
            rows = []  # (position in active, slot, ids, labels) trimmed to the row's real length
            counts = torch.zeros(len(active))
            for pos, job in enumerate(active):
                ids, labels, mask = next(job.batches)
                for r in range(ids.shape[0]):
                    length = int(mask[r].sum())
                    rows.append((pos, job.slot, ids[r, :length], labels[r, :length]))
                counts[pos] = float((labels[:, 1:] != -100).sum())
            scale = (counts * torch.tensor([float(j.settings.grad_accum) for j in active])).to(device)
            total = torch.zeros(len(active), device=device)
            for bucket in _buckets([len(row[2]) for row in rows]):
                chosen = sorted((rows[i] for i in bucket), key=lambda row: row[1])  # each adapter's rows together
                width = max(len(row[2]) for row in chosen)
                input_ids = torch.full((len(chosen), width), pad_id, dtype=torch.long)
                labels = torch.full((len(chosen), width), -100, dtype=torch.long)
                mask = torch.zeros((len(chosen), width), dtype=torch.long)
                for r, (_, _, ids, labs) in enumerate(chosen):
                    input_ids[r, : len(ids)], labels[r, : len(labs)], mask[r, : len(ids)] = ids, labs, 1
                if report is not None:
                    report["tokens"] += sum(len(row[2]) for row in chosen)
                    report["padded_tokens"] += input_ids.numel()
                    report["forwards"] += 1
                # Label positions (shifted as the causal-LM loss shifts) and their adapter, on the host.
                shifted = labels[:, 1:]
                valid = shifted != -100
                flat = valid.reshape(-1).nonzero().squeeze(1)
                targets = shifted.reshape(-1).index_select(0, flat)
                token_pos = torch.tensor([row[0] for row in chosen]).repeat_interleave(valid.sum(1))
                patch.set_rows([row[1] for row in chosen], device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
                    tok_loss = _token_losses(model, split, input_ids.to(device), mask.to(device), flat.to(device),
                                             targets.to(device))
                sums = torch.zeros(len(active), device=device, dtype=tok_loss.dtype)
                sums = sums.index_add(0, token_pos.to(device), tok_loss)
                # sum over adapters of (own token sum / own label count) / grad_accum, as train_loop's loss/grad_accum
                (sums / scale).sum().backward()
                total = total + sums.detach()
            recorded.append(total / counts.to(device))
            if report is not None:
                report["steps"] += 1
            stepping = []
            for pos, job in enumerate(active):
                job.loss_refs.append((len(recorded) - 1, pos))
                job.micro += 1
                if job.micro % job.settings.grad_accum == 0 or job.micro == job.total_micro:
                    stepping.append(job.slot)
                    job.stats.steps += 1
            optimizer.step(stepping)
    model.eval()
    return recorded


# -- batched greedy generation ------------------------------------------------------
@torch.no_grad()
def generate_batched(model: torch.nn.Module, tokenizer, lora: LoraSettings, adapters: Sequence[AdapterWeights],
                     requests: Sequence[tuple[int | None, str]], max_new_tokens: int = 64,
                     batch_size: int = 32, stop: Sequence[str] = ()) -> list[str]:
    """Greedy completions for ``(adapter index, prompt)`` rows, many adapters per
    ``generate`` call (``None``: the base model). As the HF backend: prompts left-padded,
    no special tokens added, new tokens decoded with special tokens skipped; a batch ends
    once every row has produced a ``stop`` string (the caller still cuts at it)."""
    from .stopping import stop_criteria

    if not requests:
        return []
    device = next(model.parameters()).device
    used = sorted({a for a, _ in requests if a is not None})
    zero = {k: torch.zeros_like(v) for k, v in adapters[used[0]].items()} if used else None
    slot_of = {a: s for s, a in enumerate(used)}
    slot_of[None] = len(used)  # the base model: a zero adapter
    results: list[str] = [""] * len(requests)
    # Rows of one adapter next to each other, so equal-sized groups share one weight gather.
    order = sorted(range(len(requests)), key=lambda i: (slot_of[requests[i][0]], i))
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        patch = _StackedLora(_Stack(model, [adapters[a] for a in used] + [zero], device, requires_grad=False),
                             lora.alpha / lora.r) if used else contextlib.nullcontext()
        with patch:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                if used:
                    patch.set_rows([slot_of[requests[i][0]] for i in chunk], device)
                enc = tokenizer([requests[i][1] for i in chunk], return_tensors="pt", padding=True,
                                add_special_tokens=False)
                enc = {k: v.to(device) for k, v in enc.items()}
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                     top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id,
                                     stopping_criteria=stop_criteria(tokenizer, stop, enc["input_ids"].shape[1]))
                texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                for i, text in zip(chunk, texts):
                    results[i] = text
    finally:
        tokenizer.padding_side = side
    return results
