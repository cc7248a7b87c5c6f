"""Snakemake adapter: k tool-configuration self-edits per task of a shard."""
from sealflow.stages.fewshot import generate
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
generate(snakemake.config, tasks_path=snakemake.input.tasks, policy=snakemake.input.policy, out=snakemake.output[0],
         round_=int(snakemake.wildcards.r), shard=int(snakemake.wildcards.s))
