# Round-0 policies: a tiny model built offline, or a pointer to a hub id / local path, or to
# the cached Hugging Face conversion of a GGUF file (base_model.source).


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
    threads: threads_of("base_model", "gpu")
    resources:
        **res("base_model", "gpu"),
    retries: retries()
    conda:
        "../envs/sealflow.yaml"
    script:
        "../scripts/stage.py"
