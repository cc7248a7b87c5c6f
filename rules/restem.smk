# ReST-EM: keep the best self-edits of round r, then SFT round r's policy on them
# to obtain round r+1's policy. Both domains share these rules ({domain} wildcard).


rule restem_filter:
    input:
        rewards=f"{OUT}/{{domain}}/round{{r}}/rewards.csv",
        edits=round_edits,
    output:
        out=f"{OUT}/{{domain}}/round{{r}}/filtered.jsonl",
    params:
        stage="restem.filter_edits",
        settings=domain_uses("{domain}.restem"),
    log:
        f"{OUT}/logs/{{domain}}/round{{r}}/restem_filter.log",
    threads: 1
    resources:
        **res("restem_filter", "cpu"),
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


rule update_policy:
    input:
        policy=update_input_policy,
        filtered=update_input_filtered,
    output:
        out=directory(f"{OUT}/{{domain}}/round{{r}}/policy"),
    params:
        stage="restem.update",
        settings=domain_uses("seed", "device", "{domain}.sft", "{domain}.base_model"),  # base_model: sft.replay's corpus
    log:
        f"{OUT}/logs/{{domain}}/round{{r}}/update_policy.log",
    benchmark:
        f"{OUT}/benchmarks/{{domain}}/round{{r}}/update_policy.tsv"
    threads: threads_of("update_policy", "gpu")
    resources:
        **res("update_policy", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"
