# Few-shot ARC (SEAL section 4.2), one round: generate -> inner loop (TTT) -> score -> rewards;
# ReST-EM lives in restem.smk, the held-out evaluation in fewshot_eval.smk. Every step is
# a file, so any shard or round can be rebuilt on its own.

rule fewshot_prepare_tasks:
    input:
        data_files("fewshot"),
    output:
        train=f"{FS}/data/train.jsonl",
        eval=f"{FS}/data/eval.jsonl",
    params:
        stage="fewshot.prepare_tasks",
        settings=uses("fewshot.data"),
    log:
        f"{OUT}/logs/fewshot/prepare_tasks.log",
    threads: 1
    resources:
        **res("fewshot_prepare_tasks", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule fewshot_generate_self_edits:
    input:
        policy=fs_round_policy,
        tasks=f"{FS}/data/train.jsonl",
    output:
        out=f"{FS}/round{{r}}/self_edits/shard{{s}}.jsonl",
    params:
        stage="fewshot.generate_self_edits",
        settings=uses("seed", "device", "backend", "fewshot.self_edits"),
    log:
        f"{OUT}/logs/fewshot/round{{r}}/generate_self_edits/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/round{{r}}/generate_self_edits/shard{{s}}.tsv"
    threads: threads_of("fewshot_generate_self_edits", "gpu")
    resources:
        **res("fewshot_generate_self_edits", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


# As in the knowledge domain, update() keeps every adapter that is complete, valid and
# trained from the same inputs when a shard is rerun, and retrains only the rest.
rule fewshot_inner_loop:
    input:
        edits=f"{FS}/round{{r}}/self_edits/shard{{s}}.jsonl",
        tasks=f"{FS}/data/train.jsonl",
        policy=fs_round_policy,
    output:
        adapters=round_adapter_outputs("fewshot"),
        manifest=f"{FS}/round{{r}}/adapters/shard{{s}}.json",
    params:
        stage="fewshot.inner_loop",
        settings=uses("seed", "device", "fewshot.inner_loop"),
        root=adapters_of_manifest,
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
        "../scripts/stage.py"


rule fewshot_score_adapters:
    input:
        edits=f"{FS}/round{{r}}/self_edits/shard{{s}}.jsonl",
        tasks=f"{FS}/data/train.jsonl",
        manifest=f"{FS}/round{{r}}/adapters/shard{{s}}.json",
        adapters=adapter_outputs("fewshot"),
        policy=fs_round_policy,
    output:
        out=f"{FS}/round{{r}}/eval/shard{{s}}.csv",
    params:
        stage="fewshot.score_adapters",
        settings=uses("device", "backend", "fewshot.scoring"),
    log:
        f"{OUT}/logs/fewshot/round{{r}}/score_adapters/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/round{{r}}/score_adapters/shard{{s}}.tsv"
    threads: threads_of("fewshot_score_adapters", "gpu")
    resources:
        **res("fewshot_score_adapters", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


rule fewshot_rewards:
    input:
        evals=expand(f"{FS}/round{{{{r}}}}/eval/shard{{s}}.csv", s=shards_of("fewshot")),
        edits=expand(f"{FS}/round{{{{r}}}}/self_edits/shard{{s}}.jsonl", s=shards_of("fewshot")),
    output:
        out=report(
            f"{FS}/round{{r}}/rewards.csv",
            caption="../report/fewshot_rewards.rst",
            category="Few-shot ARC",
            subcategory="Round {r}",
            labels={"figure": "rewards.csv", "round": "{r}"},
        ),
    params:
        stage="fewshot.rewards",
        settings=uses(),
    log:
        f"{OUT}/logs/fewshot/round{{r}}/rewards.log",
    threads: 1
    resources:
        **res("fewshot_rewards", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"
