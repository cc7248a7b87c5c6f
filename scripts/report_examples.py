"""Snakemake adapter: the best and worst self-edits of one round, with their rewards."""
from sealflow.report.stages import examples
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
examples(snakemake.wildcards.domain, int(snakemake.wildcards.r), snakemake.input.rewards,
         list(snakemake.input.edits), snakemake.input.filtered, snakemake.output[0], n=snakemake.params.n)
