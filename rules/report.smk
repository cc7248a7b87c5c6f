# Report plots and tables for `snakemake --report`: every output here is wrapped in
# report(...) with a caption from report/. Build the HTML report after a run with
#   snakemake --configfile <config> --report results/<run>/report.html


rule report_reward_plots:
    input:
        rewards=report_reward_files,
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
    params:
        stage="report.reward_plots",
    log:
        f"{OUT}/logs/report/{{domain}}/reward_plots.log",
    threads: 1
    resources:
        **res("report_reward_plots", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule report_examples:
    input:
        rewards=f"{OUT}/{{domain}}/round{{r}}/rewards.csv",
        filtered=f"{OUT}/{{domain}}/round{{r}}/filtered.jsonl",
        edits=round_edits,
    output:
        out=report(
            f"{REP}/{{domain}}/round{{r}}/examples.html",
            caption="../report/examples.rst",
            category=domain_title,
            subcategory="Round {r}",
            labels={"figure": "best and worst self-edits", "round": "{r}"},
        ),
    params:
        stage="report.examples",
        n=3,
    log:
        f"{OUT}/logs/report/{{domain}}/round{{r}}/examples.log",
    threads: 1
    resources:
        **res("report_examples", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule report_training:
    input:
        unpack(lambda wc: first_and_last_round_edits()),
        rounds=f"{KN}/training/rounds.csv",
        edit_stats=f"{KN}/training/edit_stats.csv",
    output:
        plot=report(
            f"{REP}/knowledge/training_rounds.svg",
            caption="../report/training_rounds_plot.rst",
            category=DOMAIN_TITLES["knowledge"],
            subcategory="All rounds",
            labels={"figure": "reward and faithfulness per round"},
        ),
        side_by_side=report(
            f"{REP}/knowledge/first_vs_last.html",
            caption="../report/first_vs_last.rst",
            category=DOMAIN_TITLES["knowledge"],
            subcategory="All rounds",
            labels={"figure": "self-edits: first and last round"},
        ),
    params:
        stage="report.training",
        n=3,
    log:
        f"{OUT}/logs/report/knowledge/training.log",
    threads: 1
    resources:
        **res("report_training", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule report_heldout:
    input:
        summary=f"{KN}/heldout/summary.csv",
        effects=f"{KN}/heldout/effects.csv",
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
        effects_plot=report(
            f"{REP}/knowledge/heldout_effects.svg",
            caption="../report/heldout_effects_plot.rst",
            category=DOMAIN_TITLES["knowledge"],
            subcategory="Held-out evaluation",
            labels={"figure": "paired differences"},
        ),
    params:
        stage="report.heldout",
    log:
        f"{OUT}/logs/report/knowledge/heldout.log",
    threads: 1
    resources:
        **res("report_heldout", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule report_forgetting:
    input:
        matrix=f"{KN}/heldout/continual_matrix_{{method}}.csv",
    output:
        out=report(
            f"{REP}/knowledge/forgetting_{{method}}.svg",
            caption="../report/forgetting.rst",
            category=DOMAIN_TITLES["knowledge"],
            subcategory="Held-out evaluation",
            labels={"figure": "forgetting curve: {method}"},
        ),
    params:
        stage="report.forgetting",
    log:
        f"{OUT}/logs/report/knowledge/forgetting_{{method}}.log",
    threads: 1
    resources:
        **res("report_forgetting", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule report_fewshot_eval:
    input:
        summary=f"{FS}/eval/summary.csv",
        effects=f"{FS}/eval/effects.csv",
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
        effects_plot=report(
            f"{REP}/fewshot/arc_effects.svg",
            caption="../report/arc_effects.rst",
            category=DOMAIN_TITLES["fewshot"],
            subcategory="Evaluation",
            labels={"figure": "ARC paired differences"},
        ),
    params:
        stage="report.fewshot_eval",
    log:
        f"{OUT}/logs/report/fewshot/eval.log",
    threads: 1
    resources:
        **res("report_fewshot_eval", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule report_fewshot_choices:
    input:
        unpack(lambda wc: fs_round_files()),
    output:
        out=report(
            f"{REP}/fewshot/config_choices.html",
            caption="../report/config_choices.rst",
            category=DOMAIN_TITLES["fewshot"],
            subcategory="All rounds",
            labels={"figure": "configuration choices per round"},
        ),
    params:
        stage="report.fewshot_choices",
        n_shards=lambda wc: len(shards_of("fewshot")),
    log:
        f"{OUT}/logs/report/fewshot/choices.log",
    threads: 1
    resources:
        **res("report_fewshot_choices", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


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
        per_self_edit=report(
            f"{REP}/cost/seconds_per_self_edit.html",
            caption="../report/cost_per_self_edit.rst",
            category=COST_TITLE,
            subcategory="All rules",
            labels={"figure": "seconds per self-edit"},
        ),
    params:
        stage="report.cost",
        benchmarks=f"{OUT}/benchmarks",
        patterns=lambda wc: benchmark_patterns(),
        rewards=lambda wc: round_rewards(),
    log:
        f"{OUT}/logs/report/cost.log",
    threads: 1
    resources:
        **res("report_cost", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"
