"""Snakemake adapter: held-out knowledge accuracy by method and setting (chart and table)."""
from sealflow.report.stages import heldout
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
heldout(snakemake.input[0], snakemake.output.plot, snakemake.output.table)
