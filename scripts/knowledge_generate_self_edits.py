"""Snakemake adapter: k self-edits per passage of a shard."""
from sealflow.stages.knowledge import generate
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
generate(snakemake.config, passages_path=snakemake.input.passages, policy=snakemake.input.policy,
         out=snakemake.output[0], round_=int(snakemake.wildcards.r), shard=int(snakemake.wildcards.s))
