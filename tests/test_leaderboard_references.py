"""leaderboard/references.yaml: schema validation, parsing, and (with the data) every number
checked."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from lam_mteb import plugins
from lam_mteb.leaderboard import references, spec

REPO = Path(__file__).resolve().parents[1]
REFERENCES = REPO / "leaderboard" / "references.yaml"


def _doc():
    return yaml.safe_load(REFERENCES.read_text(encoding="utf-8"))


def _write(tmp_path, doc) -> Path:
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# -- the committed file ------------------------------------------------------------------------


def test_committed_references_validate_and_parse():
    doc = references.load(REFERENCES, spec.benchmarks(plugins.get_registry()))
    rows = references.rows_from_references(doc)
    assert len(rows) == len(doc["entries"])
    by = {(r.model, r.kind, r.source_short): r for r in rows}
    bge = by[("BAAI/bge-m3", spec.KIND_PUBLISHED, doc["sources"]["mteb-results"]["short"])]
    assert bge.scores["SciFact"].value == pytest.approx(0.64366)
    assert bge.n_parameters == 568_000_000 and bge.embed_dim == 1024 and bge.max_tokens == 8192


def test_committed_references_cover_the_required_models_tasks_and_rows():
    doc = _doc()
    mteb_entries = {e["model"]: e for e in doc["entries"] if e["source"] == "mteb-results"}
    assert set(mteb_entries) == {
        "BAAI/bge-m3",
        "intfloat/e5-mistral-7b-instruct",
        "sentence-transformers/all-MiniLM-L6-v2",
    }
    tasks = {
        "STSBenchmark",
        "SciFact",
        "NFCorpus",
        *next(b for b in spec.benchmarks(plugins.get_registry()) if b.key == "long-context").tasks,
    }
    for entry in mteb_entries.values():
        assert set(entry["scores"]) == tasks
        assert re.fullmatch(r"[0-9a-f]{40}", entry["revision"])
    paper = [
        e for e in doc["entries"] if e["source"] == "longembed-paper" and e["status"] == "published"
    ]
    assert {e["model"] for e in paper} >= {"BAAI/bge-m3", "intfloat/e5-mistral-7b-instruct"}
    m2 = [e for e in doc["entries"] if e["model"] == "togethercomputer/m2-bert-80M-32k-retrieval"]
    assert (
        len(m2) == 1 and m2[0]["status"] == "no-scores" and "no published scores" in m2[0]["note"]
    )
    for model in doc["models"].values():
        assert model["facts_source"]


def test_a_public_table_cites_public_sources_only():
    """No row may rest on private project notes: every source has a public URL."""
    doc = _doc()
    assert set(doc["sources"]) == {"mteb-results", "longembed-paper"}
    for key, source in doc["sources"].items():
        assert re.match(r"https://", source["url"]), key
    text = REFERENCES.read_text(encoding="utf-8").lower()
    for private in ("user's note", "seeds/", "lam-notes", "claimed, not reproduced"):
        assert private not in text, private
    assert not [e for e in doc["entries"] if e["model"] == "LAM" or e["status"] == "claimed"]


def test_a_source_without_a_public_url_is_refused(tmp_path):
    doc = copy.deepcopy(_doc())
    doc["sources"]["notes"] = {"title": "someone's private notes", "local_copy": "notes/000.txt"}
    missing = r"sources\['notes'\]: 'url' is a required property"
    with pytest.raises(references.ReferencesError, match=missing):
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))
    doc["sources"]["notes"]["url"] = "notes/000.txt"
    not_public = r"sources\['notes'\]: url: 'notes/000.txt' does not match"
    with pytest.raises(references.ReferencesError, match=not_public):
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))


def test_model_facts_match_mteb_model_meta():
    mteb = pytest.importorskip("mteb")
    doc = _doc()
    for model_id, facts in doc["models"].items():
        if not facts["facts_source"].startswith("mteb "):
            continue
        meta = mteb.get_model_meta(model_id)
        assert facts["n_parameters"] == meta.n_parameters, model_id
        assert facts["embed_dim"] == meta.embed_dim, model_id
        assert facts["max_tokens"] == int(meta.max_tokens), model_id


# -- schema errors: one line naming the file and the entry ---------------------------------------


def _first_index(doc, **match):
    return next(
        i for i, e in enumerate(doc["entries"]) if all(e.get(k) == v for k, v in match.items())
    )


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda d, i: d["entries"][i]["scores"]["SciFact"].__setitem__("value", "high"),
            r"entries\[{i}\] \(model 'BAAI/bge-m3', source 'mteb-results'\): "
            r"scores\.SciFact\.value: 'high' is not of type 'number'",
        ),
        (
            lambda d, i: d["entries"][i]["scores"]["SciFact"].__setitem__("value", 64.37),
            r"entries\[{i}\] .*scores\.SciFact\.value: 64\.37 is greater than the maximum of 1",
        ),
        (
            lambda d, i: d["entries"][i]["scores"]["SciFact"].pop("metric"),
            r"entries\[{i}\] .*scores\.SciFact: 'metric' is a required property",
        ),
        (
            lambda d, i: d["entries"][i].__setitem__("status", "rumoured"),
            r"entries\[{i}\] .*status: 'rumoured' is not one of",
        ),
        (
            lambda d, i: d["entries"][i].__setitem__("source", "a-blog"),
            r"entries\[{i}\] .*unknown source 'a-blog'",
        ),
        (
            lambda d, i: d["entries"][i].__setitem__("typo_field", 1),
            r"entries\[{i}\] .*Additional properties are not allowed \('typo_field'",
        ),
    ],
)
def test_schema_errors_name_file_and_entry(tmp_path, mutate, expected):
    doc = copy.deepcopy(_doc())
    i = _first_index(doc, model="BAAI/bge-m3", source="mteb-results")
    mutate(doc, i)
    path = _write(tmp_path, doc)
    with pytest.raises(references.ReferencesError) as info:
        references.load(path, spec.benchmarks(plugins.get_registry()))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert re.search(expected.format(i=i), message), message


def test_no_scores_entry_must_not_carry_scores(tmp_path):
    doc = copy.deepcopy(_doc())
    i = _first_index(doc, status="no-scores")
    doc["entries"][i]["scores"] = {
        "LEMBNeedleRetrieval": {"value": 0.6, "metric": "ndcg_at_10", "split": "test"}
    }
    with pytest.raises(
        references.ReferencesError, match=rf"entries\[{i}\] \(model 'togethercomputer/m2-bert"
    ):
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))


def _with_claim(doc: dict) -> int:
    """Add a claim a public source states without a result file (e.g. a model card); its index."""
    doc["sources"]["model-card"] = {
        "title": "the model's card",
        "url": "https://huggingface.co/org/m",
    }
    doc["models"]["org/m"] = {
        "label": "org/m",
        "n_parameters": None,
        "embed_dim": None,
        "max_tokens": None,
        "facts_source": "the model's card",
    }
    doc["entries"].append(
        {
            "model": "org/m",
            "source": "model-card",
            "status": "claimed",
            "note": "claimed by its authors, not reproduced",
            "summaries": {"long-context": {"value": 0.5, "note": "a mean without tasks"}},
        }
    )
    return len(doc["entries"]) - 1


def test_claim_needs_a_note(tmp_path):
    doc = copy.deepcopy(_doc())
    i = _with_claim(doc)
    references.load(
        _write(tmp_path, doc), spec.benchmarks(plugins.get_registry())
    )  # valid as written
    del doc["entries"][i]["note"]
    with pytest.raises(
        references.ReferencesError, match=rf"entries\[{i}\] .*'note' is a required property"
    ):
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))


def test_a_broken_upstream_run_needs_a_reason_and_a_public_url(tmp_path):
    doc = copy.deepcopy(_doc())
    i = _first_index(doc, model="BAAI/bge-m3", source="mteb-results")
    broken = {"reason": "run with a 512-token limit", "url": "https://github.com/o/r/issues/1"}
    doc["entries"][i]["broken"] = broken
    rows = references.rows_from_references(
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))
    )
    assert rows[i].broken == "run with a 512-token limit (https://github.com/o/r/issues/1)"
    assert all(r.broken is None for j, r in enumerate(rows) if j != i)
    del broken["url"]
    with pytest.raises(
        references.ReferencesError, match=rf"entries\[{i}\] .*broken: 'url' is a required"
    ):
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))


def test_unknown_model_and_benchmark_and_duplicates(tmp_path):
    doc = copy.deepcopy(_doc())
    doc["entries"].append(
        {
            "model": "nobody/nothing",
            "source": "mteb-results",
            "status": "published",
            "scores": {"SciFact": {"value": 0.1, "metric": "ndcg_at_10", "split": "test"}},
        }
    )
    with pytest.raises(
        references.ReferencesError, match=r"model 'nobody/nothing' is not described under models"
    ):
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))
    doc = copy.deepcopy(_doc())
    i = _with_claim(doc)
    doc["entries"][i]["summaries"]["long-ctx"] = doc["entries"][i]["summaries"].pop("long-context")
    with pytest.raises(references.ReferencesError, match=r"unknown benchmark 'long-ctx'"):
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))
    doc = copy.deepcopy(_doc())
    doc["entries"].append(copy.deepcopy(doc["entries"][0]))
    with pytest.raises(references.ReferencesError, match=r"duplicates entries\[0\]"):
        references.load(_write(tmp_path, doc), spec.benchmarks(plugins.get_registry()))


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nsources: {a: [\n", encoding="utf-8")
    with pytest.raises(
        references.ReferencesError, match=rf"^{re.escape(str(path))}: line \d+: not valid YAML"
    ):
        references.load(path, spec.benchmarks(plugins.get_registry()))


def test_missing_file(tmp_path):
    with pytest.raises(references.ReferencesError, match="cannot read references file"):
        references.load(tmp_path / "nope.yaml", spec.benchmarks(plugins.get_registry()))


# -- every number equals the reference files (needs the data) ------------------------------------


def _data_dir() -> Path:
    from tests.conftest import (
        shared_data_or_skip,
    )  # ../shared/data (LAM_MTEB_SHARED_DATA); skips without it

    return shared_data_or_skip("reference_scores")


@pytest.mark.integration
def test_every_published_mteb_number_equals_its_result_file():
    """Read each JSON with plain json (no mteb) and recompute the main score over the listed
    splits."""
    root = _data_dir()
    doc = _doc()
    n = 0
    for entry in doc["entries"]:
        if entry["source"] != "mteb-results":
            continue
        for task, score in entry["scores"].items():
            raw = json.loads((root / score["file"]).read_text(encoding="utf-8"))
            assert raw["task_name"] == task
            assert f"{entry['model'].replace('/', '__')}/{entry['revision']}/" in score["file"]
            splits = score["split"] if isinstance(score["split"], list) else [score["split"]]
            values = [s["main_score"] for split in splits for s in raw["scores"][split]]
            assert len(values) == len(splits)
            assert math.isclose(score["value"], sum(values) / len(values), rel_tol=1e-12), (
                entry["model"],
                task,
            )
            n += 1
    assert n == 27


@pytest.mark.integration
def test_every_paper_number_equals_table2():
    root = _data_dir()
    build_references = _build_script()
    PAPER_COLUMNS, PAPER_FILE = build_references.PAPER_COLUMNS, build_references.PAPER_FILE

    lines = (root / PAPER_FILE).read_text(encoding="utf-8").splitlines()
    doc = _doc()
    n = 0
    for entry in doc["entries"]:
        if entry["source"] != "longembed-paper" or entry["status"] != "published":
            continue
        printed = [entry["scores"][t]["reported"] for t in PAPER_COLUMNS] + [
            entry["reported_mean"]["reported"]
        ]
        row = [line for line in lines if line.rstrip().endswith(" ".join(printed))]
        assert len(row) == 1, (entry.get("label", entry["model"]), printed)
        for task in PAPER_COLUMNS:
            s = entry["scores"][task]
            assert s["value"] == pytest.approx(float(s["reported"]) / 100, abs=1e-12)
        n += 1
    assert n == 5


@pytest.mark.integration
def test_builder_reproduces_the_committed_file_exactly():
    root = _data_dir()
    build_references = _build_script()
    built = build_references.dump(build_references.build(root))
    assert built == REFERENCES.read_text(encoding="utf-8")


def _build_script():
    """scripts/build_references.py (a script, not part of the package) loaded as a module."""
    import importlib.util

    path = REPO / "scripts" / "build_references.py"
    spec = importlib.util.spec_from_file_location("build_references", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_script_is_outside_the_package_and_runs_as_a_script(tmp_path):
    import subprocess
    import sys

    assert not (REPO / "lam_mteb" / "leaderboard" / "refbuild.py").exists()
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_references.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and "--data-dir" in res.stdout, res.stderr
    res = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "build_references.py"),
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "refs.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stderr.startswith("error: no reference_scores/ under")
    assert not (tmp_path / "refs.yaml").exists()
