"""Snakemake adapter: keep the best self-edits per input (ReST-EM)."""
from sealflow.stages.restem import filter_edits
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
filter_edits(snakemake.config, domain=snakemake.params.domain, rewards_path=snakemake.input.rewards,
             edit_paths=list(snakemake.input.edits), out=snakemake.output[0])
