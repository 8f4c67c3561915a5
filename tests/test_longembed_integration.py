"""LongEmbed tasks through mteb with the real data (LAM_MTEB_DATA_DIR); skipped without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (SHARED_DATA / "qmsum").is_dir()
        or not (SHARED_DATA / "longtext" / "paul_graham_essays").is_dir(),
        reason=f"integration data {SHARED_DATA}/qmsum and longtext/paul_graham_essays are absent "
        "(set LAM_MTEB_SHARED_DATA to ../shared/data)",
    ),
]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAM_MTEB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(SHARED_DATA))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _load(name):
    import mteb

    task = mteb.get_task(name)
    task.load_data()
    return task


def test_passkey_task_loads_offline_and_is_marked():
    task = _load("LEMBPasskeyRetrieval")
    assert task.lam_mteb_data["recreation"] is True
    sizes = {
        s: (len(v["corpus"]), len(v["queries"]), len(v["relevant_docs"]))
        for s, v in task.dataset["default"].items()
    }
    assert sizes == {
        f"test_{n}": (100, 50, 50) for n in (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
    }


def test_needle_and_qmsum_tasks_load_offline():
    needle = _load("LEMBNeedleRetrieval")
    assert needle.lam_mteb_data["recreation"] is True
    assert {s: (len(needle.corpus[s]), len(needle.queries[s])) for s in needle.corpus} == {
        f"test_{n}": (100, 50) for n in (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
    }
    qmsum = _load("LEMBQMSumRetrieval")
    assert (
        len(qmsum.corpus["test"]),
        len(qmsum.queries["test"]),
        len(qmsum.relevant_docs["test"]),
    ) == (197, 1527, 1527)


@pytest.mark.slow
def test_long_context_run_and_table(tmp_path):
    """docs/longembed.md's benchmark on a slice: `lam-mteb run` on two Passkey lengths, then the
    per-length table of research/long_context.py read from its results."""
    out = tmp_path / "r"
    run = [
        str(Path(sys.executable).with_name("lam-mteb")),
        "run",
        "-m",
        "minilm",
        "-t",
        "LEMBPasskeyRetrieval",
        "--eval-splits",
        "test_256",
        "test_1024",
        "--output-folder",
        str(out),
    ]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result,) = (out / "results").rglob("LEMBPasskeyRetrieval.json")
    assert json.loads(result.read_text())["dataset_revision"].startswith("lam-mteb-recreation:")
    table = [sys.executable, str(ROOT / "research" / "long_context.py"), "--results", str(out)]
    proc = subprocess.run(table, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LEMBPasskeyRetrieval | test_1024" in proc.stdout and "avg >=1024" in proc.stdout
