"""Snakemake adapter: training and evaluation ARC tasks."""
from sealflow.stages.fewshot import prepare_tasks
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
prepare_tasks(snakemake.config, train_out=snakemake.output.train, eval_out=snakemake.output.eval)
