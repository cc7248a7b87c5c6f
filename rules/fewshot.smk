# Few-shot ARC (SEAL section 4.2), one round: generate -> inner loop (TTT) -> score -> rewards;
# ReST-EM lives in restem.smk. Held-out evaluation: ICL, TTT with base / RL self-edits, oracle TTT.
# Every step is a file, so any shard, round or evaluation row can be rebuilt on its own.

FS_CFG = config.get("fewshot") or {}


def fs_rounds():
    return list(range(1, FS_CFG.get("rounds", 0) + 1))


def fs_shards():
    if not FS_CFG:
        return []
    return list(range(FS_CFG["data"]["n_train"] // FS_CFG["self_edits"]["shard_size"]))


def fs_slots():
    if not FS_CFG:
        return []
    se = FS_CFG["self_edits"]
    return [f"p{pos:02d}-k{sample}" for pos in range(se["shard_size"]) for sample in range(se["k"])]


def fs_policy(wildcards):
    """Round 1 samples from (and adapts) the base model; round r>1 the policy round r-1 wrote."""
    r = int(wildcards.r)
    return f"{FS}/base/model" if r == 1 else f"{FS}/round{r}/policy"


def fs_eval_policy(wildcards):
    """The policy after p ReST-EM rounds: the base model, or the one round p's update wrote."""
    p = int(wildcards.p)
    return f"{FS}/base/model" if p == 0 else f"{FS}/round{p + 1}/policy"


def fs_adapter_files():
    return [
        f"{FS}/round{{r}}/adapters/shard{{s}}/{slot}/rep0/{name}"
        for slot in fs_slots()
        for name in ("adapter_config.json", "adapter_model.safetensors")
    ]


def fs_ttt_evals():
    return [f"{FS}/eval/ttt_round{p}.csv" for p in range(FS_CFG.get("rounds", 0) + 1)]


def fewshot_eval_targets():
    return [f"{FS}/eval/summary.csv"]


def fewshot_targets():
    targets = []
    for r in fs_rounds():
        targets += [f"{FS}/round{r}/rewards.csv", f"{FS}/round{r}/filtered.jsonl"]
    return targets + fewshot_eval_targets()


rule fewshot_prepare_tasks:
    output:
        train=f"{FS}/data/train.jsonl",
        eval=f"{FS}/data/eval.jsonl",
    log:
        f"{OUT}/logs/fewshot/prepare_tasks.log",
    threads: 1
    resources:
        **res("fewshot_prepare_tasks", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_prepare_tasks.py"


rule fewshot_generate_self_edits:
    input:
        policy=fs_policy,
        tasks=f"{FS}/data/train.jsonl",
    output:
        f"{FS}/round{{r}}/self_edits/shard{{s}}.jsonl",
    log:
        f"{OUT}/logs/fewshot/round{{r}}/generate_self_edits/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/round{{r}}/generate_self_edits/shard{{s}}.tsv"
    threads: threads_of("fewshot_generate_self_edits", "gpu")
    resources:
        **res("fewshot_generate_self_edits", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_generate_self_edits.py"


# As in the knowledge domain, update() keeps every adapter that is complete, valid and
# trained from the same inputs when a shard is rerun, and retrains only the rest.
rule fewshot_inner_loop:
    input:
        edits=f"{FS}/round{{r}}/self_edits/shard{{s}}.jsonl",
        tasks=f"{FS}/data/train.jsonl",
        policy=fs_policy,
    output:
        adapters=update(fs_adapter_files()),
        manifest=f"{FS}/round{{r}}/adapters/shard{{s}}.json",
    params:
        root=lambda wc: f"{FS}/round{wc.r}/adapters/shard{wc.s}",
    log:
        f"{OUT}/logs/fewshot/round{{r}}/inner_loop/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/round{{r}}/inner_loop/shard{{s}}.tsv"
    threads: threads_of("fewshot_inner_loop", "gpu")
    resources:
        **res("fewshot_inner_loop", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_inner_loop.py"


rule fewshot_score_adapters:
    input:
        edits=f"{FS}/round{{r}}/self_edits/shard{{s}}.jsonl",
        tasks=f"{FS}/data/train.jsonl",
        manifest=f"{FS}/round{{r}}/adapters/shard{{s}}.json",
        policy=fs_policy,
    output:
        f"{FS}/round{{r}}/eval/shard{{s}}.csv",
    log:
        f"{OUT}/logs/fewshot/round{{r}}/score_adapters/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/round{{r}}/score_adapters/shard{{s}}.tsv"
    threads: threads_of("fewshot_score_adapters", "gpu")
    resources:
        **res("fewshot_score_adapters", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_score_adapters.py"


rule fewshot_rewards:
    input:
        evals=expand(f"{FS}/round{{{{r}}}}/eval/shard{{s}}.csv", s=fs_shards()),
        edits=expand(f"{FS}/round{{{{r}}}}/self_edits/shard{{s}}.jsonl", s=fs_shards()),
    output:
        report(
            f"{FS}/round{{r}}/rewards.csv",
            caption="../report/fewshot_rewards.rst",
            category="Few-shot ARC",
            subcategory="Round {r}",
            labels={"figure": "rewards.csv", "round": "{r}"},
        ),
    log:
        f"{OUT}/logs/fewshot/round{{r}}/rewards.log",
    threads: 1
    resources:
        **res("fewshot_rewards", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_rewards.py"


# ---- held-out evaluation (tasks in data/eval.jsonl, never used in training) -----------


rule fewshot_eval_icl:
    input:
        tasks=f"{FS}/data/eval.jsonl",
        policy=f"{FS}/base/model",
    output:
        f"{FS}/eval/icl.csv",
    log:
        f"{OUT}/logs/fewshot/eval/icl.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/eval/icl.tsv"
    threads: threads_of("fewshot_eval_icl", "gpu")
    resources:
        **res("fewshot_eval_icl", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_eval_icl.py"


rule fewshot_eval_self_edits:
    input:
        tasks=f"{FS}/data/eval.jsonl",
        policy=fs_eval_policy,
    output:
        edits=f"{FS}/eval/round{{p}}/self_edits.jsonl",
        manifest=f"{FS}/eval/round{{p}}/adapters.json",
        detail=f"{FS}/eval/ttt_round{{p}}.csv",
    params:
        root=lambda wc: f"{FS}/eval/round{wc.p}/adapters",
    wildcard_constraints:
        p=r"\d+",
    log:
        f"{OUT}/logs/fewshot/eval/ttt_round{{p}}.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/eval/ttt_round{{p}}.tsv"
    threads: threads_of("fewshot_eval_self_edits", "gpu")
    resources:
        **res("fewshot_eval_self_edits", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_eval_self_edits.py"


rule fewshot_eval_oracle:
    input:
        tasks=f"{FS}/data/eval.jsonl",
        policy=f"{FS}/base/model",
    output:
        manifest=f"{FS}/eval/oracle/adapters.json",
        detail=f"{FS}/eval/oracle.csv",
    params:
        root=f"{FS}/eval/oracle/adapters",
    log:
        f"{OUT}/logs/fewshot/eval/oracle.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/eval/oracle.tsv"
    threads: threads_of("fewshot_eval_oracle", "gpu")
    resources:
        **res("fewshot_eval_oracle", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_eval_oracle.py"


rule fewshot_eval_summary:
    input:
        icl=f"{FS}/eval/icl.csv",
        ttt=fs_ttt_evals(),
        oracle=f"{FS}/eval/oracle.csv",
    output:
        report(
            f"{FS}/eval/summary.csv",
            caption="../report/fewshot_summary.rst",
            category="Few-shot ARC",
            subcategory="Evaluation",
            labels={"figure": "summary.csv"},
        ),
    log:
        f"{OUT}/logs/fewshot/eval/summary.log",
    threads: 1
    resources:
        **res("fewshot_eval_summary", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/fewshot_eval_summary.py"
