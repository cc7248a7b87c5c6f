# Knowledge incorporation, one round: generate -> inner loop -> score -> rewards.
# Every step is a file, so any single shard or round can be rebuilt on its own.


rule prepare_passages:
    output:
        train=f"{KN}/data/train.jsonl",
        val=f"{KN}/data/val.jsonl",
    log:
        f"{OUT}/logs/prepare_passages.log",
    threads: 1
    resources:
        **res("prepare_passages", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/prepare_passages.py"


rule generate_self_edits:
    input:
        policy=kn_policy,
        passages=f"{KN}/data/train.jsonl",
    output:
        f"{KN}/round{{r}}/self_edits/shard{{s}}.jsonl",
    log:
        f"{OUT}/logs/knowledge/round{{r}}/generate_self_edits/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/round{{r}}/generate_self_edits/shard{{s}}.tsv"
    threads: threads_of("generate_self_edits", "gpu")
    resources:
        **res("generate_self_edits", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/generate_self_edits.py"


# The adapters are declared with update(): a rerun of a shard keeps every adapter that
# is complete, valid and trained from the same inputs, and retrains only the rest.
rule inner_loop:
    input:
        edits=f"{KN}/round{{r}}/self_edits/shard{{s}}.jsonl",
        passages=f"{KN}/data/train.jsonl",
        policy=kn_policy,
    output:
        adapters=update(kn_adapter_files()),
        manifest=f"{KN}/round{{r}}/adapters/shard{{s}}.json",
    params:
        root=lambda wc: f"{KN}/round{wc.r}/adapters/shard{wc.s}",
    log:
        f"{OUT}/logs/knowledge/round{{r}}/inner_loop/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/round{{r}}/inner_loop/shard{{s}}.tsv"
    threads: threads_of("inner_loop", "gpu")
    resources:
        **res("inner_loop", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/inner_loop.py"


rule score_adapters:
    input:
        edits=f"{KN}/round{{r}}/self_edits/shard{{s}}.jsonl",
        passages=f"{KN}/data/train.jsonl",
        manifest=f"{KN}/round{{r}}/adapters/shard{{s}}.json",
        policy=kn_policy,
    output:
        f"{KN}/round{{r}}/eval/shard{{s}}.csv",
    log:
        f"{OUT}/logs/knowledge/round{{r}}/score_adapters/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/round{{r}}/score_adapters/shard{{s}}.tsv"
    threads: threads_of("score_adapters", "gpu")
    resources:
        **res("score_adapters", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/score_adapters.py"


rule rewards:
    input:
        evals=expand(f"{KN}/round{{{{r}}}}/eval/shard{{s}}.csv", s=kn_shards()),
        edits=expand(f"{KN}/round{{{{r}}}}/self_edits/shard{{s}}.jsonl", s=kn_shards()),
    output:
        report(
            f"{KN}/round{{r}}/rewards.csv",
            caption="../report/rewards.rst",
            category="Knowledge incorporation",
            subcategory="Round {r}",
            labels={"figure": "rewards.csv", "round": "{r}"},
        ),
    log:
        f"{OUT}/logs/knowledge/round{{r}}/rewards.log",
    threads: 1
    resources:
        **res("rewards", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/rewards.py"
