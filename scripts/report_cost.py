"""Snakemake adapter: wall time and peak memory per rule."""
from sealflow.stages.report import cost
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
cost(benchmarks_root=snakemake.params.benchmarks, patterns=snakemake.params.patterns, plot_out=snakemake.output.plot,
     table_out=snakemake.output.table)
