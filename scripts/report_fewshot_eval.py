"""Snakemake adapter: ARC success by method."""
from sealflow.stages.report import fewshot_eval
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
fewshot_eval(summary=snakemake.input[0], plot_out=snakemake.output.plot, table_out=snakemake.output.table)
