"""Held-out evaluation runs: train LoRAs in memory, answer closed-book, grade.

One loaded model serves a whole (method, setting) job. ``single`` wraps it with a
fresh LoRA per (passage, sample, repeat), answers that passage's questions with the
in-memory peft model and ``unload()``s it again. ``cpt`` trains one LoRA on every
passage's sequences at once. ``continual`` applies passages one after another:
each passage gets a fresh LoRA that is merged into the weights (``merge_and_unload``)
before the next, so updates accumulate in the model itself (as a deployed model
updating itself would); after each merge the questions of every passage learnt so far
are answered. All answers of a job are graded in one ``grade_all`` call at the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from ...backends import BackendSettings, GenerationRequest
from ...backends.hf import HFBackend
from ...devices import Placement
from ...ids import derived_seed
from ...lora import TrainExample, train_lora
from ...records import Passage, SelfEdit
from ..grading import clean_prediction
from ..prompts import question_prompt, self_edit_prompt
from ..sampling import SamplingSettings
from ..scoring import ScoringSettings, grade_all
from ..inner import TrainingTexts, passage_only_texts, passage_text, training_texts
from .methods import BASE, PASSAGE, method_round
from .settings import EvalSettings, seeded

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ self-edits


def heldout_edit_id(method: str, passage_id: str, sample: int) -> str:
    return f"heldout-{method}-{passage_id}-k{sample}"


def sample_heldout_edits(backend, tokenizer, passages: Sequence[Passage], settings: SamplingSettings, method: str,
                         seed: int, policy: str) -> list[SelfEdit]:
    """``settings.k`` self-edits per held-out passage from ``policy``, in one backend call."""
    prompts = [self_edit_prompt(settings.prompt, p, tokenizer) for p in passages]
    seeds = [derived_seed(seed, "heldout", method, p.id) for p in passages]
    requests = [GenerationRequest(prompt, n=settings.k, max_new_tokens=settings.max_new_tokens,
                                  temperature=settings.temperature, top_p=settings.top_p, seed=s)
                for prompt, s in zip(prompts, seeds)]
    outputs = backend.generate(requests)
    sampling = {"temperature": settings.temperature, "top_p": settings.top_p, "k": settings.k,
                "max_new_tokens": settings.max_new_tokens, "prompt_family": settings.prompt}
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


def answer_questions(model: torch.nn.Module, tokenizer, placement: Placement, questions: Sequence[str],
                     scoring: ScoringSettings, batch_size: int = 32) -> list[str]:
    """Greedy closed-book answers of an in-memory (possibly peft-wrapped) model."""
    if not questions:
        return []
    backend = HFBackend("", placement, BackendSettings(name="hf", batch_size=batch_size), model=model,
                        tokenizer=tokenizer)
    requests = [GenerationRequest(question_prompt(q), max_new_tokens=scoring.max_new_tokens, temperature=0.0,
                                  stop=("\n",)) for q in questions]
    return [clean_prediction(out[0] if out else "") for out in backend.generate(requests)]


@dataclass
class _Pending:
    """Answered rows waiting for one grading call."""

    method: str
    setting: str
    rows: list[dict] = field(default_factory=list)
    items: list[tuple[str, Sequence[str], str]] = field(default_factory=list)

    def add(self, passages: Sequence[tuple[int, Passage]], answers: Sequence[str], *, step: int | str = "",
            repeat: int = 0, sample: int = 0, texts: Mapping[str, TrainingTexts] | None = None) -> None:
        it = iter(answers)
        for j, p in passages:
            t = (texts or {}).get(p.id)
            for qi, q in enumerate(p.questions):
                answer = next(it)
                self.items.append((q.question, q.answers, answer))
                self.rows.append({
                    "method": self.method, "setting": self.setting, "round": _blank(method_round(self.method)),
                    "step": step, "repeat": repeat, "sample": sample, "passage_index": j, "input_id": p.id,
                    "question_index": qi, "question": q.question, "gold": q.answer, "answer": answer,
                    "valid": True if t is None or self.method in (BASE, PASSAGE) else t.n_from_edit > 0,
                    "reason": (t.reason or "") if t is not None else "",
                })

    def graded(self, scoring: ScoringSettings) -> list[dict]:
        for row, score in zip(self.rows, grade_all(self.items, scoring)):
            row["score"] = score
        return self.rows


def _blank(value: int | None) -> int | str:
    return "" if value is None else value


def _questions(passages: Sequence[tuple[int, Passage]]) -> list[str]:
    return [q.question for _, p in passages for q in p.questions]


def _examples(texts: Sequence[str]) -> list[TrainExample]:
    return [TrainExample(t) for t in texts]


# ----------------------------------------------------------------- the settings


def evaluate_single(model: torch.nn.Module, tokenizer, placement: Placement, method: str,
                    passages: Sequence[Passage], edits: Mapping[str, Sequence[SelfEdit]],
                    settings: EvalSettings, batch_size: int = 32) -> list[dict]:
    """Per passage (and self-edit sample, and repeat): a fresh LoRA, then its questions closed-book.

    ``base`` is greedy and untrained, so it is answered once (repeat 0, sample 0).
    """
    pending = _Pending(method, "single")
    for j, p in enumerate(passages):
        variants: list[SelfEdit | None] = [None] if method in (BASE, PASSAGE) else list(edits.get(p.id, []))
        if not variants:
            raise ValueError(f"no held-out self-edits for passage {p.id} (method {method})")
        repeats = 1 if method == BASE else settings.eval_repeats
        for edit in variants:
            sample = edit.sample if edit is not None else 0
            texts = method_texts(method, p, edit, settings)
            for repeat in range(repeats):
                if method == BASE:
                    answers = answer_questions(model, tokenizer, placement, _questions([(j, p)]), settings.scoring,
                                               batch_size)
                else:
                    train = seeded(settings.train, derived_seed(settings.seed, "heldout", p.id, sample, repeat))
                    peft_model, stats = train_lora(model, tokenizer, _examples(texts.texts), settings.lora, train)
                    answers = answer_questions(peft_model, tokenizer, placement, _questions([(j, p)]),
                                               settings.scoring, batch_size)
                    model = peft_model.unload()
                    log.info("passage %d/%d sample %d repeat %d: %d sequences, %d steps, loss %s -> %s", j + 1,
                             len(passages), sample, repeat, len(texts.texts), stats.steps, stats.first_loss,
                             stats.final_loss)
                pending.add([(j, p)], answers, repeat=repeat, sample=sample, texts={p.id: texts})
    return pending.graded(settings.scoring)


def evaluate_cpt(model: torch.nn.Module, tokenizer, placement: Placement, method: str, passages: Sequence[Passage],
                 edits: Mapping[str, Sequence[SelfEdit]], settings: EvalSettings, batch_size: int = 32) -> list[dict]:
    """Continued pretraining: one LoRA on all passages' sequences, then every question."""
    pending = _Pending(method, "cpt")
    indexed = list(enumerate(passages))
    texts, per_passage = cpt_texts(method, passages, edits, settings)
    for repeat in range(1 if method == BASE else settings.eval_repeats):
        if method == BASE:
            answers = answer_questions(model, tokenizer, placement, _questions(indexed), settings.scoring, batch_size)
        else:
            train = seeded(settings.cpt_train, derived_seed(settings.seed, "heldout-cpt", repeat))
            peft_model, stats = train_lora(model, tokenizer, _examples(texts), settings.cpt_lora, train)
            answers = answer_questions(peft_model, tokenizer, placement, _questions(indexed), settings.scoring,
                                       batch_size)
            model = peft_model.unload()
            log.info("cpt repeat %d: %d sequences over %d passages, %d steps, loss %s -> %s", repeat, len(texts),
                     len(passages), stats.steps, stats.first_loss, stats.final_loss)
        pending.add(indexed, answers, repeat=repeat, texts=per_passage)
    return pending.graded(settings.scoring)


def continual_order(passages: Sequence[Passage], limit: int | None) -> list[Passage]:
    return list(passages[:limit] if limit else passages)


def evaluate_continual(load: Callable[[], torch.nn.Module], tokenizer, placement: Placement, method: str,
                       passages: Sequence[Passage], edits: Mapping[str, Sequence[SelfEdit]],
                       settings: EvalSettings, batch_size: int = 32) -> list[dict]:
    """Sequential updates with merged LoRAs; step 0 is the model before any update.

    Each repeat starts again from a freshly loaded model (``load``). Self-edit methods
    use each passage's first sample. After update i, the questions of passages 0..i-1
    (the ones learnt so far) are answered, which is what the forgetting matrix needs.
    """
    pending = _Pending(method, "continual")
    order = list(enumerate(continual_order(passages, settings.continual_passages)))
    for repeat in range(1 if method == BASE else settings.eval_repeats):
        model = load()
        learnt: dict[str, TrainingTexts] = {}
        answers = answer_questions(model, tokenizer, placement, _questions(order), settings.scoring, batch_size)
        pending.add(order, answers, step=0, repeat=repeat)
        for i, (j, p) in enumerate(order, start=1):
            variants = edits.get(p.id, [])
            edit = variants[0] if variants else None
            texts = learnt[p.id] = method_texts(method, p, edit, settings)
            if method != BASE and texts.texts:
                train = seeded(settings.train, derived_seed(settings.seed, "heldout-continual", p.id, repeat))
                peft_model, stats = train_lora(model, tokenizer, _examples(texts.texts), settings.lora, train)
                model = peft_model.merge_and_unload()
                model.eval()
                log.info("continual repeat %d: merged update %d/%d (%s), loss %s -> %s", repeat, i, len(order), p.id,
                         stats.first_loss, stats.final_loss)
            seen = order[:i]
            answers = answer_questions(model, tokenizer, placement, _questions(seen), settings.scoring, batch_size)
            pending.add(seen, answers, step=i, repeat=repeat, texts=learnt)
        del model
    return pending.graded(settings.scoring)
