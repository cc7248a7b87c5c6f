"""Held-out evaluation runs: train LoRAs, then answer closed-book; grading is a CPU step.

Each job writes its rows *ungraded* (``ANSWER_COLUMNS``); ``grade_rows`` adds the
scores in a CPU rule, so a judge behind the internet is never called from a GPU job.

* ``single`` is sharded over the validation passages. A shard job trains a fresh LoRA
  per (passage, sample, repeat) with the shared inner loop (``run_shard``: batched with
  ``parallel_adapters``, each adapter written atomically under the job's work folder
  with its training key, so a retry keeps every finished one), then answers every
  question of the shard in one call to the configured backend, vLLM included (the
  training model is released first, so one owner of the GPU at a time).
* ``cpt`` trains one LoRA per repeat on every passage's sequences at once; its items
  are the repeats, kept the same way.
* ``continual`` applies passages one after another: each passage gets a fresh LoRA
  that is merged into the weights before the next, and after each merge the questions
  of every passage learnt so far are answered (in process: the merged weights change
  at every step). Each (repeat, step) is an item written atomically with its LoRA and
  answers; a rerun replays finished steps by merging their saved LoRAs (no training,
  no answering) and goes on from the first unfinished one.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from ...atomic import atomic_dir
from ...backends import BackendSettings, GenerationRequest, make_backend
from ...backends.hf import HFBackend
from ...devices import Placement
from ...faults import maybe_delay, maybe_fail
from ...ids import adapter_dir, derived_seed, slot_name
from ...inner_loop import TrainPlan, run_shard
from ...lora import TrainExample, train_lora
from ...records import Passage, SelfEdit
from ..grading import clean_prediction
from ..sampling import SamplingSettings, sample_whole_self_edits
from ..scoring import ScoringSettings, answer_request
from ..inner import TrainingTexts, passage_only_texts, passage_text, training_texts
from .methods import BASE, PASSAGE, continual_order, method_round
from .settings import EvalSettings, seeded

log = logging.getLogger(__name__)

Answer = Callable[[Sequence[GenerationRequest]], list[list[str]]]


# ------------------------------------------------------------------ self-edits


def heldout_edit_id(method: str, passage_id: str, sample: int) -> str:
    return f"heldout-{method}-{passage_id}-k{sample}"


def sample_heldout_edits(backend, tokenizer, passages: Sequence[Passage], settings: SamplingSettings, method: str,
                         seed: int, policy: str) -> list[SelfEdit]:
    """``settings.k`` self-edits per held-out passage from ``policy``, in one backend call."""
    seeds = [derived_seed(seed, "heldout", method, p.id) for p in passages]
    prompts, _, outputs = sample_whole_self_edits(backend, tokenizer, passages, seeds, settings)
    sampling = settings.metadata()
    rnd = method_round(method)
    return [
        SelfEdit(id=heldout_edit_id(method, p.id, sample), input_id=p.id, sample=sample, prompt=prompt,
                 completion=outs[sample] if sample < len(outs) else "", round=rnd or 0, shard=0, seed=s,
                 sampling=sampling, policy=policy)
        for p, prompt, s, outs in zip(passages, prompts, seeds, outputs)
        for sample in range(settings.k)
    ]


def edits_by_passage(edits: Sequence[SelfEdit]) -> dict[str, list[SelfEdit]]:
    out: dict[str, list[SelfEdit]] = {}
    for edit in sorted(edits, key=lambda e: e.sample):
        out.setdefault(edit.input_id, []).append(edit)
    return out


# ------------------------------------------------------------------- sequences


def method_texts(method: str, passage: Passage, edit: SelfEdit | None, settings: EvalSettings) -> TrainingTexts:
    """Training sequences for one passage under ``method`` (nothing for ``base``)."""
    if method == BASE:
        return TrainingTexts()
    if method == PASSAGE:
        return passage_only_texts(passage)
    if edit is None:
        raise ValueError(f"method {method!r} needs a self-edit for passage {passage.id}")
    return training_texts(passage, edit.completion, settings.split, settings.include_passage)


def cpt_texts(method: str, passages: Sequence[Passage], edits: Mapping[str, Sequence[SelfEdit]],
              settings: EvalSettings) -> tuple[list[str], dict[str, TrainingTexts]]:
    """Every passage's sequences together (each passage text once, whatever k is)."""
    texts: list[str] = []
    per_passage: dict[str, TrainingTexts] = {}
    for p in passages:
        if method == BASE:
            per_passage[p.id] = TrainingTexts()
            continue
        if method == PASSAGE:
            own = passage_only_texts(p)
        else:
            pieces, reasons = [], []
            for edit in edits.get(p.id, []):
                t = training_texts(p, edit.completion, settings.split, include_passage=False)
                pieces += t.texts
                reasons += [t.reason] if t.reason else []
            pieces = list(dict.fromkeys(pieces))
            own = TrainingTexts(texts=pieces + ([passage_text(p)] if settings.include_passage else []),
                                n_from_edit=len(pieces), reason=None if pieces else ";".join(dict.fromkeys(reasons)))
        per_passage[p.id] = own
        texts += own.texts
    return texts, per_passage


# ------------------------------------------------------------------- answering


class ModelBox:
    """The job's training model, loaded once and released before a vLLM engine starts."""

    def __init__(self, load: Callable[[], torch.nn.Module]):
        self._load, self._model = load, None

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = self._load()
        return self._model

    def release(self) -> None:
        if self._model is None:
            return
        device = next(self._model.parameters()).device
        self._model = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def answers_in_process(settings: BackendSettings, placement: Placement) -> bool:
    """Whether the configured backend is HF ``generate`` (it reuses the training model)."""
    if settings.name == "auto":
        from ...backends import _vllm_usable

        return not _vllm_usable(placement)
    return settings.name == "hf"


def backend_answerer(model_path: str, placement: Placement, settings: BackendSettings, box: ModelBox,
                     tokenizer) -> Answer:
    """Answer requests (adapters named by folder) with the configured backend.

    HF answers with the model already in memory (per-row LoRA batches across adapters);
    vLLM or a server gets the GPU to itself: the training model is released first.
    """
    def answer(requests: Sequence[GenerationRequest]) -> list[list[str]]:
        if not requests:
            return []
        if answers_in_process(settings, placement):
            backend = HFBackend(model_path, placement, settings, model=box.model, tokenizer=tokenizer)
        else:
            box.release()
            backend = make_backend(model_path, placement, settings)
        try:
            return backend.generate(requests)
        finally:
            backend.close()
    return answer


def answer_questions(model: torch.nn.Module, tokenizer, placement: Placement, questions: Sequence[str],
                     scoring: ScoringSettings, batch_size: int = 32) -> list[str]:
    """Greedy closed-book answers of an in-memory model (continual: merged weights)."""
    if not questions:
        return []
    backend = HFBackend("", placement, BackendSettings(name="hf", batch_size=batch_size), model=model,
                        tokenizer=tokenizer)
    return [clean_prediction(out[0] if out else "")
            for out in backend.generate([answer_request(q, None, scoring, tokenizer) for q in questions])]


def _rows(method: str, setting: str, passages: Sequence[tuple[int, Passage]], answers: Sequence[str], *,
          step: int | str = "", repeat: int = 0, sample: int = 0,
          texts: Mapping[str, TrainingTexts] | None = None) -> list[dict]:
    """Ungraded rows (``ANSWER_COLUMNS``) of one item, one per question of ``passages``."""
    it = iter(answers)
    rows = []
    for j, p in passages:
        t = (texts or {}).get(p.id)
        for qi, q in enumerate(p.questions):
            rows.append({
                "method": method, "setting": setting, "round": _blank(method_round(method)),
                "step": step, "repeat": repeat, "sample": sample, "passage_index": j, "input_id": p.id,
                "question_index": qi, "question": q.question, "gold": q.answer, "answer": next(it),
                "valid": True if t is None or method in (BASE, PASSAGE) else t.n_from_edit > 0,
                "reason": (t.reason or "") if t is not None else "",
            })
    return rows


def _blank(value: int | None) -> int | str:
    return "" if value is None else value


def _questions(passages: Sequence[tuple[int, Passage]]) -> list[str]:
    return [q.question for _, p in passages for q in p.questions]


def _examples(texts: Sequence[str]) -> list[TrainExample]:
    return [TrainExample(t) for t in texts]


def _answer_items(answer: Answer, items: Sequence[tuple[Sequence[tuple[int, Passage]], str | None]],
                  scoring: ScoringSettings, tokenizer) -> list[list[str]]:
    """One backend call for every (passages, adapter) item; each item's answers in question order."""
    requests, spans = [], []
    for passages, adapter in items:
        questions = _questions(passages)
        spans.append((len(requests), len(questions)))
        requests += [answer_request(q, adapter, scoring, tokenizer) for q in questions]
    outputs = answer(requests) if requests else []
    if len(outputs) != len(requests):
        raise RuntimeError(f"the backend answered {len(outputs)} of {len(requests)} held-out questions")
    answers = [clean_prediction(out[0] if out else "") for out in outputs]
    return [answers[start : start + n] for start, n in spans]


# ----------------------------------------------------------------- the settings


@dataclass
class SingleItem:
    """One (passage, sample, repeat) of a single-passage shard; ``plan`` None for ``base``."""

    index: int
    passage: Passage
    sample: int
    repeat: int
    texts: TrainingTexts
    plan: TrainPlan | None


def single_items(method: str, indexed: Sequence[tuple[int, Passage]], edits: Mapping[str, Sequence[SelfEdit]],
                 settings: EvalSettings, root: str) -> list[SingleItem]:
    """The items of a shard in row order, with their adapter plans under ``root``.

    ``base`` is greedy and untrained, so it is answered once (repeat 0, sample 0).
    """
    items = []
    for position, (j, p) in enumerate(indexed):
        variants: list[SelfEdit | None] = [None] if method in (BASE, PASSAGE) else list(edits.get(p.id, []))
        if not variants:
            raise ValueError(f"no held-out self-edits for passage {p.id} (method {method})")
        for edit in variants:
            sample = edit.sample if edit is not None else 0
            texts = method_texts(method, p, edit, settings)
            for repeat in range(1 if method == BASE else settings.eval_repeats):
                plan = None
                if method != BASE:
                    plan = TrainPlan(
                        edit_id=f"{method}-{p.id}-k{sample}", repeat=repeat,
                        out_dir=adapter_dir(root, slot_name(position, sample), repeat),
                        examples=_examples(texts.texts),
                        settings=seeded(settings.train, derived_seed(settings.seed, "heldout", p.id, sample, repeat)),
                        valid=bool(texts.texts), reason=None if texts.texts else texts.reason,
                        info={"input_id": p.id, "sample": sample})
                items.append(SingleItem(j, p, sample, repeat, texts, plan))
    return items


def train_items(box: ModelBox, tokenizer, model_id: str, plans: Sequence[TrainPlan], lora, settings: EvalSettings,
                fault_key: str) -> None:
    """Train (or keep) every planned adapter; each is written as it finishes."""
    if plans:
        rows = run_shard(box.model, tokenizer, model_id, plans, lora, fault_key=fault_key,
                         parallel_adapters=settings.parallel_adapters, fault_stage="heldout")
        log.info("%d adapters: %d kept, %d trained", len(rows), sum(r["status"] == "kept" for r in rows),
                 sum(r["status"] != "kept" for r in rows))


def evaluate_single(box: ModelBox, tokenizer, model_id: str, answer: Answer, method: str,
                    indexed: Sequence[tuple[int, Passage]], edits: Mapping[str, Sequence[SelfEdit]],
                    settings: EvalSettings, root: str, fault_key: str = "") -> list[dict]:
    """One shard of passages (with their global indices): train every item's LoRA, then answer."""
    items = single_items(method, indexed, edits, settings, root)
    train_items(box, tokenizer, model_id, [i.plan for i in items if i.plan is not None], settings.lora, settings,
                fault_key)
    answers = _answer_items(answer, [([(i.index, i.passage)], i.plan.out_dir if i.plan else None) for i in items],
                            settings.scoring, tokenizer)
    rows: list[dict] = []
    for item, item_answers in zip(items, answers):
        rows += _rows(method, "single", [(item.index, item.passage)], item_answers, repeat=item.repeat,
                      sample=item.sample, texts={item.passage.id: item.texts})
    return rows


def evaluate_cpt(box: ModelBox, tokenizer, model_id: str, answer: Answer, method: str, passages: Sequence[Passage],
                 edits: Mapping[str, Sequence[SelfEdit]], settings: EvalSettings, root: str,
                 fault_key: str = "") -> list[dict]:
    """Continued pretraining: one LoRA per repeat on all passages' sequences, then every question."""
    indexed = list(enumerate(passages))
    texts, per_passage = cpt_texts(method, passages, edits, settings)
    repeats = range(1 if method == BASE else settings.eval_repeats)
    plans = [] if method == BASE else [
        TrainPlan(edit_id=f"{method}-cpt", repeat=r, out_dir=f"{root}/rep{r}", examples=_examples(texts),
                  settings=seeded(settings.cpt_train, derived_seed(settings.seed, "heldout-cpt", r)),
                  valid=bool(texts), info={"n_sequences": len(texts)})
        for r in repeats]
    train_items(box, tokenizer, model_id, plans, settings.cpt_lora, settings, fault_key)
    answers = _answer_items(answer, [(indexed, plans[r].out_dir if plans else None) for r in repeats],
                            settings.scoring, tokenizer)
    rows: list[dict] = []
    for r in repeats:
        rows += _rows(method, "cpt", indexed, answers[r], repeat=r, texts=per_passage)
    return rows


_STEP_LORA, _STEP_ANSWERS = "lora.safetensors", "answers.json"


def _step_key(previous: str, **parts) -> str:
    """A step's identity chains the one before it: a changed earlier step makes every later one stale."""
    return hashlib.sha256(json.dumps([previous, parts], sort_keys=True, default=str).encode()).hexdigest()


def _finished_step(folder: Path, key: str) -> dict | None:
    """A step item written with ``key``: its answers and whether it holds a LoRA, else None."""
    try:
        record = json.loads((folder / _STEP_ANSWERS).read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != key or (record.get("trained") and not (folder / _STEP_LORA).is_file()):
        return None
    return record


def _merge_saved(model: torch.nn.Module, folder: Path, lora) -> torch.nn.Module:
    """Replay a finished step: its saved LoRA merged into the weights, exactly as after training."""
    from peft import get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    peft_model = get_peft_model(model, lora.peft_config())
    device = next(model.parameters()).device
    set_peft_model_state_dict(peft_model, load_file(str(folder / _STEP_LORA), device=str(device)))
    return peft_model.merge_and_unload()


def _lora_state(peft_model) -> dict[str, torch.Tensor]:
    """The trained LoRA as it is in memory (no dtype cast), so a replayed merge is the same."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(peft_model).items()}


def _write_step(folder: Path, key: str, answers: Sequence[str], state: dict | None) -> None:
    from safetensors.torch import save_file

    with atomic_dir(folder) as tmp:
        if state is not None:
            save_file(state, str(tmp / _STEP_LORA))
        (tmp / _STEP_ANSWERS).write_text(json.dumps({"key": key, "trained": state is not None,
                                                     "answers": list(answers)}) + "\n")


def evaluate_continual(load: Callable[[], torch.nn.Module], tokenizer, placement: Placement, model_id: str,
                       method: str, passages: Sequence[Passage], edits: Mapping[str, Sequence[SelfEdit]],
                       settings: EvalSettings, root: str, batch_size: int = 32) -> list[dict]:
    """Sequential updates with merged LoRAs; step 0 is the model before any update.

    Each repeat starts again from a freshly loaded model (``load``). Self-edit methods
    use each passage's first sample. After update i, the questions of passages 0..i-1
    (the ones learnt so far) are answered, which is what the forgetting matrix needs.
    Items live under ``root/rep{r}/step{i}``; finished ones are replayed, not redone.
    """
    rows: list[dict] = []
    order = list(enumerate(continual_order(passages, settings.continual_passages)))
    written = 0
    for repeat in range(1 if method == BASE else settings.eval_repeats):
        model = load()
        learnt: dict[str, TrainingTexts] = {}
        key = _step_key(model_id, method=method, repeat=repeat, lora=asdict(settings.lora),
                        max_new_tokens=settings.scoring.max_new_tokens, questions=_questions(order))
        for i in range(len(order) + 1):
            folder = Path(root) / f"rep{repeat}" / f"step{i:03d}"
            seen = order[:i] if i else order
            train_texts: list[str] = []
            if i:
                j, p = order[i - 1]
                variants = edits.get(p.id, [])
                texts = learnt[p.id] = method_texts(method, p, variants[0] if variants else None, settings)
                train_texts = texts.texts if method != BASE else []
            train = seeded(settings.train, derived_seed(settings.seed, "heldout-continual", order[i - 1][1].id,
                                                        repeat)) if i else None
            key = _step_key(key, step=i, texts=train_texts, train=asdict(train) if train else None,
                            questions=_questions(seen))
            done = _finished_step(folder, key)
            if done is not None:
                if done["trained"]:
                    model = _merge_saved(model, folder, settings.lora)
                    model.eval()
                answers = done["answers"]
                log.info("continual repeat %d step %d/%d: kept (same key), replayed", repeat, i, len(order))
            else:
                if written == 1:
                    maybe_fail("heldout", f"continual-{method}")  # test-only: die after the first step written
                state = None
                if train_texts:
                    peft_model, stats = train_lora(model, tokenizer, _examples(train_texts), settings.lora, train)
                    state = _lora_state(peft_model)
                    model = peft_model.merge_and_unload()
                    model.eval()
                    log.info("continual repeat %d: merged update %d/%d (%s), loss %s -> %s", repeat, i, len(order),
                             order[i - 1][1].id, stats.first_loss, stats.final_loss)
                answers = answer_questions(model, tokenizer, placement, _questions(seen), settings.scoring, batch_size)
                _write_step(folder, key, answers, state)
                written += 1
                maybe_delay("heldout")  # test-only: a window in which a kill lands mid-job
            rows += _rows(method, "continual", seen, answers, step=i, repeat=repeat,
                          texts=learnt if i else None)
        del model
    return rows


def clear_work(root: str) -> None:
    """The job's items once its rows are written (the adapters are not needed downstream)."""
    shutil.rmtree(root, ignore_errors=True)
