"""Snakemake adapter: one reward row per self-edit of a round (1 = task solved)."""
from sealflow.fewshot.stages import rewards
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
rewards(snakemake.config, list(snakemake.input.evals), list(snakemake.input.edits), snakemake.output[0])
