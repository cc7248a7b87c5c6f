"""Snakemake adapter: one row per ARC evaluation method."""
from sealflow.stages.fewshot_eval import eval_summary
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
eval_summary(snakemake.config, icl_path=snakemake.input.icl, ttt_paths=list(snakemake.input.ttt),
             oracle_path=snakemake.input.oracle, out=snakemake.output[0])
