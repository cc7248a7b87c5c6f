"""Snakemake adapter: ARC success rate by method (chart and table)."""
from sealflow.report.stages import fewshot_eval
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
fewshot_eval(snakemake.input[0], snakemake.output.plot, snakemake.output.table)
