"""Snakemake adapter of every rule: run the stage its ``params.stage`` names (see ``sealflow.stages``).

Snakemake runs this file as a temporary top-level script (its preamble, then this source).
A child process started with the ``spawn`` method (vLLM's engine on CUDA) re-imports the
parent's main script as ``__mp_main__`` before it does anything else; without the guard
below that child would run the stage again and die while bootstrapping.
"""
from sealflow.stages import run

if __name__ == "__main__":
    run(snakemake)  # noqa: F821 (defined by Snakemake's preamble)
