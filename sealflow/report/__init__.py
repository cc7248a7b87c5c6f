"""Report artifacts: plots and tables for the Snakemake HTML report.

``plots`` and ``tables`` hold pure functions (DataFrames in, matplotlib figures or
frames/HTML out); ``benchmarks`` parses Snakemake benchmark files; ``stages`` does
the file IO for the thin ``scripts/report_*.py`` adapters.
"""

DOMAIN_TITLES = {"knowledge": "Knowledge incorporation", "fewshot": "Few-shot ARC"}
COST_TITLE = "Cost"
