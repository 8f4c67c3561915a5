"""Borda rank exactly as mteb's leaderboard computes it (pure Python mirror).

mteb 2.26 (``mteb/benchmarks/_create_table.py``: ``_get_borda_rank`` and
``_borda_rank_from_long``) ranks models like this:

1. per task, rank the models that have a score, higher score = better, ties get the *average*
   rank (polars ``rank(method="average", descending=True)``);
2. a model earns ``n - rank`` points on every task it has a score for, where ``n`` is the number
   of models in the table (models with no score on a task earn nothing there);
3. the points are summed and ranked again, higher = better, ties get the *lowest* rank number
   (``rank(method="min", descending=True)``), so two models tied for first are both 1 and the
   next one is 3.

Models without a single score in the benchmark are left out of the table (mteb drops all-null
rows before ranking), so they are not counted in ``n``; :func:`borda_ranks` gives them ``None``.

mteb's implementation is private (and polars-based); this mirror is checked against it in
``tests/test_leaderboard_borda.py`` whenever that function can be imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _present(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def average_ranks_descending(values: Sequence[float]) -> list[float]:
    """1-based ranks, highest value first, ties sharing the average of their positions (a value
    after ``g`` greater ones and tied with ``e - 1`` others holds positions ``g + 1 .. g + e``)."""
    return [1 + sum(o > v for o in values) + (sum(o == v for o in values) - 1) / 2 for v in values]


def min_ranks_descending(values: Sequence[float]) -> list[int]:
    """1-based ranks, highest value first, ties sharing the lowest position (1, 1, 3)."""
    return [1 + sum(1 for other in values if other > v) for v in values]


def borda_points(rows: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Borda points per row for a score matrix ``rows[model][task]`` (``None``/NaN = missing)."""
    kept = [i for i, row in enumerate(rows) if any(_present(v) for v in row)]
    n = len(kept)
    totals = {i: 0.0 for i in kept}
    n_tasks = max((len(r) for r in rows), default=0)
    for j in range(n_tasks):
        scored = [
            (i, float(v))
            for i in kept
            if j < len(rows[i]) and (v := rows[i][j]) is not None and _present(v)
        ]
        ranks = average_ranks_descending([v for _, v in scored])
        for (i, _), r in zip(scored, ranks, strict=True):
            totals[i] += n - r
    return [totals.get(i) for i in range(len(rows))]


def borda_ranks(rows: Sequence[Sequence[float | None]]) -> list[int | None]:
    """Borda rank (1 = best) per row of ``rows[model][task]``; ``None`` for rows without scores."""
    kept = [(i, p) for i, p in enumerate(borda_points(rows)) if p is not None]
    ranks = min_ranks_descending([p for _, p in kept])
    out: list[int | None] = [None] * len(rows)
    for (i, _), r in zip(kept, ranks, strict=True):
        out[i] = r
    return out
