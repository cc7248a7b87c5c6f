"""Snakemake adapter: held-out accuracies with 95% intervals, the paper-shaped table, forgetting."""
from sealflow.knowledge.heldout_stages import summary_stage
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
summary_stage(snakemake.config, snakemake.params.pairs, snakemake.input.rows, snakemake.params.models,
              snakemake.params.writers, snakemake.params.matrix_methods, snakemake.input.matrices,
              snakemake.output.summary, snakemake.output.table, snakemake.output.forgetting)
