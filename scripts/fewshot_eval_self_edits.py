"""Snakemake adapter: TTT with self-edits of the policy of round r on the evaluation tasks."""
from sealflow.stages.fewshot_eval import eval_self_edits
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
eval_self_edits(snakemake.config, tasks_path=snakemake.input.tasks, policy=snakemake.input.policy,
                round_=int(snakemake.wildcards.r), edits_out=snakemake.output.edits, adapters_root=snakemake.params.root,
                manifest_out=snakemake.output.manifest, out=snakemake.output.detail)
