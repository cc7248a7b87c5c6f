# Held-out evaluation of the knowledge domain (the paper's Table 2) on data/val.jsonl,
# which no round ever trains on. Every step is a file:
#   heldout/self_edits/{method}.jsonl                  held-out self-edits of a method's writer
#   heldout/export/{method}_val.json                  the same in the SEAL authors' layout (on request)
#   heldout/single/{method}/shard{s}.answers.jsonl     ungraded answers of a shard of passages (GPU)
#   heldout/{cpt,continual}/{method}.answers.jsonl     ungraded answers of one job per method (GPU)
#   heldout/{single,cpt,continual}/{method}.csv        per-question graded answers (CPU: the judge)
#   heldout/continual_matrix_{method}.csv              accuracy after update i on passage j
#   heldout/summary.csv, table.csv, forgetting.csv, effects.csv    accuracies with 95% intervals
# A GPU job writes each item (adapter, continual step) under heldout/work/ as it
# finishes and removes the folder when its answers are written, so a killed or
# timed-out job's rerun redoes only the unfinished items.
# The last round's policy round{R+1}/policy is built by update_policy on demand.


rule knowledge_heldout_self_edits:
    input:
        unpack(kh_sample_inputs),
    output:
        out=f"{KH}/self_edits/{{method}}.jsonl",
    wildcard_constraints:
        method=r"base_self_edits|round\d+",
    params:
        stage="knowledge_heldout.self_edits",
        settings=uses("seed", "device", "backend", "knowledge.self_edits", "knowledge.heldout"),
    log:
        f"{OUT}/logs/knowledge/heldout/self_edits/{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/heldout/self_edits/{{method}}.tsv"
    threads: threads_of("knowledge_heldout_self_edits", "gpu")
    resources:
        **res("knowledge_heldout_self_edits", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


# The external model's synthetic data is fetched where the internet is (a local rule),
# or read from a file in the SEAL authors' layout (knowledge.heldout.external.path).
rule knowledge_heldout_external_self_edits:
    input:
        unpack(kh_external_inputs),
    output:
        out=f"{KH}/self_edits/external.jsonl",
    localrule: True
    params:
        stage="knowledge_heldout.external_self_edits",
        settings=uses("seed", "knowledge.self_edits", "knowledge.heldout"),
    log:
        f"{OUT}/logs/knowledge/heldout/self_edits/external.log",
    threads: 1
    resources:
        **res("knowledge_heldout_external_self_edits", "cpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


# A method's held-out self-edits in the SEAL authors' layout; not part of `all`: ask for the file.
rule knowledge_heldout_export:
    input:
        edits=f"{KH}/self_edits/{{method}}.jsonl",
        passages=f"{KN}/data/val.jsonl",
    output:
        out=f"{KH}/export/{{method}}_val.json",
    wildcard_constraints:
        method=r"base_self_edits|external|round\d+",
    params:
        stage="knowledge_heldout.export_self_edits",
        settings=uses(),
    log:
        f"{OUT}/logs/knowledge/heldout/export/{{method}}.log",
    threads: 1
    resources:
        **res("knowledge_heldout_export", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule knowledge_heldout_single:
    input:
        unpack(kh_eval_inputs),
    output:
        answers=f"{KH}/single/{{method}}/shard{{s}}.answers.jsonl",
    wildcard_constraints:
        method=KH_METHOD,
    params:
        stage="knowledge_heldout.evaluate",
        settings=uses("seed", "device", "backend", "knowledge.inner_loop", "knowledge.scoring", "knowledge.heldout"),
        setting="single",
        work=kh_work,
    log:
        f"{OUT}/logs/knowledge/heldout/single/{{method}}/shard{{s}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/heldout/single/{{method}}/shard{{s}}.tsv"
    threads: threads_of("knowledge_heldout_single", "gpu")
    resources:
        **res("knowledge_heldout_single", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


# cpt trains on every passage at once and continual learns them in order: neither splits
# over passages, so each is one job per method whose items are its repeats (cpt) or its
# (repeat, step) pairs (continual).
rule knowledge_heldout_evaluate:
    input:
        unpack(kh_eval_inputs),
    output:
        answers=f"{KH}/{{setting}}/{{method}}.answers.jsonl",
    wildcard_constraints:
        setting=r"cpt|continual",
        method=KH_METHOD,
    params:
        stage="knowledge_heldout.evaluate",
        settings=uses("seed", "device", "backend", "knowledge.inner_loop", "knowledge.scoring", "knowledge.heldout"),
        work=kh_work,
    log:
        f"{OUT}/logs/knowledge/heldout/{{setting}}/{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/heldout/{{setting}}/{{method}}.tsv"
    threads: threads_of("knowledge_heldout_evaluate", "gpu")
    resources:
        **res("knowledge_heldout_evaluate", "gpu"),
    retries: retries()
    conda:
        generation_conda()
    script:
        "../scripts/stage.py"


# Grading joins the shards and may call the judge: a local rule, where the internet is.
rule knowledge_heldout_grade:
    input:
        answers=kh_answer_files,
        passages=f"{KN}/data/val.jsonl",
    output:
        rows=f"{KH}/{{setting}}/{{method}}.csv",
    wildcard_constraints:
        setting=r"single|cpt",
        method=KH_METHOD,
    localrule: True
    params:
        stage="knowledge_heldout.grade",
        settings=uses("knowledge.scoring", "knowledge.heldout"),
    log:
        f"{OUT}/logs/knowledge/heldout/grade/{{setting}}/{{method}}.log",
    threads: 1
    resources:
        **res("knowledge_heldout_grade", "cpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule knowledge_heldout_grade_continual:
    input:
        answers=kh_answer_files,
        passages=f"{KN}/data/val.jsonl",
    output:
        rows=f"{KH}/continual/{{method}}.csv",
        matrix=f"{KH}/continual_matrix_{{method}}.csv",
    wildcard_constraints:
        method=KH_METHOD,
    localrule: True
    params:
        stage="knowledge_heldout.grade",
        settings=uses("knowledge.scoring", "knowledge.heldout"),
        setting="continual",
    log:
        f"{OUT}/logs/knowledge/heldout/grade/continual/{{method}}.log",
    threads: 1
    resources:
        **res("knowledge_heldout_grade", "cpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule knowledge_heldout_summary:
    input:
        rows=kh_row_files(),
        matrices=kh_matrix_files(),
    output:
        summary=report(
            f"{KH}/summary.csv",
            caption="../report/heldout_summary.rst",
            category="Knowledge incorporation",
            subcategory="Held-out evaluation",
            labels={"figure": "summary.csv"},
        ),
        table=report(
            f"{KH}/table.csv",
            caption="../report/heldout_table.rst",
            category="Knowledge incorporation",
            subcategory="Held-out evaluation",
            labels={"figure": "table.csv"},
        ),
        forgetting=report(
            f"{KH}/forgetting.csv",
            caption="../report/heldout_forgetting.rst",
            category="Knowledge incorporation",
            subcategory="Held-out evaluation",
            labels={"figure": "forgetting.csv"},
        ),
        effects=report(
            f"{KH}/effects.csv",
            caption="../report/heldout_effects.rst",
            category="Knowledge incorporation",
            subcategory="Held-out evaluation",
            labels={"figure": "effects.csv"},
        ),
    params:
        stage="knowledge_heldout.summary",
        settings=uses("seed", "knowledge.inner_loop", "knowledge.scoring", "knowledge.heldout"),
        pairs=[list(p) for p in kh_evaluations()],
        models=[kh_model(m) for _, m in kh_evaluations()],
        writers=[kh_writer_label(m) for _, m in kh_evaluations()],
        matrix_methods=kh_continual_methods(),
    log:
        f"{OUT}/logs/knowledge/heldout/summary.log",
    threads: 1
    resources:
        **res("knowledge_heldout_summary", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"
