# Held-out evaluation of the knowledge domain (the paper's Table 2) on data/val.jsonl,
# which no round ever trains on. Every step is a file:
#   heldout/self_edits/{method}.jsonl            held-out self-edits of a method's writer
#   heldout/export/{method}_val.json             the same in the SEAL authors' layout (on request)
#   heldout/{single,cpt,continual}/{method}.csv  per-question graded answers
#   heldout/continual_matrix_{method}.csv        accuracy after update i on passage j
#   heldout/summary.csv, table.csv, forgetting.csv    accuracies with 95% intervals
# The last round's policy round{R+1}/policy is built by update_policy on demand.


rule knowledge_heldout_self_edits:
    input:
        unpack(kh_sample_inputs),
    output:
        out=f"{KH}/self_edits/{{method}}.jsonl",
    wildcard_constraints:
        method=r"base_self_edits|external|round\d+",
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


rule knowledge_heldout_evaluate:
    input:
        unpack(kh_eval_inputs),
    output:
        rows=f"{KH}/{{setting}}/{{method}}.csv",
    wildcard_constraints:
        setting=r"single|cpt",
        method=KH_METHOD,
    params:
        stage="knowledge_heldout.evaluate",
        settings=uses("seed", "device", "backend", "knowledge.inner_loop", "knowledge.scoring", "knowledge.heldout"),
    log:
        f"{OUT}/logs/knowledge/heldout/{{setting}}/{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/heldout/{{setting}}/{{method}}.tsv"
    threads: threads_of("knowledge_heldout_evaluate", "gpu")
    resources:
        **res("knowledge_heldout_evaluate", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule knowledge_heldout_continual:
    input:
        unpack(kh_eval_inputs),
    output:
        rows=f"{KH}/continual/{{method}}.csv",
        matrix=f"{KH}/continual_matrix_{{method}}.csv",
    wildcard_constraints:
        method=KH_METHOD,
    params:
        stage="knowledge_heldout.evaluate",
        settings=uses("seed", "device", "backend", "knowledge.inner_loop", "knowledge.scoring", "knowledge.heldout"),
        setting="continual",
    log:
        f"{OUT}/logs/knowledge/heldout/continual/{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/heldout/continual/{{method}}.tsv"
    threads: threads_of("knowledge_heldout_continual", "gpu")
    resources:
        **res("knowledge_heldout_continual", "gpu"),
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
