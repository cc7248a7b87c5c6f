# Knowledge incorporation, one round: generate -> inner loop -> score -> rewards;
# ReST-EM lives in restem.smk. Every step is a file, so any single shard or round can
# be rebuilt on its own.


rule knowledge_prepare_passages:
    input:
        data_files("knowledge"),
    output:
        train=f"{KN}/data/train.jsonl",
        val=f"{KN}/data/val.jsonl",
    localrule: True  # data.source: hub downloads the data set: run where the internet is
    params:
        stage="knowledge.prepare_passages",
        settings=uses("knowledge.data"),
    log:
        f"{OUT}/logs/prepare_passages.log",
    threads: 1
    resources:
        **res("knowledge_prepare_passages", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


# A round listed in knowledge.import_self_edits.rounds reads its self-edits from that file
# (the SEAL authors' layout) instead of sampling them.
rule knowledge_generate_self_edits:
    input:
        unpack(kn_generate_inputs),
    output:
        out=f"{KN}/round{{r}}/self_edits/shard{{s}}.jsonl",
    params:
        stage="knowledge.generate_self_edits",
        settings=uses("seed", "device", "backend", "knowledge.self_edits"),
    log:
        f"{OUT}/logs/knowledge/round{{r}}/generate_self_edits/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/round{{r}}/generate_self_edits/shard{{s}}.tsv"
    threads: threads_of("knowledge_generate_self_edits", "gpu")
    resources:
        **res("knowledge_generate_self_edits", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


# A round's self-edits in the SEAL authors' layout ({title, context, questions, completions,
# prompt} per passage), for their scripts; not part of `all`: ask for the file.
rule knowledge_export_self_edits:
    input:
        edits=expand(f"{KN}/round{{{{r}}}}/self_edits/shard{{s}}.jsonl", s=shards_of("knowledge")),
        passages=f"{KN}/data/train.jsonl",
    output:
        out=f"{KN}/export/round{{r}}_train.json",
    params:
        stage="knowledge.export_self_edits",
        settings=uses(),
    log:
        f"{OUT}/logs/knowledge/round{{r}}/export_self_edits.log",
    threads: 1
    resources:
        **res("knowledge_export_self_edits", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


# The adapters are declared with update(): a rerun of a shard keeps every adapter that
# is complete, valid and trained from the same inputs, and retrains only the rest.
rule knowledge_inner_loop:
    input:
        edits=f"{KN}/round{{r}}/self_edits/shard{{s}}.jsonl",
        passages=f"{KN}/data/train.jsonl",
        policy=kn_round_policy,
    output:
        adapters=round_adapter_outputs("knowledge"),
        manifest=f"{KN}/round{{r}}/adapters/shard{{s}}.json",
    params:
        stage="knowledge.inner_loop",
        settings=uses("seed", "device", "knowledge.inner_loop"),
        root=adapters_of_manifest,
    log:
        f"{OUT}/logs/knowledge/round{{r}}/inner_loop/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/round{{r}}/inner_loop/shard{{s}}.tsv"
    threads: threads_of("knowledge_inner_loop", "gpu")
    resources:
        **res("knowledge_inner_loop", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule knowledge_score_adapters:
    input:
        edits=f"{KN}/round{{r}}/self_edits/shard{{s}}.jsonl",
        passages=f"{KN}/data/train.jsonl",
        manifest=f"{KN}/round{{r}}/adapters/shard{{s}}.json",
        adapters=adapter_outputs("knowledge"),
        policy=kn_round_policy,
    output:
        answers=f"{KN}/round{{r}}/eval/shard{{s}}.answers.jsonl",
    params:
        stage="knowledge.score_adapters",
        settings=uses("device", "backend", "knowledge.inner_loop", "knowledge.scoring.max_new_tokens",
                      "knowledge.scoring.question_prompt"),
    log:
        f"{OUT}/logs/knowledge/round{{r}}/score_adapters/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/round{{r}}/score_adapters/shard{{s}}.tsv"
    threads: threads_of("knowledge_score_adapters", "gpu")
    resources:
        **res("knowledge_score_adapters", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


# Grading may call the judge: a local rule, where the internet is (GPU nodes need none).
rule knowledge_grade_answers:
    input:
        answers=f"{KN}/round{{r}}/eval/shard{{s}}.answers.jsonl",
        passages=f"{KN}/data/train.jsonl",
    output:
        out=f"{KN}/round{{r}}/eval/shard{{s}}.csv",
    localrule: True
    params:
        stage="knowledge.grade_answers",
        settings=uses("knowledge.scoring"),
    log:
        f"{OUT}/logs/knowledge/round{{r}}/grade_answers/shard{{s}}.log",
    threads: 1
    resources:
        **res("knowledge_grade_answers", "cpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule knowledge_rewards:
    input:
        evals=expand(f"{KN}/round{{{{r}}}}/eval/shard{{s}}.csv", s=shards_of("knowledge")),
        edits=expand(f"{KN}/round{{{{r}}}}/self_edits/shard{{s}}.jsonl", s=shards_of("knowledge")),
    output:
        out=report(
            f"{KN}/round{{r}}/rewards.csv",
            caption="../report/rewards.rst",
            category="Knowledge incorporation",
            subcategory="Round {r}",
            labels={"figure": "rewards.csv", "round": "{r}"},
        ),
    params:
        stage="knowledge.rewards",
        settings=uses(),
    log:
        f"{OUT}/logs/knowledge/round{{r}}/rewards.log",
    threads: 1
    resources:
        **res("knowledge_rewards", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


# Training-time statistics over every round: reward, share positive, faithfulness.
rule knowledge_training_summary:
    input:
        rewards=expand(f"{KN}/round{{r}}/rewards.csv", r=rounds_of("knowledge")),
        filtered=expand(f"{KN}/round{{r}}/filtered.jsonl", r=rounds_of("knowledge")),
        edits=expand(
            f"{KN}/round{{r}}/self_edits/shard{{s}}.jsonl", r=rounds_of("knowledge"), s=shards_of("knowledge")
        ),
        passages=f"{KN}/data/train.jsonl",
    output:
        edit_stats=f"{KN}/training/edit_stats.csv",
        rounds=report(
            f"{KN}/training/rounds.csv",
            caption="../report/training_rounds.rst",
            category="Knowledge incorporation",
            subcategory="All rounds",
            labels={"figure": "rounds.csv"},
        ),
    params:
        stage="knowledge.training_summary",
        settings=uses(),
    log:
        f"{OUT}/logs/knowledge/training_summary.log",
    threads: 1
    resources:
        **res("knowledge_training_summary", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"
