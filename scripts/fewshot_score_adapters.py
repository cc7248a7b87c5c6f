"""Snakemake adapter: each adapter's answer to its task's test query."""
from sealflow.stages.fewshot import score
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
score(snakemake.config, edits_path=snakemake.input.edits, tasks_path=snakemake.input.tasks,
      policy=snakemake.input.policy, manifest_path=snakemake.input.manifest, out=snakemake.output[0])
