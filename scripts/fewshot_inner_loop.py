"""Snakemake adapter: test-time training, one LoRA per self-edit of a shard (keeping valid ones)."""
from sealflow.fewshot.stages import inner_loop
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
inner_loop(snakemake.config, snakemake.input.edits, snakemake.input.tasks, snakemake.input.policy,
           snakemake.params.root, snakemake.output.manifest, int(snakemake.wildcards.r), int(snakemake.wildcards.s))
