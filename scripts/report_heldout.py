"""Snakemake adapter: held-out accuracy by method and setting."""
from sealflow.stages.report import heldout
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
heldout(summary=snakemake.input[0], plot_out=snakemake.output.plot, table_out=snakemake.output.table)
