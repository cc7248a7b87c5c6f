# Held-out ARC evaluation on data/eval.jsonl, tasks no training stage reads: in-context
# learning, TTT with self-edits of the policy of round r (r = 1 is the base model; the
# last is SEAL), and oracle TTT over a fixed grid of configurations.


rule fewshot_eval_icl:
    input:
        tasks=f"{FS}/data/eval.jsonl",
        policy=f"{FS}/base/model",
    output:
        out=f"{FS}/eval/icl.csv",
    params:
        stage="fewshot_eval.icl",
        settings=uses("device", "backend", "fewshot.scoring"),
    log:
        f"{OUT}/logs/fewshot/eval/icl.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/eval/icl.tsv"
    threads: threads_of("fewshot_eval_icl", "gpu")
    resources:
        **res("fewshot_eval_icl", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


rule fewshot_eval_self_edits:
    input:
        tasks=f"{FS}/data/eval.jsonl",
        policy=fs_round_policy,
    output:
        edits=f"{FS}/eval/round{{r}}/self_edits.jsonl",
        manifest=f"{FS}/eval/round{{r}}/adapters.json",
        detail=f"{FS}/eval/ttt_round{{r}}.csv",
    params:
        stage="fewshot_eval.ttt_self_edits",
        settings=uses("seed", "device", "backend", "fewshot.rounds", "fewshot.self_edits", "fewshot.inner_loop", "fewshot.scoring", "fewshot.evaluation"),
        root=adapters_of_manifest,
    log:
        f"{OUT}/logs/fewshot/eval/ttt_round{{r}}.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/eval/ttt_round{{r}}.tsv"
    threads: threads_of("fewshot_eval_self_edits", "gpu")
    resources:
        **res("fewshot_eval_self_edits", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


rule fewshot_eval_oracle:
    input:
        tasks=f"{FS}/data/eval.jsonl",
        policy=f"{FS}/base/model",
    output:
        manifest=f"{FS}/eval/oracle/adapters.json",
        detail=f"{FS}/eval/oracle.csv",
    params:
        stage="fewshot_eval.oracle",
        settings=uses("seed", "device", "backend", "fewshot.inner_loop", "fewshot.scoring", "fewshot.evaluation"),
        root=adapters_of_manifest,
    log:
        f"{OUT}/logs/fewshot/eval/oracle.log",
    benchmark:
        f"{OUT}/benchmarks/fewshot/eval/oracle.tsv"
    threads: threads_of("fewshot_eval_oracle", "gpu")
    resources:
        **res("fewshot_eval_oracle", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


rule fewshot_eval_summary:
    input:
        icl=f"{FS}/eval/icl.csv",
        ttt=fs_ttt_evals(),
        oracle=f"{FS}/eval/oracle.csv",
    output:
        out=report(
            f"{FS}/eval/summary.csv",
            caption="../report/fewshot_summary.rst",
            category="Few-shot ARC",
            subcategory="Evaluation",
            labels={"figure": "summary.csv"},
        ),
        effects=report(
            f"{FS}/eval/effects.csv",
            caption="../report/fewshot_effects.rst",
            category="Few-shot ARC",
            subcategory="Evaluation",
            labels={"figure": "effects.csv"},
        ),
    params:
        stage="fewshot_eval.summary",
        settings=uses("seed", "fewshot.rounds", "fewshot.evaluation"),
    log:
        f"{OUT}/logs/fewshot/eval/summary.log",
    threads: 1
    resources:
        **res("fewshot_eval_summary", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"
