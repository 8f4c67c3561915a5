"""Offline builders for mteb's STS Benchmark and SciFact tasks, and the short-text benchmark.

Registered through the ``register_datasets`` hook like any plugin's builders (the core knows no
dataset): from the raw layout of a data directory (``LAM_MTEB_DATA_DIR``)

* ``stsbenchmark/sts-{train,dev,test}.csv`` (the STS Benchmark release) -> ``mteb/stsbenchmark-sts``
  (mteb's ``STSBenchmark``);
* ``scifact/`` in BEIR layout (``corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv``) ->
  ``mteb/scifact`` (mteb's ``SciFact``).

``register_benchmarks`` adds the leaderboard's short-text table over these two tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lam_mteb
from lam_mteb_plugins.datasets.builders import build_scifact, build_stsbenchmark

if TYPE_CHECKING:
    from lam_mteb.contract import RegisterBenchmark, RegisterDataset

__all__ = ["build_scifact", "build_stsbenchmark"]


@lam_mteb.hookimpl
def register_datasets(register: RegisterDataset) -> None:
    register(
        "mteb/stsbenchmark-sts",
        build_stsbenchmark,
        inputs=("stsbenchmark",),
        description="STS Benchmark original release (stsbenchmark/sts-*.csv)",
    )
    register(
        "mteb/scifact",
        build_scifact,
        inputs=("scifact",),
        description="SciFact, BEIR layout (scifact/)",
    )


@lam_mteb.hookimpl
def register_benchmarks(register: RegisterBenchmark) -> None:
    register(
        "short-text",
        "Short text: STS and retrieval",
        ("STSBenchmark", "SciFact"),
        extra_tasks=("NFCorpus",),
        position=10,
        description="STSBenchmark (cosine Spearman, test) and SciFact (nDCG@10, test); NFCorpus "
        "(nDCG@10, test) is shown for the published models but is not part of the mean or the "
        "rank (no offline copy to run it on).",
        abbreviations={"STSBenchmark": "STSB", "SciFact": "SciFact", "NFCorpus": "NFCorpus"},
    )
