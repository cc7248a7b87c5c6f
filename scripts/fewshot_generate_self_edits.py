"""Snakemake adapter: sample k self-edits (JSON tool configurations) per task of one shard."""
from sealflow.fewshot.stages import generate
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
generate(snakemake.config, snakemake.input.tasks, snakemake.input.policy, snakemake.output[0],
         int(snakemake.wildcards.r), int(snakemake.wildcards.s))
