"""Snakemake adapter: select the ARC training and (disjoint) evaluation tasks."""
from sealflow.fewshot.stages import prepare_tasks
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
prepare_tasks(snakemake.config, snakemake.output.train, snakemake.output.eval)
