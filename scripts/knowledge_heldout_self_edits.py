"""Snakemake adapter: held-out self-edits of one method's writer."""
from sealflow.stages.knowledge_heldout import sample_self_edits
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
sample_self_edits(snakemake.config, method=snakemake.wildcards.method, passages_path=snakemake.input.passages,
                  policy=snakemake.input.get("policy"), out=snakemake.output[0])
