"""Snakemake adapter: test-time training, one LoRA per self-edit of a shard (keeping valid ones)."""
from sealflow.stages.fewshot import inner_loop
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
inner_loop(snakemake.config, edits_path=snakemake.input.edits, tasks_path=snakemake.input.tasks,
           policy=snakemake.input.policy, adapters_root=snakemake.params.root, manifest_out=snakemake.output.manifest,
           round_=int(snakemake.wildcards.r), shard=int(snakemake.wildcards.s))
