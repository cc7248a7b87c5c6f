"""Snakemake adapter: closed-book answers with and without each adapter of a shard."""
from sealflow.knowledge.stages import score
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
score(snakemake.config, snakemake.input.edits, snakemake.input.passages, snakemake.input.policy,
      snakemake.input.manifest, snakemake.output[0])
