"""Config validation, defaults and per-rule resources for schedulers.

The schema (config/schema.yaml) catches wrong keys and types and holds every default,
once: validation fills them in, so the rules and the library read one complete config.
The checks here catch combinations the schema cannot express, always naming the key.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping


class ConfigError(ValueError):
    """Raised with the dotted name of the config key at fault."""


def _require_divisible(cfg: Mapping[str, Any], domain: str, count_key: str, shard_key: str) -> None:
    count = cfg[domain]["data"][count_key]
    shard = cfg[domain]["self_edits"]["shard_size"]
    if count % shard:
        raise ConfigError(
            f"{domain}.data.{count_key}={count} must be a multiple of {domain}.self_edits.shard_size={shard} "
            "(every inner-loop job trains the same number of adapters, so their files are known in advance)"
        )


def check_config(cfg: Mapping[str, Any]) -> None:
    domains = cfg["domains"]
    for domain in domains:
        if domain not in cfg:
            raise ConfigError(f"domains lists {domain!r} but the config has no '{domain}' section")
    for domain in domains:  # the same rules in both domains
        base = cfg[domain]["base_model"]
        if base.get("path") and base.get("source"):
            raise ConfigError(f"{domain}.base_model: set path (a hub id or model folder) or source (a GGUF model), "
                              "not both")
        if str(base.get("path") or "").lower().endswith(".gguf"):
            raise ConfigError(f"{domain}.base_model.path is a GGUF file: set it as {domain}.base_model.source "
                              "(converted once to a Hugging Face folder)")
        _require_divisible(cfg, domain, "n_train", "shard_size")
        if cfg[domain]["sft"].get("replay") and (base.get("path") or base.get("source")):
            raise ConfigError(f"{domain}.sft.replay={cfg[domain]['sft']['replay']} mixes in the pretraining corpus "
                              f"of a built base model, but {domain}.base_model names a real one (its corpus is "
                              "not at hand): set replay to 0")
        keep, k = cfg[domain]["restem"]["keep_top_k"], cfg[domain]["self_edits"]["k"]
        if keep > k:
            raise ConfigError(f"{domain}.restem.keep_top_k={keep} exceeds {domain}.self_edits.k={k}")
    if "knowledge" in domains:
        kcfg = cfg["knowledge"]
        if kcfg["data"]["source"] in ("squad_json", "passages_json") and not kcfg["data"]["path"]:
            raise ConfigError(f"knowledge.data.path is required when knowledge.data.source is {kcfg['data']['source']!r}")
        imported = kcfg["import_self_edits"]
        late = [r for r in imported["rounds"] if r > kcfg["rounds"]]
        if imported["path"] and late:
            raise ConfigError(f"knowledge.import_self_edits.rounds names round(s) {late} but knowledge.rounds is "
                              f"{kcfg['rounds']}")
        external = kcfg["heldout"]["external"]
        if external["base_url"] and external["path"]:
            raise ConfigError("knowledge.heldout.external: set base_url (an endpoint writes the synthetic data) or "
                              "path (a file holds it), not both")
    for domain in domains:
        build = cfg[domain]["base_model"].get("build") or {}
        if str(build.get("corpus", "")).startswith("organism") and domain != "fewshot":
            raise ConfigError(f"{domain}.base_model.build.corpus {build['corpus']!r} is a few-shot corpus")
    if "fewshot" in domains and cfg["fewshot"]["data"]["source"] == "organism":
        base = cfg["fewshot"]["base_model"]
        organism = cfg["fewshot"]["data"]["organism"]
        family = organism.get("family", "compositions")
        corpus = "organism_colour_maps" if family == "colour_maps" else "organism"
        builds = not base.get("path") and not base.get("source")
        if builds and (base.get("build") or {}).get("corpus") != corpus:
            # Another corpus would not keep the held-out rules out of pretraining by construction.
            raise ConfigError(f"fewshot.data.source 'organism' (family {family}) builds its tiny model on that "
                              f"family's pretraining tasks: set fewshot.base_model.build.corpus: {corpus}")
        if family == "colour_maps" and organism["max_side"] != 3:
            raise ConfigError(f"fewshot.data.organism.max_side={organism['max_side']}: the colour_maps family's "
                              "grids are 3x3 (its pretraining corpus copies 3x3 grids); set it to 3")
        if organism["min_demos"] > organism["max_demos"]:
            raise ConfigError(f"fewshot.data.organism.min_demos={organism['min_demos']} exceeds "
                              f"max_demos={organism['max_demos']}")
    backend = cfg["backend"]
    if backend["name"] == "server" and not backend["base_url"]:
        raise ConfigError("backend.base_url is required when backend.name is 'server'")


# Conda environments (``--sdm conda``): rules that generate text run where vLLM is installed
# whenever the backend may be vLLM; tests/test_envs.py checks the files against the code.
RULE_ENV = "../envs/sealflow.yaml"
VLLM_ENV = "../envs/vllm.yaml"


def generation_env(cfg: Mapping[str, Any]) -> str:
    """The conda env (relative to a rules file) of a rule that generates through ``backend``."""
    return VLLM_ENV if cfg["backend"]["name"] in ("vllm", "auto") else RULE_ENV


def base_model_kind(cfg: Mapping[str, Any]) -> str:
    """Resource family of ``base_model``: writing a pointer to a hub id or path needs no GPU
    (``cpu``); building a tiny model trains one (``gpu``, as the other training rules)."""
    builds = any(not cfg[d]["base_model"].get("path") and not cfg[d]["base_model"].get("source")
                 for d in cfg["domains"])
    return "gpu" if builds else "cpu"


def rule_resources(cfg: Mapping[str, Any], rule: str, kind: str) -> dict[str, Any]:
    """Snakemake ``resources:`` for ``rule`` of ``kind`` (cpu|gpu), with per-rule overrides.

    GPUs map onto SLURM as the snakemake slurm executor expects: ``gpu``/``gpu_model``
    become ``--gpus=[model:]n``, ``gres`` becomes ``--gres``, ``constraint`` ``--constraint``.
    """
    res_cfg = cfg["resources"]
    merged = {**res_cfg[kind], **res_cfg["rules"].get(rule, {})}
    out: dict[str, Any] = {
        "mem_mb": int(merged["mem_mb"]),
        "runtime": int(merged["runtime"]),
        "cpus_per_task": int(merged["threads"]),
    }
    if merged["slurm_partition"]:
        out["slurm_partition"] = str(merged["slurm_partition"])
    if merged["slurm_account"]:
        out["slurm_account"] = str(merged["slurm_account"])
    gpus = int(merged["gpus"] or 0)
    if gpus > 0:
        request = merged["gpu_request"]
        gpu_type = merged["gpu_type"]
        if request == "gpus":
            out["gpu"] = gpus
            if gpu_type:
                out["gpu_model"] = str(gpu_type)
        elif request == "gres":
            out["gres"] = f"gpu:{gpu_type}:{gpus}" if gpu_type else f"gpu:{gpus}"
        elif request == "constraint":
            out["gpu"] = gpus
            if gpu_type:
                out["constraint"] = str(gpu_type)
        else:
            raise ConfigError(f"resources.{kind}.gpu_request must be gpus, gres or constraint, got {request!r}")
    return out


def _dotted(path) -> str:
    """``knowledge.sft.lr``; a part that is not a plain name (e.g. ``"a b"`` or ``"\\n"``) is quoted."""
    parts = [str(p) if str(p).replace("_", "").replace("-", "").isalnum() else repr(p) for p in path]
    return ".".join(parts) or "<top level>"


def _one_edit_apart(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with one character inserted, deleted, replaced or two swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _known_keys(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    """Property names a (sub)schema accepts, following ``$ref`` and ``allOf``."""
    keys = set(schema.get("properties", {}))
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        keys |= _known_keys(target, root)
    for sub in schema.get("allOf", []):
        keys |= _known_keys(sub, root)
    return keys


def _unknown_key_line(path, key: str, known: set[str]) -> str:
    near = sorted(k for k in known if _one_edit_apart(key, k))
    hint = f" (did you mean {' or '.join(repr('.'.join([*map(str, path), k])) for k in near)}?)" if near else ""
    return f"{_dotted([*path, key])}: unknown key{hint}"


def _filling_validator(schema: Mapping[str, Any]):
    """A Draft 2020-12 validator that also writes each missing key's ``default:`` into the config.

    Defaults are set before a level's properties are checked, so a section defaulting to
    ``{}`` is then filled with its own keys' defaults in turn.
    """
    import jsonschema

    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, subschema)

    return jsonschema.validators.extend(base, {"properties": properties_with_defaults})(schema)


def schema_errors(cfg: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every schema violation as one line that starts with the dotted config key.

    Fills in the schema's defaults as a side effect (see :func:`_filling_validator`).
    """
    validator = _filling_validator(schema)
    lines = []
    for err in sorted(validator.iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(err.instance, dict):
            known = _known_keys(err.schema, schema)
            for key in sorted(set(err.instance) - known):
                lines.append(_unknown_key_line(list(err.absolute_path), key, known))
        else:
            lines.append(f"{_dotted(err.absolute_path)}: {err.message}")
    return lines


def load_schema(schema_path: str) -> dict[str, Any]:
    import yaml

    with open(schema_path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def validate_config(cfg: dict[str, Any], schema_path: str) -> None:
    """Fill in defaults, check ``cfg`` against the schema, then cross-key rules; raise one readable error."""
    problems = schema_errors(cfg, load_schema(schema_path))
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    check_config(cfg)
