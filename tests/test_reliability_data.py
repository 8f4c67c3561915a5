"""Issue 15, cases 1, 2, 8 and the data part of 9: content-addressed local data, validated
builds, no reuse of a result computed on other data, no NaN written, safe concurrent builds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mteb
import numpy as np
import pytest
from mteb.cache import ResultCache

from lam_mteb import data, plugins
from lam_mteb.errors import LamMtebError
from lam_mteb.hashing import HASH_INDEX
from lam_mteb.paths import cache_dir
from tests.conftest import REPO, write_raw_beir, write_raw_stsb


def _run_sts(model_name: str, out: Path, **kw):
    res = mteb.evaluate(
        mteb.get_model(model_name),
        [mteb.get_task("STSBenchmark")],
        cache=ResultCache(out),
        show_progress_bar=False,
        **kw,
    )
    return res.task_results[0]


def _truncate_rows(path: Path, keep: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:keep]), encoding="utf-8")


def test_truncated_then_good_data_gives_the_good_score(mock_plugin, tmp_path, monkeypatch):
    """Case 1: a data dir cut at a row boundary, then the good file: the second run re-evaluates."""
    root = tmp_path / "data"
    write_raw_stsb(root, n=60)
    good = (root / "stsbenchmark" / "sts-test.csv").read_bytes()
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(root))
    fresh = _run_sts("mock-hash", tmp_path / "fresh")
    _truncate_rows(root / "stsbenchmark" / "sts-test.csv", 15)
    out = tmp_path / "out"
    cut = _run_sts("mock-hash", out)
    assert cut.get_score() != pytest.approx(fresh.get_score())
    assert cut.dataset_revision.startswith(data.LOCAL_PREFIX)
    (root / "stsbenchmark" / "sts-test.csv").write_bytes(good)
    again = _run_sts("mock-hash", out)  # same output folder: the cut result must not be reused
    assert again.get_score() == pytest.approx(fresh.get_score())
    assert again.dataset_revision == fresh.dataset_revision != cut.dataset_revision
    saved = next((out / "results").rglob("STSBenchmark.json"))
    assert json.loads(saved.read_text())["dataset_revision"] == fresh.dataset_revision
    # and with unchanged data the cached result *is* reused (no re-evaluation)
    mtime = saved.stat().st_mtime_ns
    _run_sts("mock-hash", out)
    assert saved.stat().st_mtime_ns == mtime


def test_same_size_same_mtime_replacement_is_detected(tmp_path):
    """Case 1: `cp -p` of a same-size file keeps size and mtime; the content address still
    changes."""
    root = tmp_path / "data"
    write_raw_stsb(root, n=30)
    first = plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True)
    path = root / "stsbenchmark" / "sts-test.csv"
    st = path.stat()
    text = path.read_text()
    swapped = text.replace("cat", "dog").replace("bird", "fish") if "cat" in text else text[::-1]
    assert len(swapped) == len(text) and swapped != text
    path.write_text(swapped)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    second = plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True)
    assert second.revision != first.revision and second.path != first.path


def test_verify_data_rehashes_past_the_shortcut(tmp_path):
    """--verify-data ignores the (size, mtime, ctime, inode) shortcut and re-reads the bytes."""
    root = tmp_path / "data"
    write_raw_stsb(root, n=30)
    good = plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True)
    # forge the shortcut: pretend sts-test.csv had other bytes when last hashed
    index_path = cache_dir() / HASH_INDEX
    index = json.loads(index_path.read_text())
    key = str((root / "stsbenchmark" / "sts-test.csv").resolve())
    index[key][4] = "0" * 64
    index_path.write_text(json.dumps(index))
    plugins.host.hashes.forget()
    assert (
        plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True).revision
        != good.revision
    )  # shortcut used
    assert (
        plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True, verify=True).revision
        == good.revision
    )
    assert (
        plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True).revision
        == good.revision
    )  # index fixed


def test_modified_build_cache_is_rebuilt(tmp_path, capsys):
    """Case 1: a cached build cut short (only its README.md trusted before) is detected and
    rebuilt."""
    root = tmp_path / "data"
    write_raw_stsb(root, n=30)
    first = plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True)
    test_file = first.path / "default" / "test.jsonl"
    manifest = json.loads((first.path / data.BUILD_MANIFEST).read_text())
    assert manifest["files"]["default/test.jsonl"]["rows"] == 30
    _truncate_rows(test_file, 10)
    again = plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True)
    assert "incomplete or was modified; rebuilding" in capsys.readouterr().err
    assert again.path == first.path and again.revision == first.revision
    assert len(test_file.read_text().splitlines()) == 30


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", ["sts-test.csv", "no rows", "empty"]),
        (b"a\tb\tc\t1\t2.5\tsent one\tsent \xff\xfe two\n", ["sts-test.csv:1", "not UTF-8"]),
        (b"a\tb\tc\t1\tnot-a-score\tone\ttwo\n", ["sts-test.csv:1", "not a number"]),
        (b"a\tb\tc\t1\t2.5\tone\n", ["sts-test.csv:1", "7 tab-separated columns"]),
    ],
)
def test_bad_raw_sts_files_are_one_line(tmp_path, content, words):
    """Case 9: non-UTF-8, malformed rows, an empty sts-test.csv: one line naming file (and line)."""
    root = tmp_path / "data"
    write_raw_stsb(root, n=5)
    (root / "stsbenchmark" / "sts-test.csv").write_bytes(content)
    with pytest.raises(LamMtebError) as err:
        plugins.host.data.resolve("mteb/stsbenchmark-sts", root, quiet=True)
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize(
    "rel, content, words",
    [
        (
            "corpus.jsonl",
            b'{"_id": "d0", "text": "x"}\n{"_id": "d1", "te',
            ["corpus.jsonl:2", "invalid JSON"],
        ),
        ("queries.jsonl", b'{"_id": "0", "text": "\xff"}\n', ["queries.jsonl:1", "not UTF-8"]),
        ("qrels/test.tsv", b"query-id\tcorpus-id\tscore\n0\td0\n", ["test.tsv:2", "integer score"]),
    ],
)
def test_bad_raw_beir_files_are_one_line(tmp_path, rel, content, words):
    root = tmp_path / "data"
    write_raw_beir(root / "scifact")
    (root / "scifact" / rel).write_bytes(content)
    with pytest.raises(LamMtebError) as err:
        plugins.host.data.resolve("mteb/scifact", root, quiet=True)
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_bad_raw_data_through_the_cli_is_one_line(tmp_path, mock_plugin, capsys):
    from lam_mteb import cli

    root = tmp_path / "data"
    write_raw_stsb(root, n=5)
    (root / "stsbenchmark" / "sts-test.csv").write_bytes(b"")
    code = cli.main(
        [
            "run",
            "-m",
            "mock-hash",
            "-t",
            "STSBenchmark",
            "--data-dir",
            str(root),
            "--output-folder",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert any("sts-test.csv: no rows" in line for line in err.splitlines()), err
    assert not list((tmp_path / "out").rglob("*.json"))


# -- case 2: NaN is an error, constant encoders are reported -------------------------------------


class ConstantEncoder:
    def __init__(self, value: float = 0.0, dim: int = 8):
        self.value, self.dim = value, dim

    def encode(self, texts, **kwargs):
        return np.full((len(texts), self.dim), self.value, dtype=np.float32)


class _ConstantPlugin:
    import lam_mteb as _lm

    @staticmethod
    @_lm.hookimpl
    def register_encoders(register):
        register("const-zero", ConstantEncoder, params={"value": 0.0})
        register("const-one", ConstantEncoder, params={"value": 1.0})


@pytest.fixture
def constant_plugin(mock_plugin):

    plugins.host.register_plugin(_ConstantPlugin, name="constant-plugin")
    plugins.host.bridge.install(force=True)
    yield
    plugins.host.unregister_plugin("constant-plugin")
    plugins.host.bridge.install(force=True)


@pytest.mark.parametrize("model", ["const-zero", "const-one"])
def test_nan_score_is_an_error_and_nothing_is_written(
    constant_plugin, tiny_sts_data_dir, tmp_path, model, capsys
):
    from lam_mteb import cli

    code = cli.main(
        [
            "run",
            "-m",
            model,
            "-t",
            "STSBenchmark",
            "--data-dir",
            str(tiny_sts_data_dir),
            "--output-folder",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "STSBenchmark" in lines[0] and "not a finite number" in lines[0], err
    assert "constant encoder" in err
    assert not list((tmp_path / "out").rglob("STSBenchmark.json"))


def test_cached_nan_result_is_not_served(
    mock_plugin, tiny_sts_data_dir, tmp_path, monkeypatch, capsys
):
    """Case 2: a NaN left in a results folder by an older version is evaluated again, not served."""
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tiny_sts_data_dir))
    out = tmp_path / "out"
    good = _run_sts("mock-hash", out)
    path = next((out / "results").rglob("STSBenchmark.json"))
    raw = json.loads(path.read_text())
    raw["scores"]["test"][0]["main_score"] = float("nan")
    path.write_text(json.dumps(raw))
    again = _run_sts("mock-hash", out)
    assert np.isfinite(again.get_score()) and again.get_score() == pytest.approx(good.get_score())
    assert "non-finite main scores" in capsys.readouterr().err


def test_corrupt_result_json_is_named_and_treated_as_missing(
    mock_plugin, tiny_sts_data_dir, tmp_path, monkeypatch, capsys
):
    """Case 9: a result JSON cut by a kill: named in one line, re-evaluated, replaced atomically."""
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tiny_sts_data_dir))
    out = tmp_path / "out"
    good = _run_sts("mock-hash", out)
    path = next((out / "results").rglob("STSBenchmark.json"))
    path.write_text(path.read_text()[:200])
    again = _run_sts("mock-hash", out)
    err = capsys.readouterr().err
    assert any(str(path) in line and "corrupt" in line for line in err.splitlines()), err
    assert again.get_score() == pytest.approx(good.get_score())
    assert json.loads(path.read_text())["task_name"] == "STSBenchmark"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


# -- case 8: concurrent first builds -------------------------------------------------------------

BUILD_SNIPPET = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from lam_mteb import plugins
    root, start = Path(sys.argv[1]), float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))
    entry = plugins.host.data.builders()["mteb/scifact"]
    target, digest = plugins.host.data.build_cached(entry, root, quiet=True)
    assert plugins.host.data.build_is_valid(target), target
    n = sum(1 for _ in open(target / "corpus" / "corpus.jsonl"))
    print(target.name, n)
""")


def test_concurrent_first_builds_never_crash(tmp_path, n_procs=3):
    root = tmp_path / "data"
    write_raw_beir(root / "scifact", n_docs=2000, n_queries=50)
    for rep in range(4):
        env = {
            **os.environ,
            "LAM_MTEB_CACHE": str(tmp_path / f"cache{rep}"),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        start = time.time() + 1.5
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", BUILD_SNIPPET, str(root), str(start)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(n_procs)
        ]
        outs = [p.communicate(timeout=600) for p in procs]  # generous: CI runs it beside others
        for p, (_stdout, stderr) in zip(procs, outs, strict=True):
            assert p.returncode == 0, stderr
        assert len({o[0] for o in outs}) == 1 and outs[0][0].split()[1] == "2000"
        base = tmp_path / f"cache{rep}" / "datasets" / "mteb__scifact"
        assert not list(base.glob(".build-*")), "temporary build folders left behind"


def test_killed_builds_are_cleaned(tmp_path):
    root = tmp_path / "data"
    write_raw_beir(root / "scifact")
    first = plugins.host.data.resolve("mteb/scifact", root, quiet=True)
    base = first.path.parent
    shutil.rmtree(first.path)
    dead = base / f".build-{first.path.name}-killed"  # a killed build of the same folder
    (dead / "corpus").mkdir(parents=True)
    old = base / ".build-oldnaming1234"  # an old one of any other build
    old.mkdir()
    past = time.time() - 2 * data.STALE_BUILD_SECONDS
    os.utime(old, (past, past))
    fresh = base / ".build-someone-else-building"  # recent: may be in progress elsewhere
    fresh.mkdir()
    again = plugins.host.data.resolve("mteb/scifact", root, quiet=True)
    assert plugins.host.data.build_is_valid(again.path)
    assert not dead.exists() and not old.exists() and fresh.exists()
