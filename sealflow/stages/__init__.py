"""The stage layer: one module per rules file, one function per rule.

Every rule runs ``scripts/stage.py`` with ``params.stage = "<module>.<function>"``, and
:func:`run` calls ``sealflow.stages.<module>.<function>`` with the rule's named inputs,
outputs and params as keyword arguments, and the wildcards the function asks for. The
names in the rule *are* the function's parameter names, so a renamed or reordered file
cannot be swapped silently: a mismatch is a TypeError naming it. The stage's ``config``
is only the part the rule declares in ``params.settings`` (what Snakemake watches for
changes), so reading an undeclared setting fails at once instead of going stale.
A stage reads its inputs, calls the domain library and writes its outputs atomically.

Only the stages in :data:`NETWORK_STAGES` may reach the internet; their rules are local
rules (they run where Snakemake runs). Every other stage runs with ``HF_HUB_OFFLINE=1``:
models come from local folders (a hub id is fetched by ``base.fetch_model`` first), so a
compute node without internet runs them as they are.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import multiprocessing
import os
from typing import Any, Callable, Mapping


NETWORK_STAGES = frozenset({
    "base.fetch_model",  # a hub id's snapshot
    "knowledge.prepare_passages",  # data.source: hub downloads the data set
    "knowledge.grade_answers",  # the LLM judge
    "knowledge_heldout.grade",  # the LLM judge
    "knowledge_heldout.external_self_edits",  # the external model (GPT-4.1)
})


def hub_environment(stage: str) -> dict[str, str]:
    """Environment a stage runs with: the hub offline unless the stage may use the internet."""
    return {} if stage in NETWORK_STAGES else {"HF_HUB_OFFLINE": "1"}


def stage_function(name: str) -> Callable[..., None]:
    """``"knowledge.inner_loop"`` -> ``sealflow.stages.knowledge.inner_loop``."""
    module, _, function = name.partition(".")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def _coerce(value: str) -> int | str:
    return int(value) if value.isdigit() else value  # round and shard wildcards are numbers


def stage_arguments(function: Callable, config: Mapping[str, Any] | None, named: Mapping[str, Any],
                    wildcards: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments of ``function``: every named file and param, and the wildcards it asks for.

    ``config`` is the part of the config the rule declares (None: the rule declares none).
    """
    accepted = inspect.signature(function).parameters
    kwargs = dict(named)
    if "config" in accepted:
        if config is None:
            raise TypeError(f"{function.__module__}.{function.__name__} reads the config, but its rule declares "
                            "no params.settings")
        kwargs["config"] = config
    for name, value in wildcards.items():
        if name in accepted and name not in kwargs:
            kwargs[name] = _coerce(value)
    return kwargs


def drop_stale_meta(outputs) -> list[str]:
    """Remove the ``.meta.json`` beside every output file that is about to be made again.

    Snakemake deletes a job's outputs before rerunning it, but not their sidecars; an old
    sidecar beside a missing (or half-made) file would describe an artifact that is gone.
    """
    from ..provenance import meta_path

    removed = []
    for out in outputs:
        meta = meta_path(out)
        if not os.path.exists(out) and meta.is_file():
            meta.unlink()
            removed.append(str(meta))
    return removed


def in_child_process() -> bool:
    """True inside a child that ``multiprocessing`` started, already while it bootstraps.

    A ``spawn`` child (vLLM's engine core on CUDA) names itself before it re-imports the
    parent's main script, so this holds while that import runs.
    """
    return multiprocessing.current_process().name != "MainProcess" or multiprocessing.parent_process() is not None


def run(smk) -> None:
    """Run the stage a Snakemake rule names, from inside its ``script:``.

    Only ever in the job's main process: a spawned child that re-imports a stage script
    without a ``__main__`` guard (scripts/stage.py has one) finds nothing to do here,
    instead of running the stage a second time.
    """
    from ..faults import maybe_spawn_child
    from ..runtime import setup_logging

    if in_child_process():
        return
    setup_logging(smk.log[0])
    drop_stale_meta(list(smk.output))
    named: dict[str, Any] = {}
    for group in (smk.input, smk.output, smk.params):
        for name, value in group.items():
            if name in named:
                raise ValueError(f"rule {smk.rule}: {name!r} names both a file and a param")
            named[name] = value
    name = named.pop("stage")
    os.environ.update(hub_environment(name))  # before transformers or huggingface_hub is imported
    function = stage_function(name)
    logging.getLogger("sealflow").info("rule %s: stage %s", smk.rule, name)
    maybe_spawn_child()
    function(**stage_arguments(function, named.pop("settings", None), named, dict(smk.wildcards.items())))
