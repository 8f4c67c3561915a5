"""Shared fixtures. Unit tests never need ../shared; integration tests skip with a reason without
it."""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (the README's test command runs one worker per CPU) each worker, and every
# process it starts, uses one thread: N workers x N torch threads on N cores would oversubscribe
# them and make the run slower, not faster.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("LAM_MTEB_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_data_or_skip(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"integration data {path} is absent (set LAM_MTEB_SHARED_DATA to ../shared/data)"
        )
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Each test gets its own cache dir and no data dir / plugin dir unless it sets one."""
    monkeypatch.setenv("LAM_MTEB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("LAM_MTEB_DATA_DIR", raising=False)
    monkeypatch.delenv("LAM_MTEB_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("LAM_MTEB_REGISTRY", raising=False)


class HashEncoder:
    """A toy encoder: hashed bag of words, L2-normalised (lexical overlap ~ similarity)."""

    def __init__(self, dim: int = 64, seed: int = 0):
        self.dim, self.seed = dim, seed
        self.calls = []

    def encode(self, texts, *, batch_size=32, show_progress_bar=False, **kwargs):
        self.calls.append(("encode", len(texts), kwargs))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(f"{self.seed}:{word}".encode()) % (self.dim - 1)] += 1.0
            out[i, self.dim - 1] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class MockPlugin:
    """A plugin object (pluggy accepts any namespace with hookimpls)."""

    import lam_mteb as _lm

    @staticmethod
    @_lm.hookimpl
    def register_encoders(register):
        register(
            "mock-hash",
            HashEncoder,
            params={"dim": 64},
            embed_dim=64,
            max_tokens=128,
            description="toy hashed bag-of-words encoder",
        )


@pytest.fixture
def mock_plugin():
    from lam_mteb import plugins

    plugins.host.register_plugin(MockPlugin, name="mock-plugin")
    plugins.host.bridge.install(force=True)
    yield MockPlugin
    plugins.host.unregister_plugin("mock-plugin")
    plugins.host.bridge.install(force=True)


WORDS = (
    "cat dog bird fish horse cow sheep goat man woman child plays runs eats sleeps sings red blue "
    "green big "
    "small old young happy sad the a on in under over near house tree car road river field"
).split()


def make_sts_rows(n: int, seed: int = 0):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a = rng.sample(WORDS, 6)
        keep = rng.randint(0, 6)
        b = a[:keep] + rng.sample(WORDS, 6 - keep)
        rows.append(
            {"sentence1": " ".join(a), "sentence2": " ".join(b), "score": round(5.0 * keep / 6, 3)}
        )
    return rows


@pytest.fixture
def tiny_sts_data_dir(tmp_path):
    """A data dir holding a local snapshot of mteb/stsbenchmark-sts (tiny, generated)."""
    from lam_mteb.data import write_hf_dataset

    root = tmp_path / "data"
    write_hf_dataset(
        root / "mteb" / "stsbenchmark-sts",
        {
            "default": {
                "train": make_sts_rows(20, 1),
                "validation": make_sts_rows(20, 2),
                "test": make_sts_rows(60, 3),
            }
        },
    )
    return root


def write_raw_stsb(root: Path, n: int = 30) -> None:
    folder = root / "stsbenchmark"
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in [
        ("train", "sts-train.csv"),
        ("dev", "sts-dev.csv"),
        ("test", "sts-test.csv"),
    ]:
        rows = make_sts_rows(n, len(split))
        with open(folder / name, "w", encoding="utf-8") as fh:
            for i, r in enumerate(rows):
                fh.write(
                    f"main-captions\tMSRvid\t2012test\t{i:04d}\t{r['score']:.3f}\t{r['sentence1']}\t{r['sentence2']}\n"
                )


def write_raw_beir(folder: Path, n_docs: int = 40, n_queries: int = 10) -> None:
    import json

    rng = random.Random(7)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs = [
        {"_id": f"d{i}", "title": f"title {i}", "text": " ".join(rng.sample(WORDS, 12))}
        for i in range(n_docs)
    ]
    with open(folder / "corpus.jsonl", "w") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for q in range(n_queries):
            fh.write(json.dumps({"_id": str(q), "text": docs[q]["text"], "metadata": {}}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", newline="") as fh:
        fh.write("query-id\tcorpus-id\tscore\r\n")
        for q in range(n_queries):
            fh.write(f"{q}\td{q}\t1\r\n")
