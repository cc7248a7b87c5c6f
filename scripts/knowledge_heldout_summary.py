"""Snakemake adapter: the held-out summary, the paper's table and forgetting."""
from sealflow.stages.knowledge_heldout import summarize
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
summarize(snakemake.config, pairs=snakemake.params.pairs, row_paths=list(snakemake.input.rows),
          models=snakemake.params.models, writers=snakemake.params.writers,
          matrix_methods=snakemake.params.matrix_methods, matrix_paths=list(snakemake.input.matrices),
          summary_out=snakemake.output.summary, table_out=snakemake.output.table,
          forgetting_out=snakemake.output.forgetting)
