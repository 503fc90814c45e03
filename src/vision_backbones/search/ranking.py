"""How well one ranking of architectures agrees with another (a supernet's or a proxy's against the truth).

Weight-sharing and zero-cost estimates are judged by rank correlation with stand-alone accuracy
(Sciuto et al. report Kendall tau near 0 for naively trained supernets), not by their values.
"""

from __future__ import annotations

from collections.abc import Sequence


def kendall_tau(estimates: Sequence[float], truths: Sequence[float]) -> float:
    """Kendall's tau-b between estimates and true accuracies (``scipy.stats``)."""
    from scipy.stats import kendalltau

    if len(estimates) != len(truths) or len(estimates) < 2:
        raise ValueError(f"need two equal lists of >= 2 values, got {len(estimates)} and {len(truths)}")
    return float(kendalltau(estimates, truths).statistic)
