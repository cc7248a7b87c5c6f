"""sealflow: SEAL (Self-Adapting Language Models) as a file-based Snakemake workflow.

Every stage of the outer loop is a pure-ish function in this package; the Snakemake
scripts in ``scripts/`` only adapt ``snakemake.input/output/params`` to them.
"""

__version__ = "0.1.0"
