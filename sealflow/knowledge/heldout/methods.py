"""Held-out evaluation of knowledge incorporation (the paper's Table 2): which methods and
settings a config asks for, and which model writes and which is adapted for each.

Imported by the rules at parse time: no torch here.

Methods (one row each in the paper's table):

* ``base``            no adaptation: closed-book answers of the base model.
* ``passage``         a LoRA trained on the passage only.
* ``base_self_edits`` the passage plus self-edits sampled from the base model (the policy of round 1).
* ``round{r}``        the passage plus self-edits of the policy of round r (``round{r}/policy``, after
                      ``r - 1`` ReST-EM updates; r = 2 .. rounds + 1; the last is SEAL).
* ``external``        the passage plus "self-edits" written by an external model through an
                      OpenAI-compatible chat endpoint (the paper's GPT-4.1 synthetic data), or read
                      from a file in the SEAL authors' layout (``external.path``, e.g. their
                      ``gpt4_1_val.json``); only when one of ``base_url`` or ``path`` is set.

Settings: ``single`` (a fresh LoRA per passage), ``cpt`` (one LoRA on every held-out
passage at once) and ``continual`` (one passage after another, LoRAs merged in turn).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from ...ids import base_model_dir, policy_dir

BASE, PASSAGE, BASE_SELF_EDITS, EXTERNAL = "base", "passage", "base_self_edits", "external"
SETTINGS: tuple[str, ...] = ("single", "cpt", "continual")
ADAPT_CHOICES: tuple[str, ...] = ("policy", "base")
_ROUND = re.compile(r"^round(\d+)$")


class HeldoutConfigError(ValueError):
    """A ``knowledge.heldout`` value that the schema cannot rule out is wrong."""


def heldout_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``knowledge.heldout`` (the schema's defaults are applied when the config is validated)."""
    return config["knowledge"]["heldout"]


def policy_rounds(config: Mapping[str, Any]) -> list[int]:
    """Rounds whose policy folder exists after a run: round2 .. round{R+1}."""
    return list(range(2, int(config["knowledge"]["rounds"]) + 2))


def _expand(names: Sequence[str], config: Mapping[str, Any], key: str) -> list[str]:
    rounds = policy_rounds(config)
    out: list[str] = []
    for name in names:
        if name == "rounds":
            out += [f"round{r}" for r in rounds]
        elif name == "last_round":
            out.append(f"round{rounds[-1]}")
        else:
            match = _ROUND.match(name)
            if match and int(match.group(1)) not in rounds:
                raise HeldoutConfigError(
                    f"knowledge.heldout.{key} names {name!r} but only round{rounds[0]}..round{rounds[-1]} "
                    f"have a policy with knowledge.rounds={config['knowledge']['rounds']}"
                )
            out.append(name)
    return list(dict.fromkeys(out))


def external_enabled(config: Mapping[str, Any]) -> bool:
    """An endpoint (``external.base_url``) or a file in the SEAL layout (``external.path``) is set."""
    external = heldout_config(config)["external"]
    return bool(external.get("base_url") or external.get("path"))


def external_file(config: Mapping[str, Any]) -> str | None:
    return heldout_config(config)["external"].get("path") or None


def heldout_methods(config: Mapping[str, Any]) -> list[str]:
    """Methods to evaluate, in table order; ``external`` only when its endpoint is configured."""
    hcfg = heldout_config(config)
    if not hcfg["enabled"]:
        return []
    methods = _expand(hcfg["methods"], config, "methods")
    return [m for m in methods if m != EXTERNAL or external_enabled(config)]


def heldout_settings(config: Mapping[str, Any]) -> list[str]:
    hcfg = heldout_config(config)
    return [s for s in SETTINGS if s in hcfg["settings"]] if hcfg["enabled"] else []


def continual_methods(config: Mapping[str, Any]) -> list[str]:
    """The continual setting runs only for these (a subset of the enabled methods)."""
    if "continual" not in heldout_settings(config):
        return []
    enabled = heldout_methods(config)
    wanted = _expand(heldout_config(config)["continual_methods"], config, "continual_methods")
    return [m for m in enabled if m in wanted]


def evaluations(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (setting, method) pair the summary holds."""
    pairs = []
    for setting in heldout_settings(config):
        methods = continual_methods(config) if setting == "continual" else heldout_methods(config)
        pairs += [(setting, m) for m in methods]
    return pairs


def method_round(method: str) -> int | None:
    """ReST-EM updates behind the model that wrote the self-edits (None: no self-edits)."""
    if method == BASE_SELF_EDITS:
        return 0
    match = _ROUND.match(method)
    return int(match.group(1)) - 1 if match else None


def needs_self_edits(method: str) -> bool:
    return method not in (BASE, PASSAGE)


def writer_model(method: str, kn_dir: str) -> str | None:
    """Folder of the model that writes ``method``'s self-edits (None for base/passage/external)."""
    if method == BASE_SELF_EDITS:
        return policy_dir(kn_dir, 1)
    match = _ROUND.match(method)
    return policy_dir(kn_dir, int(match.group(1))) if match else None


def adapted_model(method: str, kn_dir: str, adapt: str) -> str:
    """The model a LoRA is trained on: the self-edit writer itself (``policy``) or always the base."""
    if adapt not in ADAPT_CHOICES:
        raise HeldoutConfigError(f"knowledge.heldout.adapt must be policy or base, got {adapt!r}")
    writer = writer_model(method, kn_dir)
    return writer if adapt == "policy" and writer is not None else base_model_dir(kn_dir)


def method_order(methods: Sequence[str]) -> list[str]:
    """Table order: base, passage, base self-edits, rounds ascending, external."""
    def key(m: str) -> tuple[int, int]:
        fixed = {BASE: 0, PASSAGE: 1, BASE_SELF_EDITS: 2, EXTERNAL: 4}
        if m in fixed:
            return (fixed[m], 0)
        match = _ROUND.match(m)
        return (3, int(match.group(1))) if match else (5, 0)
    return sorted(dict.fromkeys(methods), key=key)


def continual_order(passages: Sequence, limit: int | None) -> list:
    """The passages the continual setting learns, in order: the first ``limit`` (None: all)."""
    return list(passages[:limit] if limit else passages)
