"""Snakemake adapter: sample a method's self-edits for the held-out passages."""
from sealflow.knowledge.heldout_stages import sample_stage
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
sample_stage(snakemake.config, snakemake.wildcards.method, snakemake.input.passages,
             snakemake.input.get("policy"), snakemake.output[0])
