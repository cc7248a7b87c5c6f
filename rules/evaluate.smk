# Held-out evaluation of the knowledge domain (the paper's Table 2) on data/val.jsonl,
# which no round ever trains on. Every step is a file:
#   heldout/self_edits/{method}.jsonl            held-out self-edits of a method's writer
#   heldout/{single,cpt,continual}/{method}.csv  per-question graded answers
#   heldout/continual_matrix_{method}.csv        accuracy after update i on passage j
#   heldout/summary.csv, table.csv, forgetting.csv    accuracies with 95% intervals
# The last round's policy round{R+1}/policy is built by update_policy on demand.
from sealflow.knowledge import heldout as kh

KH = f"{KN}/heldout"
KH_CFG = kh.heldout_config(config) if "knowledge" in config else {"enabled": False}
KH_METHOD = r"base|passage|base_self_edits|external|round\d+"


def kh_model(method):
    return kh.adapted_model(method, KN, KH_CFG["adapt"])


def kh_writer_label(method):
    if method == kh.EXTERNAL:
        return f"external:{KH_CFG['external']['model']}"
    return kh.writer_model(method, KN) or ""


def kh_sample_inputs(wildcards):
    inputs = {"passages": f"{KN}/data/val.jsonl"}
    writer = kh.writer_model(wildcards.method, KN)
    if writer is not None:
        inputs["policy"] = writer
    return inputs


def kh_eval_inputs(wildcards):
    inputs = {"passages": f"{KN}/data/val.jsonl", "model": kh_model(wildcards.method)}
    if kh.needs_self_edits(wildcards.method):
        inputs["edits"] = f"{KH}/self_edits/{wildcards.method}.jsonl"
    return inputs


def kh_row_file(setting, method):
    return f"{KH}/{setting}/{method}.csv"


def kh_matrix_file(method):
    return f"{KH}/continual_matrix_{method}.csv"


def knowledge_eval_targets():
    """The summary tables and every continual matrix (the report plots one per method)."""
    if "knowledge" not in config or not kh.heldout_methods(config):
        return []
    targets = [f"{KH}/summary.csv", f"{KH}/table.csv", f"{KH}/forgetting.csv"]
    return targets + [kh_matrix_file(m) for m in kh.continual_methods(config)]


rule heldout_self_edits:
    input:
        unpack(kh_sample_inputs),
    output:
        f"{KH}/self_edits/{{method}}.jsonl",
    wildcard_constraints:
        method=r"base_self_edits|external|round\d+",
    log:
        f"{OUT}/logs/knowledge/heldout/self_edits/{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/heldout/self_edits/{{method}}.tsv"
    threads: threads_of("heldout_self_edits", "gpu")
    resources:
        **res("heldout_self_edits", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/heldout_self_edits.py"


rule heldout_evaluate:
    input:
        unpack(kh_eval_inputs),
    output:
        rows=f"{KH}/{{setting}}/{{method}}.csv",
    wildcard_constraints:
        setting=r"single|cpt",
        method=KH_METHOD,
    params:
        method="{method}",
        setting="{setting}",
    log:
        f"{OUT}/logs/knowledge/heldout/{{setting}}/{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/heldout/{{setting}}/{{method}}.tsv"
    threads: threads_of("heldout_evaluate", "gpu")
    resources:
        **res("heldout_evaluate", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/heldout_evaluate.py"


rule heldout_continual:
    input:
        unpack(kh_eval_inputs),
    output:
        rows=f"{KH}/continual/{{method}}.csv",
        matrix=f"{KH}/continual_matrix_{{method}}.csv",
    wildcard_constraints:
        method=KH_METHOD,
    params:
        method="{method}",
        setting="continual",
    log:
        f"{OUT}/logs/knowledge/heldout/continual/{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/knowledge/heldout/continual/{{method}}.tsv"
    threads: threads_of("heldout_continual", "gpu")
    resources:
        **res("heldout_continual", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/heldout_evaluate.py"


rule heldout_summary:
    input:
        rows=[kh_row_file(s, m) for s, m in kh.evaluations(config)] if "knowledge" in config else [],
        matrices=[kh_matrix_file(m) for m in kh.continual_methods(config)]
        if "knowledge" in config
        else [],
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
    params:
        pairs=[list(p) for p in kh.evaluations(config)] if "knowledge" in config else [],
        models=[kh_model(m) for _, m in kh.evaluations(config)] if "knowledge" in config else [],
        writers=[kh_writer_label(m) for _, m in kh.evaluations(config)] if "knowledge" in config else [],
        matrix_methods=kh.continual_methods(config) if "knowledge" in config else [],
    log:
        f"{OUT}/logs/knowledge/heldout/summary.log",
    threads: 1
    resources:
        **res("heldout_summary", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/heldout_summary.py"
