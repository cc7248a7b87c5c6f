"""Snakemake adapter: oracle TTT, every configuration of a fixed grid on every evaluation task."""
from sealflow.fewshot.stages import eval_oracle
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
eval_oracle(snakemake.config, snakemake.input.tasks, snakemake.input.policy, snakemake.params.root,
            snakemake.output.manifest, snakemake.output.detail)
