"""Rows -> one table per benchmark: task cells, the mean and the Borda rank of the rows that have
every task of the table (like for like); the other rows are listed below them, unranked."""

from __future__ import annotations

from dataclasses import dataclass, field

from lam_mteb.leaderboard import spec
from lam_mteb.leaderboard.borda import borda_ranks
from lam_mteb.leaderboard.model import Cell, Row, Summary

_KIND_ORDER = {
    spec.KIND_OURS: 0,
    spec.KIND_BASELINE: 1,
    spec.KIND_PUBLISHED: 2,
    spec.KIND_CLAIMED: 3,
    spec.KIND_NO_SCORES: 4,
}


@dataclass
class TableRow:
    row: Row
    cells: dict[str, Cell | None]
    mean: float | None  # over the benchmark's ranked tasks; None unless the row is complete
    n_present: int
    n_tasks: int
    missing: list[str]  # ranked tasks without a score on all their eval splits
    recreated_tasks: list[str]
    summary: Summary | None  # an aggregate the source states without per-task numbers
    rank: int | None = None
    mean_recreated: bool = False  # the mean includes a score on re-created task data

    @property
    def complete(self) -> bool:
        """Whether the row has every ranked task of the table, on all its eval splits."""
        return self.n_tasks > 0 and not self.missing


@dataclass
class Table:
    bench: spec.Benchmark
    tasks: list[str]
    extras: list[str]
    rows: list[TableRow] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [*self.tasks, *self.extras]


def _assign_tasks(
    rows: list[Row], benches: tuple[spec.Benchmark, ...]
) -> dict[str, tuple[list[str], list[str]]]:
    found = sorted({task for row in rows for task in row.scores})
    fixed = {t for b in benches for t in (*b.tasks, *b.extra_tasks)}
    assigned = set(fixed)
    out: dict[str, tuple[list[str], list[str]]] = {}
    for bench in benches:
        tasks, extras = list(bench.tasks), list(bench.extra_tasks)
        if bench.prefix:
            for task in found:
                if task.startswith(bench.prefix) and task not in assigned:
                    (tasks if bench.prefix_ranked else extras).append(task)
                    assigned.add(task)
        out[bench.key] = (tasks, extras)
    out[spec.OTHER.key] = ([t for t in found if t not in assigned], [])
    return out


def build_tables(rows: list[Row], benches: tuple[spec.Benchmark, ...]) -> list[Table]:
    """One table per benchmark of ``benches`` (the plugins', :func:`spec.benchmarks`) with at
    least one row (the benchmarks' order, then 'other')."""
    tables = []
    layout = _assign_tasks(rows, benches)
    for bench in (*benches, spec.OTHER):
        tasks, extras = layout[bench.key]
        table = Table(bench=bench, tasks=tasks, extras=extras)
        table.rows = [tr for row in rows if (tr := _table_row(row, table)) is not None]
        if table.rows:
            _rank_and_sort(table)
            tables.append(table)
    return tables


def _table_row(row: Row, table: Table) -> TableRow | None:
    """``row``'s line in ``table``, or None when it has nothing to show there."""
    bench, tasks, columns = table.bench, table.tasks, table.columns
    summary = row.summaries.get(bench.key)
    listed = row.kind == spec.KIND_NO_SCORES and bench.key in row.benchmarks
    if not (any(t in row.scores for t in columns) or summary or listed):
        return None
    cells = {t: row.scores.get(t) for t in columns}
    present = {t: cell for t in tasks if (cell := cells[t]) is not None}
    missing = [t for t in tasks if t not in present or present[t].partial_note]
    complete = bool(tasks) and not missing
    return TableRow(
        row=row,
        cells=cells,
        mean=sum(c.value for c in present.values()) / len(present) if complete else None,
        n_present=len(present),
        n_tasks=len(tasks),
        missing=missing,
        recreated_tasks=[t for t in columns if (c := cells[t]) is not None and c.recreated],
        summary=summary,
        mean_recreated=complete and any(c.recreated for c in present.values()),
    )


def ranked(tr: TableRow) -> bool:
    """Rows Borda-ranked in their table: complete rows of a ranked kind, not marked broken."""
    return tr.complete and tr.row.kind in spec.RANKED_KINDS and not tr.row.broken


def _rank_and_sort(table: Table) -> None:
    """Borda-rank the complete rows over the table's tasks, then order all rows: ranked first,
    then by kind, number of tasks, mean (or summary) and name."""
    ranked_rows = [tr for tr in table.rows if ranked(tr)]
    matrix = [[_value(tr.cells[t]) for t in table.tasks] for tr in ranked_rows]
    for tr, rank in zip(ranked_rows, borda_ranks(matrix), strict=True):
        tr.rank = rank
    table.rows.sort(
        key=lambda tr: (
            tr.rank is None,
            tr.rank or 0,
            _KIND_ORDER.get(tr.row.kind, 9),
            -tr.n_present,
            -(tr.mean if tr.mean is not None else (tr.summary.value if tr.summary else -1)),
            tr.row.model,
            tr.row.source,
        )
    )


def _value(cell: Cell | None) -> float | None:
    return cell.value if cell is not None else None
