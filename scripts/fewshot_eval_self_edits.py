"""Snakemake adapter: TTT on evaluation tasks with self-edits of the policy after p rounds."""
from sealflow.fewshot.stages import eval_self_edits
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
eval_self_edits(snakemake.config, snakemake.input.tasks, snakemake.input.policy, int(snakemake.wildcards.p),
                snakemake.output.edits, snakemake.params.root, snakemake.output.manifest, snakemake.output.detail)
