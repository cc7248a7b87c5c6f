"""Snakemake adapter: in-context answers of the base model on the evaluation tasks."""
from sealflow.fewshot.stages import eval_icl
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
eval_icl(snakemake.config, snakemake.input.tasks, snakemake.input.policy, snakemake.output[0])
