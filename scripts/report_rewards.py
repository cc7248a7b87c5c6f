"""Snakemake adapter: reward distribution and positive fraction per round."""
from sealflow.stages.report import reward_plots
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
reward_plots(domain=snakemake.wildcards.domain, rewards=list(snakemake.input.rewards),
             distribution_out=snakemake.output.distribution, fraction_out=snakemake.output.fraction)
