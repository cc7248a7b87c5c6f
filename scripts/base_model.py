"""Snakemake adapter: the round-0 policy of a domain."""
from sealflow.stages.base import make_base_model
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
make_base_model(snakemake.config, domain=snakemake.params.domain, out=snakemake.output[0])
