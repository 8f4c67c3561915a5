"""MiniLM through the stock `mteb run` CLI on the real data: reproduces the published MTEB scores.

Needs ../shared/data (or LAM_MTEB_SHARED_DATA); skipped with a reason otherwise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_data_or_skip

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MTEB = str(Path(sys.executable).with_name("mteb"))


def mteb_run(model, task, out, data, **extra_env):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LAM_MTEB_DATA_DIR": str(data), **extra_env}
    res = subprocess.run(
        [MTEB, "run", "-m", model, "-t", task, "--output-folder", str(out), "-v", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    files = list(Path(out).glob(f"results/lam-mteb__{model}/*/{task}.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_minilm_stsbenchmark_matches_published(tmp_path):
    data = shared_data_or_skip("stsbenchmark", "sts-test.csv")
    result = mteb_run("minilm", "STSBenchmark", tmp_path, data)
    assert result["scores"]["test"][0]["cosine_spearman"] == pytest.approx(0.82032, abs=0.002)


def test_minilm_scifact_matches_published(tmp_path):
    data = shared_data_or_skip("scifact", "corpus.jsonl")
    result = mteb_run("minilm", "SciFact", tmp_path, data)
    assert result["scores"]["test"][0]["ndcg_at_10"] == pytest.approx(0.64508, abs=0.005)
