"""Snakemake adapter: in-context learning on the evaluation tasks."""
from sealflow.stages.fewshot_eval import eval_icl
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
eval_icl(snakemake.config, tasks_path=snakemake.input.tasks, base=snakemake.input.policy, out=snakemake.output[0])
