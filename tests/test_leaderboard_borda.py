"""Borda rank: our mirror agrees with mteb's leaderboard implementation, ties included."""

from __future__ import annotations

import random

import pytest

from lam_mteb.leaderboard.borda import average_ranks_descending, borda_points, borda_ranks


def test_average_ranks_share_ties():
    assert average_ranks_descending([0.5, 0.9, 0.5, 0.1]) == [2.5, 1.0, 2.5, 4.0]


def test_tied_models_share_the_lowest_rank_and_the_next_rank_is_skipped():
    # A and B are identical on both tasks, C is worse on both: A, B = 1, C = 3
    rows = [[0.8, 0.6], [0.8, 0.6], [0.2, 0.1]]
    assert borda_ranks(rows) == [1, 1, 3]


def test_ties_within_a_task_get_average_points():
    # task 1: A and B tie for first (rank 1.5 each), C third; task 2: C first, A second, B third
    rows = [[0.9, 0.5], [0.9, 0.4], [0.1, 0.7]]
    n = 3
    assert borda_points(rows) == [(n - 1.5) + (n - 2), (n - 1.5) + (n - 3), (n - 3) + (n - 1)]
    # points: A 2.5, B 1.5, C 2.0
    assert borda_ranks(rows) == [1, 3, 2]


def test_missing_scores_earn_no_points_and_empty_rows_are_not_ranked():
    rows = [[0.9, None], [0.5, 0.5], [None, None]]
    # n = 2 (the empty row is dropped, as mteb drops all-null rows): A = 2-1 = 1, B = (2-2) + (2-1)
    # = 1
    assert borda_points(rows) == [1.0, 1.0, None]
    assert borda_ranks(rows) == [1, 1, None]


def test_nan_counts_as_missing():
    assert borda_ranks([[float("nan"), 0.2], [0.3, 0.3]]) == [2, 1]


def _random_matrix(rng: random.Random):
    n, t = rng.randint(1, 8), rng.randint(1, 6)
    rows = [[rng.choice([None, 0.1, 0.2, 0.2, 0.35, 0.5, 0.5]) for _ in range(t)] for _ in range(n)]
    return [r for r in rows if any(v is not None for v in r)], t


def test_matches_mteb_wide_and_long_borda_on_random_tables_with_ties():
    pl = pytest.importorskip("polars")
    try:
        from mteb.benchmarks._create_table import _borda_rank_from_long, _get_borda_rank
    except ImportError as exc:  # private API: only checkable on the mteb versions that have it
        pytest.skip(f"mteb's Borda implementation is not importable here: {exc}")
    rng = random.Random(1234)
    checked = 0
    for _ in range(200):
        rows, t = _random_matrix(rng)
        if not rows:
            continue
        cols = [f"t{j}" for j in range(t)]
        df = pl.DataFrame(
            {c: [r[j] for r in rows] for j, c in enumerate(cols)},
            schema={c: pl.Float64 for c in cols},
        )
        wide = df.select(_get_borda_rank(cols)).to_series().to_list()
        long_df = pl.DataFrame(
            [
                {"model_name": f"m{i}", "task_name": f"t{j}", "score": v}
                for i, r in enumerate(rows)
                for j, v in enumerate(r)
                if v is not None
            ]
        )
        long = dict(_borda_rank_from_long(long_df).iter_rows())
        mine = borda_ranks(rows)
        assert mine == wide, rows
        assert mine == [long[f"m{i}"] for i in range(len(rows))], rows
        checked += 1
    assert checked > 150
