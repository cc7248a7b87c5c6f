"""Snakemake adapter: wall time and peak memory per rule from the run's benchmark files."""
from sealflow.report.stages import cost
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
cost(snakemake.params.benchmarks, snakemake.params.patterns, snakemake.output.plot, snakemake.output.table)
