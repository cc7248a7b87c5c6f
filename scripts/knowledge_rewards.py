"""Snakemake adapter: one reward row per self-edit of a round."""
from sealflow.stages.knowledge import rewards
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
rewards(snakemake.config, eval_paths=list(snakemake.input.evals), edit_paths=list(snakemake.input.edits),
        out=snakemake.output[0])
