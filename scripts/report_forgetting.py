"""Snakemake adapter: forgetting curve of one method in the continual setting."""
from sealflow.report.stages import forgetting
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
forgetting(snakemake.input[0], snakemake.wildcards.method, snakemake.output[0])
