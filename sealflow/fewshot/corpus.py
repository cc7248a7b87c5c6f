"""The pretraining corpus of the tiny few-shot (ARC) base model.

It teaches the two formats SEAL's ARC loop relies on, on synthetic puzzles only (so
no ARC task of the workflow's train or evaluation selection is ever seen):

* test-time-training episodes: demonstrations, a query and its answer, written with
  ``prompts.ttt_prompt``/``ttt_completion`` -- the tasks use simple rules (flips,
  rotations, transposition, colour swaps, recolouring, upscaling) that a 2-4 layer
  model can partly learn, so in-context answers and test-time training have signal;
* self-edit episodes: the chat-formatted ``prompts.self_edit_prompt`` followed by a
  random but valid JSON tool configuration (``toolconfig.to_json``), so the untrained
  policy already writes parseable self-edits part of the time.

``organism_corpus`` is the variant for ``fewshot.data.source: organism``
(``base_model.build.corpus: organism``): the same two formats on tasks of the
organism's pretraining compositions only (``organism.py``), so the held-out
compositions the workflow trains and evaluates on are never seen;
``organism_colour_maps_corpus`` the one for the colour-map family
(``organism_colours.py``): copy tasks only, so no colour map is ever seen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from ..base_model import LLAMA3_CHAT_TEMPLATE
from .augment import GEOMETRIC, upscale
from .grids import Grid
from .organism import OrganismSettings, color_swap, make_tasks, recolor
from .prompts import self_edit_prompt, ttt_completion, ttt_prompt
from .toolconfig import ToolConfig, to_json
from .tasks import ArcTask, Example

# The Llama-3 begin-of-text token: episodes start with it as the model's inputs do
# (training and answering prepend it, see sampling.with_bos).
BOS = "<|begin_of_text|>"

LEARNING_RATES = (1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2)


@dataclass(frozen=True)
class Rule:
    name: str
    apply: Callable[[Grid], Grid]
    max_side: int  # largest input side that keeps outputs within the grid budget


def random_rule(rng: random.Random, max_side: int) -> Rule:
    kind = rng.choice(["geometric"] * 4 + ["swap", "recolor", "upscale"])
    if kind == "geometric":
        name = rng.choice([n for n in GEOMETRIC if n != "identity"])
        return Rule(name, GEOMETRIC[name].forward, max_side)
    if kind == "swap":
        a, b = rng.sample(range(1, 10), 2)
        return Rule(f"swap{a}{b}", color_swap(a, b), max_side)
    if kind == "recolor":
        c = rng.randint(1, 9)
        return Rule(f"recolor{c}", recolor(c), max_side)
    return Rule("upscale2", upscale(2).forward, max(2, max_side // 2))


def random_grid(rng: random.Random, max_side: int, palette: list[int]) -> Grid:
    h, w = rng.randint(2, max_side), rng.randint(2, max_side)
    density = rng.uniform(0.2, 0.7)
    return [[rng.choice(palette) if rng.random() < density else 0 for _ in range(w)] for _ in range(h)]


def synthetic_task(rng: random.Random, task_id: str, max_side: int = 5) -> ArcTask:
    """2-4 demonstrations and one query of a random rule on random small grids."""
    rule = random_rule(rng, max_side)
    palette = rng.sample(range(1, 10), rng.randint(1, 3))
    if rule.name.startswith("swap"):  # make sure the swapped colours occur
        palette = sorted(set(palette) | {int(rule.name[4]), int(rule.name[5])})
    examples = []
    for _ in range(rng.randint(3, 5)):
        grid = random_grid(rng, rule.max_side, palette)
        examples.append(Example(grid, rule.apply(grid)))
    return ArcTask(f"{task_id}-{rule.name}", examples[:-1], examples[-1:])


def random_tool_config(rng: random.Random) -> ToolConfig:
    return ToolConfig(
        use_basic_augmentations=rng.random() < 0.5,
        use_size_augmentations=rng.random() < 0.3,
        use_chain_augmentations=rng.random() < 0.3,
        use_repeat_augmentations=rng.random() < 0.3,
        strategy=rng.choice(["all_tokens", "output_tokens"]),
        learning_rate=rng.choice(LEARNING_RATES),
        num_train_epochs=rng.randint(1, 10),
    )


def chat_prompt_text(user: str) -> str:
    """The Llama-3 chat rendering of one user turn, up to the assistant's header."""
    from jinja2 import Template

    return Template(LLAMA3_CHAT_TEMPLATE).render(
        messages=[{"role": "user", "content": user}], add_generation_prompt=True, bos_token=BOS
    )


def ttt_episode(task: ArcTask) -> str:
    return BOS + ttt_prompt(task.train, task.query.input) + ttt_completion(task.query.output)


def self_edit_episode(task: ArcTask, rng: random.Random) -> str:
    return chat_prompt_text(self_edit_prompt(task)) + to_json(random_tool_config(rng))


def fewshot_corpus(n: int, seed: int, max_side: int = 5) -> list[str]:
    """``n`` synthetic tasks as TTT episodes, a third of them also as self-edit episodes."""
    rng = random.Random(seed + 7_000_003)  # far from any seed the workflow's data use
    docs = []
    for i in range(n):
        task = synthetic_task(rng, f"syn{i}", max_side)
        docs.append(ttt_episode(task))
        if i % 3 == 0:
            docs.append(self_edit_episode(task, rng))
    rng.shuffle(docs)
    return docs


def organism_corpus(n: int, seed: int, max_side: int = 4) -> list[str]:
    """``n`` organism tasks of pretraining compositions (2-4 demonstrations), as ``fewshot_corpus``."""
    return _episodes(make_tasks("pretrain", n, seed + 7_000_003, OrganismSettings(max_side, 2, 4)), seed)


def organism_colour_maps_corpus(n: int, seed: int) -> list[str]:
    """``n`` copy tasks of the colour-map family (2-4 demonstrations), as ``fewshot_corpus``."""
    from . import organism_colours

    return _episodes(organism_colours.make_tasks("pretrain", n, seed + 7_000_003, 2, 4), seed)


def _episodes(tasks: list[ArcTask], seed: int) -> list[str]:
    """Every task as a TTT episode, a third also as a self-edit episode, shuffled."""
    rng = random.Random(seed + 7_000_019)
    docs = []
    for i, task in enumerate(tasks):
        docs.append(ttt_episode(task))
        if i % 3 == 0:
            docs.append(self_edit_episode(task, rng))
    rng.shuffle(docs)
    return docs
