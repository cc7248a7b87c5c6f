"""Snakemake adapter: ReST-EM rejection sampling of one round's self-edits."""
from sealflow.restem_stages import filter_stage
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
filter_stage(snakemake.config, snakemake.params.domain, snakemake.input.rewards, list(snakemake.input.edits),
             snakemake.output[0])
