"""Snakemake adapter: the forgetting curve of one method."""
from sealflow.stages.report import forgetting
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
forgetting(matrix=snakemake.input[0], method=snakemake.wildcards.method, out=snakemake.output[0])
