"""Snakemake adapter: best and worst self-edits of a round."""
from sealflow.stages.report import examples
from sealflow.runtime import setup_logging

setup_logging(snakemake.log[0])
examples(domain=snakemake.wildcards.domain, rnd=int(snakemake.wildcards.r), rewards=snakemake.input.rewards,
         edits=list(snakemake.input.edits), filtered=snakemake.input.filtered, out=snakemake.output[0], n=snakemake.params.n)
