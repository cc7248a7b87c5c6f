# Path helpers, resources and derived settings. No pipeline logic lives here.
from sealflow.config import rule_resources

OUT = f"results/{config['run']}"
KN = f"{OUT}/knowledge"
FS = f"{OUT}/fewshot"
DOMAINS = config.get("domains", ["knowledge"])


wildcard_constraints:
    r=r"\d+",
    s=r"\d+",
    domain=r"knowledge|fewshot",


def res(rule_name, kind):
    """Snakemake resources for a rule: `kind` is cpu or gpu, overridable per rule in config."""
    return rule_resources(config, rule_name, kind)


def threads_of(rule_name, kind):
    return res(rule_name, kind)["cpus_per_task"]


def retries():
    """Rule-level retries from config; None leaves it to --retries / the profile.

    A rule-level value (even 0) overrides --retries, and on SLURM it is applied inside
    the job as well, so the default is None and profiles set retries.
    """
    return config["resources"].get("retries")


# ---- knowledge domain: shards and edit slots are known from config alone ----
K_CFG = config.get("knowledge", {})


def kn_rounds():
    return list(range(1, K_CFG["rounds"] + 1))


def kn_shards():
    return list(range(K_CFG["data"]["n_train"] // K_CFG["self_edits"]["shard_size"]))


def kn_slots():
    se = K_CFG["self_edits"]
    return [f"p{pos:02d}-k{sample}" for pos in range(se["shard_size"]) for sample in range(se["k"])]


def kn_trained_repeats():
    inner = K_CFG["inner_loop"]
    return 1 if inner.get("reuse_training") else inner["eval_repeats"]


def kn_policy(wildcards):
    """Round 1 adapts the base model; round r>1 the policy that round r-1's update wrote."""
    r = int(wildcards.r)
    return f"{KN}/base/model" if r == 1 else f"{KN}/round{r}/policy"


def kn_adapter_files(wildcards=None):
    s = "{s}" if wildcards is None else wildcards.s
    return [
        f"{KN}/round{{r}}/adapters/shard{{s}}/{slot}/rep{rep}/{name}"
        for slot in kn_slots()
        for rep in range(kn_trained_repeats())
        for name in ("adapter_config.json", "adapter_model.safetensors")
    ]


def kn_round_targets(r):
    return [f"{KN}/round{r}/rewards.csv", f"{KN}/round{r}/filtered.jsonl"]


def all_targets():
    targets = []
    if "knowledge" in DOMAINS:
        for r in kn_rounds():
            targets += kn_round_targets(r)
        targets += knowledge_eval_targets()
    if "fewshot" in DOMAINS:
        targets += fewshot_targets()
    targets += report_targets()
    return targets
