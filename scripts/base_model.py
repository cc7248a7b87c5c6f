"""Snakemake adapter: the round-0 policy of a domain."""
from sealflow.base_stage import make_base_model
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
make_base_model(snakemake.config, snakemake.params.domain, snakemake.output[0])
