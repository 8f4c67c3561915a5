"""`lam-mteb card`: a Hugging Face model card whose model-index holds the model's mteb results."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from lam_mteb import card, plugins
from lam_mteb.errors import LamMtebError
from tests.test_core_plugins import bin_, run

STSB_REV = "b0fddb56ed78048fa8b90373c8a3cfc37b684831"
SCIFACT_REV = "0228b52cf27578f30900b9e5271d331663a030d7"


def _score(metric: str, value: float) -> dict:
    return {metric: value, "main_score": value, "hf_subset": "default", "languages": ["eng-Latn"]}


def write_results(folder: Path, model_dir: str, revision: str) -> Path:
    """A tiny mteb results folder: two published-data results, one re-created, one corrupt file."""
    rev_dir = folder / "results" / model_dir / revision
    rev_dir.mkdir(parents=True)
    files = {
        "STSBenchmark": (STSB_REV, {"test": [_score("cosine_spearman", 0.7123)]}),
        "SciFact": (SCIFACT_REV, {"test": [_score("ndcg_at_10", 0.4321)]}),
        "LEMBQMSumRetrieval": (
            "lam-mteb-recreation:qmsum",
            {"test": [_score("ndcg_at_10", 0.1111)]},
        ),
    }
    for task, (dataset_revision, scores) in files.items():
        doc = {
            "dataset_revision": dataset_revision,
            "task_name": task,
            "mteb_version": "2.26.24",
            "scores": scores,
            "evaluation_time": 1.0,
            "kg_co2_emissions": None,
        }
        (rev_dir / f"{task}.json").write_text(json.dumps(doc), encoding="utf-8")
    (rev_dir / "Broken.json").write_text("{not json", encoding="utf-8")
    (rev_dir / "model_meta.json").write_text("{}", encoding="utf-8")
    return rev_dir


def _model_index(text: str) -> list:
    from huggingface_hub import ModelCard

    parsed = ModelCard(text)  # parses and validates the YAML front matter
    return parsed.data.eval_results or []


def test_card_model_index_holds_published_data_results_only(tmp_path, mock_plugin):
    from lam_mteb.plugins import get_registry

    config = get_registry().model("mock-hash")
    write_results(tmp_path, "lam-mteb__mock-hash", config.revision)
    model_card, problems = card.build_card(plugins.host, "mock-hash", tmp_path)
    text = str(model_card)
    results = {r.dataset_name: r for r in _model_index(text)}
    assert set(results) == {"STSBenchmark (default)", "SciFact (default)"}
    sts = results["STSBenchmark (default)"]
    assert (sts.metric_type, sts.metric_value, sts.dataset_split) == (
        "cosine_spearman",
        0.7123,
        "test",
    )
    assert sts.dataset_type == "mteb/stsbenchmark-sts" and sts.dataset_revision == STSB_REV
    assert sts.task_type == "sentence-similarity"
    assert results["SciFact (default)"].metric_value == 0.4321
    assert "model-index:\n- name: lam-mteb/mock-hash" in text
    # re-created data: in the body, labelled, never in the model-index
    assert "On locally re-created data (not in the model-index)" in text
    assert (
        "LEMBQMSumRetrieval: the result file's dataset_revision 'lam-mteb-recreation:qmsum'" in text
    )
    assert re.search(r"\| LEMBQMSumRetrieval +\| test +\| default +\| ndcg_at_10 +\| 0.1111 ", text)
    # description, facts, usage
    assert "toy hashed bag-of-words encoder" in text
    assert re.search(r"\| embedding dimension +\| 64 ", text)
    assert 'lam_mteb.get_encoder("mock-hash")' in text and "mteb run -m mock-hash" in text
    assert any("Broken.json: unreadable result file" in p for p in problems)


def test_card_errors_name_what_is_missing(tmp_path, mock_plugin):
    with pytest.raises(
        LamMtebError, match=r"no results for this model in .*looked for .*lam-mteb__mock-hash"
    ):
        card.build_card(plugins.host, "mock-hash", tmp_path)
    write_results(tmp_path, "lam-mteb__mock-hash", "oldrev1")
    with pytest.raises(
        LamMtebError,
        match=r"model's current revision.*holds revision\(s\) oldrev1: pass --revision",
    ):
        card.build_card(plugins.host, "mock-hash", tmp_path)
    model_card, _ = card.build_card(plugins.host, "mock-hash", tmp_path, revision="oldrev1")
    assert len(_model_index(str(model_card))) == 2
    with pytest.raises(LamMtebError, match=r"--results .* is not a directory"):
        card.build_card(plugins.host, "mock-hash", tmp_path / "nope")
    with pytest.raises(LamMtebError, match=r"unknown model 'mock-hsh'"):
        card.build_card(plugins.host, "mock-hsh", tmp_path)


def test_write_new_never_overwrites_without_force(tmp_path):
    target = tmp_path / "README.md"
    target.write_text("mine\n", encoding="utf-8")
    with pytest.raises(LamMtebError, match="exists; pass --force"):
        card.write_new(target, "card\n", force=False)
    assert target.read_text(encoding="utf-8") == "mine\n"
    card.write_new(target, "card\n", force=True)
    assert target.read_text(encoding="utf-8") == "card\n"
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temporary file left


PLUGIN = """
import zlib
import numpy as np
import lam_mteb


class Bow:
    '''hashed words for the card test'''

    def __init__(self, dim: int = 16):
        self.dim = dim

    def encode(self, texts, **kwargs):
        out = np.full((len(texts), self.dim), 1e-3, dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, zlib.crc32(w.encode()) % self.dim] += 1
        return out


@lam_mteb.hookimpl
def register_encoders(register):
    register("card-bow", Bow, embed_dim=16, license="mit")
"""


def test_cli_writes_card_and_refuses_to_overwrite(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "cardbow.py").write_text(textwrap.dedent(PLUGIN))
    env = {"LAM_MTEB_PLUGINS_DIR": str(folder)}
    results = tmp_path / "out"
    write_results(results, "lam-mteb__card-bow", "r1")
    readme = tmp_path / "README.md"
    readme.write_text("my card\n", encoding="utf-8")
    base = [bin_("lam-mteb"), "card", "card-bow", "--results", str(results), "--revision", "r1"]
    res = run([*base, "--out", str(readme)], env)
    assert res.returncode == 2, res.stderr
    assert (
        res.stderr.strip()
        == f"error: {readme} exists; pass --force to overwrite it (or choose another --out)"
    )
    assert readme.read_text(encoding="utf-8") == "my card\n"
    res = run([*base, "--out", str(readme), "--force"], env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert f"wrote {readme} (model-index: 2 result(s))" in res.stderr
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n") and "license: mit" in text
    assert len(_model_index(text)) == 2
    assert "hashed words for the card test" in text
    res = run(base, env)  # no --out: the card on stdout
    assert res.returncode == 0 and res.stdout == text
    res = run([bin_("lam-mteb"), "card", "card-bow", "--results", str(results)], env)
    assert res.returncode == 2 and "holds revision(s) r1" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
