# Every helper function of the workflow: paths, slots, policies, targets and resources.
# Paths and identities come from sealflow.ids (shared with the library, so a pattern is
# written once); the other rules files hold rules only.
import os

from sealflow import ids
from sealflow.config import base_model_kind, generation_env, rule_resources
from sealflow.hub import is_hub_id
from sealflow.gguf_source import source_file
from sealflow.knowledge.heldout import methods as kh
from sealflow.report import COST_TITLE, DOMAIN_TITLES

OUT = f"results/{config['run']}"
KN = f"{OUT}/knowledge"
KH = f"{KN}/heldout"
FS = f"{OUT}/fewshot"
REP = f"{OUT}/report"
DOMAINS = config["domains"]
DOMAIN_DIRS = {"knowledge": KN, "fewshot": FS}
KH_METHOD = r"base|passage|base_self_edits|external|round\d+"


wildcard_constraints:
    r=r"\d+",
    s=r"\d+",
    domain=r"knowledge|fewshot",
    method=r"[A-Za-z0-9_.+-]+",


# ---- what each rule reads of the config -------------------------------------------


def uses(*keys):
    """The part of the config a rule's outputs depend on, as ``params: settings=uses(...)``.

    Snakemake reruns a job when its params change, and the stage receives exactly this
    part as its ``config`` (``sealflow.stages.run``), so a setting a stage reads but its
    rule does not declare fails at once instead of going stale unnoticed.
    """
    return ids.config_subset(config, keys)


def domain_uses(*keys):
    """``uses`` for rules with a {domain} wildcard: ``"{domain}.sft"`` names that domain's section."""
    return lambda wildcards: uses(*(k.format(domain=wildcards.domain) for k in keys))


def data_files(domain):
    """Local data files a domain's preparation reads, so editing one reruns it."""
    data = config[domain]["data"]
    names = ("path",) if domain == "knowledge" else ("train_challenges", "train_solutions", "eval_challenges",
                                                     "eval_solutions")
    return [data[n] for n in names if data.get(n)]


def base_model_inputs(wildcards):
    """A hub id is fetched first (base_model_fetch); a GGUF source's file is an input, so a
    changed file reruns its conversion and everything after it; a tiny build needs nothing."""
    base = config[wildcards.domain]["base_model"]
    inputs = {}
    if base.get("path") and is_hub_id(base["path"]):
        inputs["fetched"] = f"{OUT}/{wildcards.domain}/base/fetched.json"
    gguf = source_file(base.get("source"))
    if gguf:
        inputs["gguf"] = gguf
    return inputs


# ---- resources ---------------------------------------------------------------------


def res(rule_name, kind):
    """Snakemake resources for a rule: `kind` is cpu or gpu, overridable per rule in config."""
    return rule_resources(config, rule_name, kind)


def generation_conda():
    """conda env of rules that generate (params use "backend"): envs/vllm.yaml when vLLM may run."""
    return generation_env(config)


def threads_of(rule_name, kind):
    return res(rule_name, kind)["cpus_per_task"]


def retries():
    """Rule-level retries from config; None leaves it to --retries / the profile.

    A rule-level value (even 0) overrides --retries, and on SLURM it is applied inside
    the job as well, so the default is None and profiles set retries.
    """
    return config["resources"]["retries"]


# ---- both domains: rounds, shards, slots and policies --------------------------------


def rounds_of(domain):
    return list(range(1, config[domain]["rounds"] + 1)) if domain in DOMAINS else []


def shards_of(domain):
    cfg = config[domain]
    return list(range(ids.n_shards(cfg["data"]["n_train"], cfg["self_edits"]["shard_size"])))


def slots_of(domain):
    se = config[domain]["self_edits"]
    return ids.shard_slots(se["shard_size"], se["k"])


def trained_repeats(domain):
    """Adapters per self-edit: knowledge trains one per repeat unless reused; ARC one."""
    if domain == "fewshot":
        return 1
    inner = config["knowledge"]["inner_loop"]
    return 1 if inner["reuse_training"] else inner["eval_repeats"]


def adapter_root(domain, r, s):
    return f"{DOMAIN_DIRS[domain]}/round{r}/adapters/shard{s}"


def adapters_of_manifest(wildcards, output):
    """A manifest's adapters live in the folder of the same name (shard0.json -> shard0/)."""
    return os.path.splitext(output.manifest)[0]


def adapter_outputs(domain):
    """The adapter files of one shard, with {r} and {s} left as wildcards (with a passage-only
    baseline, one more adapter per passage)."""
    slots = slots_of(domain)
    if domain == "knowledge" and config["knowledge"]["inner_loop"]["reward_baseline"] == "passage":
        slots = slots + ids.baseline_slots(config["knowledge"]["self_edits"]["shard_size"])
    return ids.adapter_files(adapter_root(domain, "{r}", "{s}"), slots, trained_repeats(domain))


def round_adapter_outputs(domain):
    """A shard's adapters as inner-loop outputs: update() keeps the valid ones when a shard reruns;
    with keep_adapters false they are temp(), deleted once the shard's scoring job has read them."""
    files = update(adapter_outputs(domain))
    return files if config["keep_adapters"] else temp(files)


def round_policy(wildcards):
    """The policy of round r: the base model for r = 1, else what round r-1's update wrote."""
    return ids.policy_dir(f"{OUT}/{wildcards.domain}", int(wildcards.r))


def kn_round_policy(wildcards):
    return ids.policy_dir(KN, int(wildcards.r))


def kn_generate_inputs(wildcards):
    """The round's policy and passages, and for rounds listed in knowledge.import_self_edits.rounds
    the file whose completions are that round's self-edits (the stage imports iff it is given)."""
    inputs = {"policy": kn_round_policy(wildcards), "passages": f"{KN}/data/train.jsonl"}
    imported = config["knowledge"]["import_self_edits"]
    if imported["path"] and int(wildcards.r) in imported["rounds"]:
        inputs["imported"] = imported["path"]
    return inputs


def fs_round_policy(wildcards):
    return ids.policy_dir(FS, int(wildcards.r))


def update_input_policy(wildcards):
    """update_policy for round r trains the policy of round r-1 (or, per sft.start_from, the base
    model) on round r-1's kept edits."""
    start_from = config[wildcards.domain]["sft"]["start_from"]
    return ids.update_start_policy(f"{OUT}/{wildcards.domain}", int(wildcards.r), start_from)


def update_input_filtered(wildcards):
    return f"{OUT}/{wildcards.domain}/round{int(wildcards.r) - 1}/filtered.jsonl"


def round_edits(wildcards):
    root = f"{OUT}/{wildcards.domain}/round{wildcards.r}/self_edits"
    return [f"{root}/shard{s}.jsonl" for s in shards_of(wildcards.domain)]


def round_rewards():
    """Every round's rewards.csv, all domains: one row per self-edit."""
    return [f"{DOMAIN_DIRS[d]}/round{r}/rewards.csv" for d in DOMAINS for r in rounds_of(d)]


def round_targets(domain):
    d = DOMAIN_DIRS[domain]
    return [f"{d}/round{r}/{name}" for r in rounds_of(domain) for name in ("rewards.csv", "filtered.jsonl")]


# ---- knowledge: held-out evaluation ----------------------------------------------------


def kh_enabled():
    return "knowledge" in DOMAINS and bool(kh.heldout_methods(config))


def kh_model(method):
    return kh.adapted_model(method, KN, kh.heldout_config(config)["adapt"])


def kh_writer_label(method):
    if method == kh.EXTERNAL:
        label = f"external:{kh.heldout_config(config)['external']['model']}"
        return f"{label} (file {kh.external_file(config)})" if kh.external_file(config) else label
    return kh.writer_model(method, KN) or ""


def kh_sample_inputs(wildcards):
    inputs = {"passages": f"{KN}/data/val.jsonl"}
    writer = kh.writer_model(wildcards.method, KN)
    if writer is not None:
        inputs["policy"] = writer
    return inputs


def kh_external_inputs(wildcards):
    """Validation passages, and the external model's synthetic-data file where one is configured."""
    inputs = {"passages": f"{KN}/data/val.jsonl"}
    if kh.external_file(config):
        inputs["imported"] = kh.external_file(config)
    return inputs


def kh_eval_inputs(wildcards):
    inputs = {"passages": f"{KN}/data/val.jsonl", "model": kh_model(wildcards.method)}
    if kh.needs_self_edits(wildcards.method):
        inputs["edits"] = f"{KH}/self_edits/{wildcards.method}.jsonl"
    return inputs


def kh_shards():
    """Shards of the single setting: every validation passage, the last shard possibly smaller."""
    return list(range(-(-config["knowledge"]["data"]["n_val"] // kh.heldout_config(config)["shard_size"])))


def kh_answer_files(wildcards):
    """What one (setting, method) row file grades: single's shards in order, else one file."""
    setting = wildcards.setting if "setting" in wildcards.keys() else "continual"
    if setting == "single":
        return [f"{KH}/single/{wildcards.method}/shard{s}.answers.jsonl" for s in kh_shards()]
    return [f"{KH}/{setting}/{wildcards.method}.answers.jsonl"]


def kh_work(wildcards):
    """Where a held-out job keeps its finished items until its answers are written."""
    names = wildcards.keys()
    setting = wildcards.setting if "setting" in names else "single"
    folder = f"{KH}/work/{setting}/{wildcards.method}"
    return os.path.join(folder, f"shard{wildcards.s}") if "s" in names else folder


def kh_evaluations():
    return kh.evaluations(config) if kh_enabled() else []


def kh_continual_methods():
    return kh.continual_methods(config) if kh_enabled() else []


def kh_row_files():
    return [f"{KH}/{setting}/{method}.csv" for setting, method in kh_evaluations()]


def kh_matrix_files():
    return [f"{KH}/continual_matrix_{m}.csv" for m in kh_continual_methods()]


def kh_targets():
    """The summary tables and every continual matrix (the report plots one per method)."""
    if not kh_enabled():
        return []
    return [f"{KH}/summary.csv", f"{KH}/table.csv", f"{KH}/forgetting.csv", f"{KH}/effects.csv", *kh_matrix_files()]


# ---- few-shot ARC: held-out evaluation --------------------------------------------------


def fs_eval_rounds():
    """Rounds whose policy the evaluation samples from: 1 (the base model) .. rounds + 1."""
    return list(range(1, config["fewshot"]["rounds"] + 2)) if "fewshot" in DOMAINS else []


def fs_ttt_evals():
    return [f"{FS}/eval/ttt_round{r}.csv" for r in fs_eval_rounds()]


def fs_eval_targets():
    return [f"{FS}/eval/summary.csv"] if "fewshot" in DOMAINS else []


# ---- report -------------------------------------------------------------------------


def domain_title(wildcards):
    return DOMAIN_TITLES[wildcards.domain]


def pipeline_targets():
    """Everything `rule all` asks for except the report's own outputs."""
    targets = []
    if "knowledge" in DOMAINS:
        targets += round_targets("knowledge") + kh_targets() + [f"{KN}/training/rounds.csv"]
    if "fewshot" in DOMAINS:
        targets += round_targets("fewshot") + fs_eval_targets()
    return list(dict.fromkeys(targets))


def first_and_last_round_edits():
    rounds = rounds_of("knowledge")
    return {f"{which}_edits": [f"{KN}/round{r}/self_edits/shard{s}.jsonl" for s in shards_of("knowledge")]
            for which, r in (("first", rounds[0]), ("last", rounds[-1]))}


def fs_round_files():
    """Every ARC round's rewards and self-edit shards (round after round), for the choices table."""
    rounds = rounds_of("fewshot")
    return {"rewards": [f"{FS}/round{r}/rewards.csv" for r in rounds],
            "edits": [f"{FS}/round{r}/self_edits/shard{s}.jsonl" for r in rounds for s in shards_of("fewshot")]}


def report_reward_files(wildcards):
    return [f"{OUT}/{wildcards.domain}/round{r}/rewards.csv" for r in rounds_of(wildcards.domain)]


def benchmark_patterns():
    """Rule name -> its benchmark: pattern relative to the run's benchmarks folder."""
    root = f"{OUT}/benchmarks/"
    patterns = {r.name: str(r.benchmark) for r in workflow.rules if isinstance(r.benchmark, str)}
    return {name: pat[len(root) :] for name, pat in sorted(patterns.items()) if pat.startswith(root)}


def report_targets():
    targets = []
    for domain in DOMAINS:
        if rounds_of(domain):
            targets += [f"{REP}/{domain}/reward_distribution.svg", f"{REP}/{domain}/positive_fraction.svg"]
            targets += [f"{REP}/{domain}/round{r}/examples.html" for r in rounds_of(domain)]
    if rounds_of("knowledge"):
        targets += [f"{REP}/knowledge/training_rounds.svg", f"{REP}/knowledge/first_vs_last.html"]
    if rounds_of("fewshot"):
        targets.append(f"{REP}/fewshot/config_choices.html")
    if kh_enabled():
        targets += [f"{REP}/knowledge/heldout_accuracy.svg", f"{REP}/knowledge/heldout_summary.html",
                    f"{REP}/knowledge/heldout_effects.svg"]
        targets += [f"{REP}/knowledge/forgetting_{m}.svg" for m in kh_continual_methods()]
    if fs_eval_targets():
        targets += [f"{REP}/fewshot/arc_success.svg", f"{REP}/fewshot/arc_summary.html",
                    f"{REP}/fewshot/arc_effects.svg"]
    if pipeline_targets():
        targets += [f"{REP}/cost/{name}" for name in ("cost_per_rule.svg", "cost_per_rule.html",
                                                         "seconds_per_self_edit.html")]
    return targets


def all_targets():
    return pipeline_targets() + report_targets()
