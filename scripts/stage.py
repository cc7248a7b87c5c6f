"""Snakemake adapter of every rule: run the stage its ``params.stage`` names (see ``sealflow.stages``)."""
from sealflow.stages import run

run(snakemake)
