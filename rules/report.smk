# Report plots and tables for `snakemake --report`: every output here is wrapped in
# report(...) with a caption from report/. Build the HTML report after a run with
#   snakemake --configfile <config> --report results/<run>/report.html
from sealflow.report import COST_TITLE, DOMAIN_TITLES

REP = f"{OUT}/report"


wildcard_constraints:
    method=r"[A-Za-z0-9_.+-]+",


def domain_title(wildcards):
    return DOMAIN_TITLES[wildcards.domain]


def report_rounds(domain):
    """Rounds with rewards for an enabled domain (fewshot only once its rules define fs_rounds)."""
    if domain not in DOMAINS:
        return []
    if domain == "knowledge":
        return kn_rounds()
    rounds = globals().get("fs_rounds")
    return list(rounds()) if callable(rounds) else []


def pipeline_targets():
    """Everything `rule all` asks for except the report's own outputs."""
    targets = []
    if "knowledge" in DOMAINS:
        for r in kn_rounds():
            targets += kn_round_targets(r)
        targets += knowledge_eval_targets()
    if "fewshot" in DOMAINS:
        targets += fewshot_targets()
    return list(dict.fromkeys(targets))


def heldout_summary():
    """The held-out summary table if the evaluation stage produces one in this config."""
    return [t for t in knowledge_eval_targets() if t.endswith("/heldout/summary.csv")][:1]


def forgetting_methods():
    """Methods with a continual-setting matrix among the held-out targets."""
    prefix, suffix = f"{KN}/heldout/continual_matrix_", ".csv"
    targets = knowledge_eval_targets() if "knowledge" in DOMAINS else []
    return [t[len(prefix) : -len(suffix)] for t in targets if t.startswith(prefix) and t.endswith(suffix)]


def fewshot_summary():
    return [t for t in fewshot_targets() if t.endswith("/eval/summary.csv")][:1] if "fewshot" in DOMAINS else []


def benchmark_patterns():
    """Rule name -> its benchmark: pattern relative to the run's benchmarks folder."""
    root = f"{OUT}/benchmarks/"
    patterns = {r.name: str(r.benchmark) for r in workflow.rules if isinstance(r.benchmark, str)}
    return {name: pat[len(root) :] for name, pat in sorted(patterns.items()) if pat.startswith(root)}


def report_targets():
    targets = []
    for domain in ("knowledge", "fewshot"):
        rounds = report_rounds(domain)
        if rounds:
            targets += [f"{REP}/{domain}/reward_distribution.svg", f"{REP}/{domain}/positive_fraction.svg"]
            targets += [f"{REP}/{domain}/round{r}/examples.html" for r in rounds]
    if "knowledge" in DOMAINS and knowledge_eval_targets() and heldout_summary():
        targets += [f"{REP}/knowledge/heldout_accuracy.svg", f"{REP}/knowledge/heldout_summary.html"]
        targets += [f"{REP}/knowledge/forgetting_{m}.svg" for m in forgetting_methods()]
    if fewshot_summary():
        targets += [f"{REP}/fewshot/arc_success.svg", f"{REP}/fewshot/arc_summary.html"]
    if pipeline_targets():
        targets += [f"{REP}/cost/cost_per_rule.svg", f"{REP}/cost/cost_per_rule.html"]
    return targets


rule report_reward_plots:
    input:
        rewards=lambda wc: [f"{OUT}/{wc.domain}/round{r}/rewards.csv" for r in report_rounds(wc.domain)],
    output:
        distribution=report(
            f"{REP}/{{domain}}/reward_distribution.svg",
            caption="../report/reward_distribution.rst",
            category=domain_title,
            subcategory="All rounds",
            labels={"figure": "reward distribution"},
        ),
        fraction=report(
            f"{REP}/{{domain}}/positive_fraction.svg",
            caption="../report/positive_fraction.rst",
            category=domain_title,
            subcategory="All rounds",
            labels={"figure": "positive-reward fraction"},
        ),
    log:
        f"{OUT}/logs/report/{{domain}}/reward_plots.log",
    threads: 1
    resources:
        **res("report_reward_plots", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/report_rewards.py"


rule report_examples:
    input:
        rewards=f"{OUT}/{{domain}}/round{{r}}/rewards.csv",
        filtered=f"{OUT}/{{domain}}/round{{r}}/filtered.jsonl",
        edits=round_edits,
    output:
        report(
            f"{REP}/{{domain}}/round{{r}}/examples.html",
            caption="../report/examples.rst",
            category=domain_title,
            subcategory="Round {r}",
            labels={"figure": "best and worst self-edits", "round": "{r}"},
        ),
    params:
        n=3,
    log:
        f"{OUT}/logs/report/{{domain}}/round{{r}}/examples.log",
    threads: 1
    resources:
        **res("report_examples", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/report_examples.py"


rule report_heldout:
    input:
        f"{KN}/heldout/summary.csv",
    output:
        plot=report(
            f"{REP}/knowledge/heldout_accuracy.svg",
            caption="../report/heldout_accuracy.rst",
            category=DOMAIN_TITLES["knowledge"],
            subcategory="Held-out evaluation",
            labels={"figure": "held-out accuracy"},
        ),
        table=report(
            f"{REP}/knowledge/heldout_summary.html",
            caption="../report/heldout_summary_html.rst",
            category=DOMAIN_TITLES["knowledge"],
            subcategory="Held-out evaluation",
            labels={"figure": "summary table (HTML)"},
        ),
    log:
        f"{OUT}/logs/report/knowledge/heldout.log",
    threads: 1
    resources:
        **res("report_heldout", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/report_heldout.py"


rule report_forgetting:
    input:
        f"{KN}/heldout/continual_matrix_{{method}}.csv",
    output:
        report(
            f"{REP}/knowledge/forgetting_{{method}}.svg",
            caption="../report/forgetting.rst",
            category=DOMAIN_TITLES["knowledge"],
            subcategory="Held-out evaluation",
            labels={"figure": "forgetting curve: {method}"},
        ),
    log:
        f"{OUT}/logs/report/knowledge/forgetting_{{method}}.log",
    threads: 1
    resources:
        **res("report_forgetting", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/report_forgetting.py"


rule report_fewshot_eval:
    input:
        f"{FS}/eval/summary.csv",
    output:
        plot=report(
            f"{REP}/fewshot/arc_success.svg",
            caption="../report/arc_success.rst",
            category=DOMAIN_TITLES["fewshot"],
            subcategory="Evaluation",
            labels={"figure": "ARC success rate"},
        ),
        table=report(
            f"{REP}/fewshot/arc_summary.html",
            caption="../report/arc_summary.rst",
            category=DOMAIN_TITLES["fewshot"],
            subcategory="Evaluation",
            labels={"figure": "summary table (HTML)"},
        ),
    log:
        f"{OUT}/logs/report/fewshot/eval.log",
    threads: 1
    resources:
        **res("report_fewshot_eval", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/report_fewshot_eval.py"


# Benchmark files are not listed one by one: this rule waits for every pipeline target
# and then reads all of results/<run>/benchmarks/, whichever rules wrote them.
rule report_cost:
    input:
        lambda wc: pipeline_targets(),
    output:
        plot=report(
            f"{REP}/cost/cost_per_rule.svg",
            caption="../report/cost.rst",
            category=COST_TITLE,
            subcategory="All rules",
            labels={"figure": "wall time and peak memory"},
        ),
        table=report(
            f"{REP}/cost/cost_per_rule.html",
            caption="../report/cost_table.rst",
            category=COST_TITLE,
            subcategory="All rules",
            labels={"figure": "cost table"},
        ),
    params:
        benchmarks=f"{OUT}/benchmarks",
        patterns=lambda wc: benchmark_patterns(),
    log:
        f"{OUT}/logs/report/cost.log",
    threads: 1
    resources:
        **res("report_cost", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/report_cost.py"
