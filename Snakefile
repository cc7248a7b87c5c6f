# sealflow: SEAL (Self-Adapting Language Models) as a file-based Snakemake workflow.
# The default config runs on a laptop CPU; config/paper-*.yaml carry the paper's settings.
from snakemake.utils import min_version

from sealflow.config import validate_config

min_version("9.0")


configfile: "config/config.yaml"


# A wrong key or type stops the run here, naming the key (e.g. knowledge.self_edits.k);
# the schema's defaults are filled in, so every rule and stage reads one complete config.
validate_config(config, workflow.source_path("config/schema.yaml"))


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/base.smk"
include: "rules/restem.smk"


if "knowledge" in config["domains"]:

    include: "rules/knowledge.smk"
    include: "rules/knowledge_heldout.smk"


if "fewshot" in config["domains"]:

    include: "rules/fewshot.smk"
    include: "rules/fewshot_eval.smk"


include: "rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
