"""Held-out evaluation of knowledge incorporation (the paper's Table 2).

``methods`` (what a config asks for; torch-free, read by the rules), ``settings``,
``run`` (trains and answers), ``external`` (an external model's synthetic data) and
``summary`` (accuracies with intervals, the paper's table, forgetting).
"""
