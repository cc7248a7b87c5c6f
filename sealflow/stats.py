"""Interval statistics, one copy for both domains.

With no observations there is no estimate: every function returns NaN bounds at n = 0.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(values: Sequence[float], samples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of the mean, resampling ``values`` (one per question) with replacement."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    return _percentile_bounds(sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples)),
                              level)


def _percentile_bounds(means: Sequence[float], level: float) -> tuple[float, float]:
    """The two-sided ``level`` percentile interval of sorted bootstrap means."""
    samples = len(means)
    return (means[int(math.floor((1 - level) / 2 * (samples - 1)))],
            means[int(math.ceil((1 + level) / 2 * (samples - 1)))])


def mean_interval(values: Sequence[float], bootstrap_samples: int = 2000,
                  seed: int = 0) -> tuple[float, float, float, str]:
    """Mean, 95% interval and its method over per-unit scores.

    Wilson when every score is 0 or 1 (a binomial proportion); otherwise a percentile
    bootstrap over the units (questions), the unit the held-out set samples.
    """
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"), float("nan"), "none")
    mean = sum(values) / n
    if all(v in (0.0, 1.0) for v in values):
        lo, hi = wilson_interval(sum(values), n)
        return (mean, lo, hi, "wilson")
    lo, hi = bootstrap_interval(values, bootstrap_samples, seed)
    return (mean, lo, hi, "bootstrap")


def paired_bootstrap_interval(a: Sequence[float], b: Sequence[float], samples: int = 2000, seed: int = 0,
                              level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired units (the same questions) and its percentile bootstrap interval.

    Resampling the units, not the two methods independently, keeps what the pair shares
    (a hard question is hard for both), so the interval is that of the difference itself.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores differ in length: {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    if not diffs:
        return (float("nan"), float("nan"), float("nan"))
    lo, hi = bootstrap_interval(diffs, samples, seed, level)
    return (sum(diffs) / len(diffs), lo, hi)


def pooled_paired_bootstrap_interval(groups: Sequence[Sequence[float]], samples: int = 2000, seed: int = 0,
                                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean paired difference over several independent runs (seeds) and its 95% interval.

    ``groups`` holds each run's per-question differences. A bootstrap sample redraws each
    run's questions from that run only (stratified), so every seed keeps its weight and
    its own model, data and sampling: the interval covers question sampling within seeds.
    """
    sizes = [len(g) for g in groups]
    total = sum(sizes)
    if total == 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = random.Random(seed)
    means = sorted(sum(g[rng.randrange(n)] for g, n in zip(groups, sizes) if n for _ in range(n)) / total
                   for _ in range(samples))
    return (sum(sum(g) for g in groups) / total, *_percentile_bounds(means, level))
