"""Offline data: raw-layout builders, local snapshots, the import command."""

import datasets
import pytest

from lam_mteb import data, plugins
from lam_mteb.errors import DataNotFound, LamMtebError
from lam_mteb_plugins.datasets import build_scifact, build_stsbenchmark
from tests.conftest import write_raw_beir, write_raw_stsb


def test_stsb_builder_reads_the_release_layout(tmp_path):
    write_raw_stsb(tmp_path / "raw", n=12)
    build_stsbenchmark(tmp_path / "raw", tmp_path / "out")
    ds = datasets.load_dataset(str(tmp_path / "out"))
    assert set(ds) == {"train", "validation", "test"}
    row = ds["test"][0]
    assert set(row) == {"sentence1", "sentence2", "score"} and 0 <= row["score"] <= 5


def test_beir_builder_gives_mteb_retrieval_configs(tmp_path):
    write_raw_beir(tmp_path / "raw" / "scifact")
    build_scifact(tmp_path / "raw", tmp_path / "out")
    assert datasets.get_dataset_config_names(str(tmp_path / "out")) == [
        "corpus",
        "queries",
        "default",
    ]
    qrels = datasets.load_dataset(str(tmp_path / "out"), "default", split="test")
    assert len(qrels) == 10 and qrels[0]["query-id"] == "0"
    corpus = datasets.load_dataset(str(tmp_path / "out"), "corpus", split="corpus")
    assert set(corpus.column_names) == {"_id", "title", "text"}


def test_missing_raw_files_raise_data_not_found(tmp_path):
    with pytest.raises(DataNotFound, match="sts-test.csv"):
        build_stsbenchmark(tmp_path, tmp_path / "o1")
    with pytest.raises(DataNotFound, match="corpus.jsonl"):
        build_scifact(tmp_path, tmp_path / "o2")


def test_malformed_raw_file_names_file_and_line(tmp_path):
    write_raw_stsb(tmp_path, n=3)
    with open(tmp_path / "stsbenchmark" / "sts-test.csv", "a") as fh:
        fh.write("only\tthree\tcols\n")
    with pytest.raises(LamMtebError, match=r"sts-test.csv:4: expected >= 7"):
        build_stsbenchmark(tmp_path, tmp_path / "o")


def test_resolve_prefers_snapshot_then_builder_then_nothing(tmp_path, tiny_sts_data_dir):
    res = plugins.host.data.resolve("mteb/stsbenchmark-sts", tiny_sts_data_dir)
    assert res.path == tiny_sts_data_dir / "mteb" / "stsbenchmark-sts"
    raw = tmp_path / "raw"
    write_raw_stsb(raw)
    built = plugins.host.data.resolve("mteb/stsbenchmark-sts", raw, quiet=True)
    assert built.path is not None and (built.path / "README.md").is_file()
    assert (
        plugins.host.data.resolve("mteb/stsbenchmark-sts", raw, quiet=True).path == built.path
    )  # cached
    none = plugins.host.data.resolve("mteb/scifact", raw)
    assert none.path is None and any("scifact" in p for p in none.looked_for)
    assert plugins.host.data.resolve("org/unknown", raw).looked_for == [
        str(raw / "org" / "unknown")
    ]


def test_resolve_rebuilds_when_raw_files_change(tmp_path):
    raw = tmp_path / "raw"
    write_raw_stsb(raw, n=5)
    first = plugins.host.data.resolve("mteb/stsbenchmark-sts", raw, quiet=True).path
    write_raw_stsb(raw, n=9)
    import os

    os.utime(raw / "stsbenchmark" / "sts-test.csv", (1, 1))
    second = plugins.host.data.resolve("mteb/stsbenchmark-sts", raw, quiet=True).path
    assert first != second
    assert len(datasets.load_dataset(str(second), split="test")) == 9


def test_data_dir_that_is_not_a_directory(tmp_path):
    with pytest.raises(LamMtebError, match="is not a directory"):
        plugins.host.data.resolve("mteb/scifact", tmp_path / "nope")


def test_import_writes_layout_and_refuses_to_overwrite(tmp_path):
    write_raw_stsb(tmp_path / "raw")
    target = plugins.host.data.import_dataset(
        "mteb/stsbenchmark-sts", tmp_path / "raw", tmp_path / "dd"
    )
    assert target == tmp_path / "dd" / "mteb" / "stsbenchmark-sts"
    before = (target / "default" / "test.jsonl").read_bytes()
    with pytest.raises(LamMtebError, match="refusing to overwrite"):
        plugins.host.data.import_dataset("mteb/stsbenchmark-sts", tmp_path / "raw", tmp_path / "dd")
    assert (target / "default" / "test.jsonl").read_bytes() == before
    # the imported folder is then found as a snapshot
    assert plugins.host.data.resolve("mteb/stsbenchmark-sts", tmp_path / "dd").path == target
    with pytest.raises(LamMtebError, match="no builder for dataset"):
        plugins.host.data.import_dataset("org/none", tmp_path / "raw", tmp_path / "dd")


def test_builder_inputs_are_what_the_builder_declares(tmp_path):
    """The build's content address covers the declared input folders only: a change elsewhere in
    the data dir keeps the cached build; a change inside them makes a new one."""
    from lam_mteb.registry import DatasetEntry

    raw = tmp_path / "raw"
    write_raw_stsb(raw, n=6)
    (raw / "unrelated").mkdir()
    (raw / "unrelated" / "notes.txt").write_text("one")
    entry = DatasetEntry(
        path="mteb/stsbenchmark-sts",
        builder=build_stsbenchmark,
        plugin="t",
        inputs=("stsbenchmark", "absent"),
    )
    assert data.builder_inputs(entry, raw) == [raw / "stsbenchmark"]
    first, digest = plugins.host.data.build_cached(entry, raw, quiet=True)
    (raw / "unrelated" / "notes.txt").write_text("two")
    assert plugins.host.data.build_cached(entry, raw, quiet=True) == (first, digest)
    with open(raw / "stsbenchmark" / "sts-test.csv", "a") as fh:
        fh.write("g\tf\t2015\t0001\t2.5\tA new pair.\tAnother pair.\n")
    assert plugins.host.data.build_cached(entry, raw, quiet=True)[1] != digest
    generator = DatasetEntry(path="x/y", builder=build_stsbenchmark, plugin="t", inputs=())
    everything = DatasetEntry(path="x/y", builder=build_stsbenchmark, plugin="t")
    assert data.builder_inputs(generator, raw) == [] and data.builder_inputs(everything, raw) == [
        raw
    ]


def test_register_refuses_inputs_outside_the_data_dir():
    from lam_mteb.registry import _DatasetStage

    stage = _DatasetStage("p")
    with pytest.raises(ValueError, match="relative to the data directory"):
        stage("x/y", build_stsbenchmark, inputs=("../etc",))
    with pytest.raises(TypeError, match="not the string"):
        stage("x/y", build_stsbenchmark, inputs="scifact")
