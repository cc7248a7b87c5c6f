"""Snakemake adapter: answer each task's query with and without each adapter of a shard."""
from sealflow.fewshot.stages import score
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
score(snakemake.config, snakemake.input.edits, snakemake.input.tasks, snakemake.input.policy,
      snakemake.input.manifest, snakemake.output[0])
