# Round-0 policies: a tiny model built offline, or a pointer to a local folder: a hub id
# fetched first by a local rule (where the internet is), so no job needs the hub, or the
# cached Hugging Face conversion of a GGUF file (base_model.source).


rule base_model_fetch:
    output:
        fetched=f"{OUT}/{{domain}}/base/fetched.json",
    localrule: True
    params:
        stage="base.fetch_model",
        settings=domain_uses("{domain}.base_model"),
    log:
        f"{OUT}/logs/base_model/{{domain}}_fetch.log",
    threads: 1
    resources:
        **res("base_model_fetch", "cpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"


# Building the tiny model trains it: the GPU family (base_model_kind); a pointer to a real
# model is a file: the CPU family.
rule base_model:
    input:
        unpack(base_model_inputs),
    output:
        out=directory(f"{OUT}/{{domain}}/base/model"),
    params:
        stage="base.base_model",
        settings=domain_uses("seed", "{domain}.base_model"),
    log:
        f"{OUT}/logs/base_model/{{domain}}.log",
    benchmark:
        f"{OUT}/benchmarks/base_model/{{domain}}.tsv"
    threads: threads_of("base_model", base_model_kind(config))
    resources:
        **res("base_model", base_model_kind(config)),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"
