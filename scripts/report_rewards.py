"""Snakemake adapter: reward distribution and positive-reward fraction per round of one domain."""
from sealflow.report.stages import reward_plots
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
reward_plots(snakemake.wildcards.domain, list(snakemake.input.rewards), snakemake.output.distribution,
             snakemake.output.fraction)
