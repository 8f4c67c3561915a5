"""Offline data: raw-layout builders, local snapshots, the import command."""

import datasets
import pytest

from lam_mteb import data
from lam_mteb.errors import DataNotFound, LamMtebError
from tests.conftest import write_raw_beir, write_raw_stsb


def test_stsb_builder_reads_the_release_layout(tmp_path):
    write_raw_stsb(tmp_path / "raw", n=12)
    data.build_stsbenchmark(tmp_path / "raw", tmp_path / "out")
    ds = datasets.load_dataset(str(tmp_path / "out"))
    assert set(ds) == {"train", "validation", "test"}
    row = ds["test"][0]
    assert set(row) == {"sentence1", "sentence2", "score"} and 0 <= row["score"] <= 5


def test_beir_builder_gives_mteb_retrieval_configs(tmp_path):
    write_raw_beir(tmp_path / "raw" / "scifact")
    data.build_scifact(tmp_path / "raw", tmp_path / "out")
    assert datasets.get_dataset_config_names(str(tmp_path / "out")) == ["corpus", "queries", "default"]
    qrels = datasets.load_dataset(str(tmp_path / "out"), "default", split="test")
    assert len(qrels) == 10 and qrels[0]["query-id"] == "0"
    corpus = datasets.load_dataset(str(tmp_path / "out"), "corpus", split="corpus")
    assert set(corpus.column_names) == {"_id", "title", "text"}


def test_missing_raw_files_raise_data_not_found(tmp_path):
    with pytest.raises(DataNotFound, match="sts-test.csv"):
        data.build_stsbenchmark(tmp_path, tmp_path / "o1")
    with pytest.raises(DataNotFound, match="corpus.jsonl"):
        data.build_scifact(tmp_path, tmp_path / "o2")


def test_malformed_raw_file_names_file_and_line(tmp_path):
    write_raw_stsb(tmp_path, n=3)
    with open(tmp_path / "stsbenchmark" / "sts-test.csv", "a") as fh:
        fh.write("only\tthree\tcols\n")
    with pytest.raises(LamMtebError, match=r"sts-test.csv:4: expected >= 7"):
        data.build_stsbenchmark(tmp_path, tmp_path / "o")


def test_resolve_prefers_snapshot_then_builder_then_nothing(tmp_path, tiny_sts_data_dir):
    res = data.resolve("mteb/stsbenchmark-sts", tiny_sts_data_dir)
    assert res.path == tiny_sts_data_dir / "mteb" / "stsbenchmark-sts"
    raw = tmp_path / "raw"
    write_raw_stsb(raw)
    built = data.resolve("mteb/stsbenchmark-sts", raw, quiet=True)
    assert built.path is not None and (built.path / "README.md").is_file()
    assert data.resolve("mteb/stsbenchmark-sts", raw, quiet=True).path == built.path  # cached
    none = data.resolve("mteb/scifact", raw)
    assert none.path is None and any("scifact" in p for p in none.looked_for)
    assert data.resolve("org/unknown", raw).looked_for == [str(raw / "org" / "unknown")]


def test_resolve_rebuilds_when_raw_files_change(tmp_path):
    raw = tmp_path / "raw"
    write_raw_stsb(raw, n=5)
    first = data.resolve("mteb/stsbenchmark-sts", raw, quiet=True).path
    write_raw_stsb(raw, n=9)
    import os
    os.utime(raw / "stsbenchmark" / "sts-test.csv", (1, 1))
    second = data.resolve("mteb/stsbenchmark-sts", raw, quiet=True).path
    assert first != second
    assert len(datasets.load_dataset(str(second), split="test")) == 9


def test_data_dir_that_is_not_a_directory(tmp_path):
    with pytest.raises(LamMtebError, match="is not a directory"):
        data.resolve("mteb/scifact", tmp_path / "nope")


def test_import_writes_layout_and_refuses_to_overwrite(tmp_path):
    write_raw_stsb(tmp_path / "raw")
    target = data.import_dataset("mteb/stsbenchmark-sts", tmp_path / "raw", tmp_path / "dd")
    assert target == tmp_path / "dd" / "mteb" / "stsbenchmark-sts"
    before = (target / "default" / "test.jsonl").read_bytes()
    with pytest.raises(LamMtebError, match="refusing to overwrite"):
        data.import_dataset("mteb/stsbenchmark-sts", tmp_path / "raw", tmp_path / "dd")
    assert (target / "default" / "test.jsonl").read_bytes() == before
    # the imported folder is then found as a snapshot
    assert data.resolve("mteb/stsbenchmark-sts", tmp_path / "dd").path == target
    with pytest.raises(LamMtebError, match="no builder for dataset"):
        data.import_dataset("org/none", tmp_path / "raw", tmp_path / "dd")
