"""Snakemake adapter: train one LoRA per self-edit of a shard (keeping valid ones)."""
from sealflow.stages.knowledge import inner_loop
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
inner_loop(snakemake.config, edits_path=snakemake.input.edits, passages_path=snakemake.input.passages,
           policy=snakemake.input.policy, adapters_root=snakemake.params.root, manifest_out=snakemake.output.manifest,
           round_=int(snakemake.wildcards.r), shard=int(snakemake.wildcards.s))
