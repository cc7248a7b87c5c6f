"""Snakemake adapter: sample k self-edits per passage of one shard."""
from sealflow.knowledge.stages import generate
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
generate(snakemake.config, snakemake.input.passages, snakemake.input.policy, snakemake.output[0],
         int(snakemake.wildcards.r), int(snakemake.wildcards.s))
