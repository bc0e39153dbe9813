"""Interval estimates for conversion rates and their differences.

A variant's conversion rate gets a Wilson score interval (good at small counts and rates near 0 or 1, where
the normal approximation fails). The difference between a variant and the holdout gets Newcombe's hybrid
score interval (Newcombe 1998, method 10), built from the two Wilson intervals: it stays inside [-1, 1] and
keeps its coverage with the small holdouts a test-and-learn split has.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p_a - p_b``."""
    p_a = successes_a / trials_a if trials_a else 0.0
    p_b = successes_b / trials_b if trials_b else 0.0
    l_a, u_a = wilson_interval(successes_a, trials_a, confidence)
    l_b, u_b = wilson_interval(successes_b, trials_b, confidence)
    difference = p_a - p_b
    lower = difference - math.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2)
    upper = difference + math.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)
    return max(-1.0, lower), min(1.0, upper)
