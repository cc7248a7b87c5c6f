"""Snakemake adapter: oracle TTT over the fixed configuration grid."""
from sealflow.stages.fewshot_eval import eval_oracle
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
eval_oracle(snakemake.config, tasks_path=snakemake.input.tasks, base=snakemake.input.policy,
            adapters_root=snakemake.params.root, manifest_out=snakemake.output.manifest, out=snakemake.output.detail)
