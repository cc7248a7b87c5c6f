"""Snakemake adapter: evaluate one (method, setting) on the held-out passages."""
from sealflow.knowledge.heldout_stages import evaluate_stage
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
evaluate_stage(snakemake.config, snakemake.params.method, snakemake.params.setting, snakemake.input.passages,
               snakemake.input.model, snakemake.input.get("edits"), snakemake.output.rows,
               snakemake.output.get("matrix"))
