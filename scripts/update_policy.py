"""Snakemake adapter: SFT the current policy on the kept self-edits -> next policy."""
from sealflow.restem_stages import update_stage
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
update_stage(snakemake.config, snakemake.params.domain, snakemake.input.policy, snakemake.input.filtered,
             snakemake.output[0])
