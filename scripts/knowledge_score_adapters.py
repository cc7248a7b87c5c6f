"""Snakemake adapter: closed-book answers with and without each adapter of a shard."""
from sealflow.stages.knowledge import score
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
score(snakemake.config, edits_path=snakemake.input.edits, passages_path=snakemake.input.passages,
      policy=snakemake.input.policy, manifest_path=snakemake.input.manifest, out=snakemake.output[0])
