"""Snakemake adapter: normalised train and validation passages."""
from sealflow.stages.knowledge import prepare_passages
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
prepare_passages(snakemake.config, train_out=snakemake.output.train, val_out=snakemake.output.val)
