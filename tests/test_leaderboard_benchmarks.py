"""Benchmarks come from plugins (``register_benchmarks``), not from the core."""

from __future__ import annotations

import lam_mteb
from lam_mteb import plugins
from lam_mteb.leaderboard import spec
from lam_mteb.leaderboard.model import Cell, Row
from lam_mteb.leaderboard.table import build_tables


class BenchPlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_benchmarks(register):
        register(
            "toy-bench",
            "Toy tasks",
            ("ToyA", "ToyB"),
            position=1,
            abbreviations={"ToyA": "A"},
            description="two toy tasks",
        )


class BadBenchPlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_benchmarks(register):
        register("short-text", "a clash", ("X",))  # owned by the first-party datasets plugin


class TypoBenchPlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_benchmarks(register):
        register("typo-bench", "typo", ("X",), extra_task=("Y",))


def test_first_party_plugins_register_the_shipped_benchmarks():
    benches = spec.benchmarks(plugins.get_registry())
    owners = {bench.key: bench.plugin for bench in benches}
    assert owners == {"short-text": "datasets", "long-context": "longembed", "lvm": "lvm"}
    assert [bench.key for bench in benches] == ["short-text", "long-context", "lvm"]


def test_a_plugin_benchmark_becomes_a_ranked_table(capsys):
    plugins.host.register_plugin(BenchPlugin, name="bench-plugin")
    plugins.host.register_plugin(BadBenchPlugin, name="bad-bench-plugin")
    plugins.host.register_plugin(TypoBenchPlugin, name="typo-bench-plugin")
    try:
        benches = spec.benchmarks(plugins.get_registry())
        rows = [
            Row(
                model="m1",
                kind=spec.KIND_OURS,
                source="run",
                scores={"ToyA": Cell(0.9), "ToyB": Cell(0.5)},
            ),
            Row(
                model="m2",
                kind=spec.KIND_OURS,
                source="run",
                scores={"ToyA": Cell(0.1), "ToyB": Cell(0.4)},
            ),
        ]
        tables = build_tables(rows, benches)
    finally:
        for name in ("bench-plugin", "bad-bench-plugin", "typo-bench-plugin"):
            plugins.host.unregister_plugin(name)
    assert benches[0].key == "toy-bench" and benches[0].plugin == "bench-plugin"
    assert next(b for b in benches if b.key == "short-text").plugin == "datasets"
    assert "typo-bench" not in {b.key for b in benches}
    (table,) = tables
    assert table.bench.key == "toy-bench" and table.tasks == ["ToyA", "ToyB"]
    assert [(tr.row.model, tr.rank) for tr in table.rows] == [("m1", 1), ("m2", 2)]
    assert spec.abbreviation(table.bench, "ToyA") == "A"
    err = capsys.readouterr().err
    assert "'bad-bench-plugin'" in err and "benchmark 'short-text'" in err and "'datasets'" in err
    assert (
        "'typo-bench-plugin' failed in register_benchmarks: TypeError" in err
        and "extra_task" in err
    )
