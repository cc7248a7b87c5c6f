"""Snakemake adapter: normalise the configured passages into train/val JSONL."""
from sealflow.knowledge.stages import prepare_passages
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
prepare_passages(snakemake.config, snakemake.output.train, snakemake.output.val)
