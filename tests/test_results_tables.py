"""Every published results table is the one its committed result files give (results/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_published_tables_match_the_committed_result_files():
    spec = REPO / "results" / "tables.yaml"
    assert spec.is_file()
    run = subprocess.run(
        [sys.executable, "scripts/results_table.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "no result file" not in run.stderr, run.stderr[-2000:]
