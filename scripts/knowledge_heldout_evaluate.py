"""Snakemake adapter: evaluate one (method, setting) on the held-out passages."""
from sealflow.stages.knowledge_heldout import evaluate
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
evaluate(snakemake.config, method=snakemake.params.method, setting=snakemake.params.setting,
         passages_path=snakemake.input.passages, model_path=snakemake.input.model, edits_path=snakemake.input.get("edits"),
         out=snakemake.output.rows, matrix_out=snakemake.output.get("matrix"))
