"""The Pareto front of 2-D points: the trade-off curve every chart and ranking of the library draws.

One definition for latency vs accuracy (search, ``backbones pick``, ``backbones profile``) and
compute vs latency (``backbones profile``): a point is on the front when no other point is at least
as good in both coordinates and better in one; of identical points only the first is kept.
"""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(
    points: Sequence[tuple[float, float]], *, maximize_x: bool = False, maximize_y: bool = True
) -> list[int]:
    """Indices of the points on the front, sorted by x (ascending).

    The defaults fit ``(latency, accuracy)``: lower x and higher y are better. ``maximize_x`` /
    ``maximize_y`` say which direction is better in each coordinate.
    """
    x_sign = -1.0 if maximize_x else 1.0  # turn it into "lower x, higher y is better"
    y_sign = 1.0 if maximize_y else -1.0
    keyed = [(x_sign * x, y_sign * y) for x, y in points]
    front: list[int] = []
    best = float("-inf")
    for i in sorted(range(len(keyed)), key=lambda i: (keyed[i][0], -keyed[i][1])):
        if keyed[i][1] > best:
            front.append(i)
            best = keyed[i][1]
    return sorted(front, key=lambda i: (points[i][0], i))


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``(accuracy, latency)`` points (higher accuracy, lower latency is better) and
    bounded by ``reference`` = (worst accuracy, worst latency); points outside the box add nothing."""
    worst_acc, worst_lat = reference
    inside = sorted((lat, -acc) for acc, lat in points if acc > worst_acc and lat < worst_lat)
    volume, best = 0.0, worst_acc
    for lat, negative in inside:
        if -negative > best:
            volume += (worst_lat - lat) * (-negative - best)
            best = -negative
    return volume
