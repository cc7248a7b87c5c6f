"""Snakemake adapter: the evaluation table (one row per method, Wilson 95% intervals)."""
from sealflow.fewshot.stages import eval_summary
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
eval_summary(snakemake.config, snakemake.input.icl, list(snakemake.input.ttt), snakemake.input.oracle,
             snakemake.output[0])
