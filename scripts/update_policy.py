"""Snakemake adapter: SFT the policy on the kept self-edits: the next round's policy."""
from sealflow.stages.restem import update_policy_stage
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
update_policy_stage(snakemake.config, domain=snakemake.params.domain, policy=snakemake.input.policy,
                    filtered_path=snakemake.input.filtered, out=snakemake.output[0])
