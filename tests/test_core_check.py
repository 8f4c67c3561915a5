"""`lam-mteb check`: sound encoders pass every check; broken ones fail the check they break."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

import lam_mteb
from lam_mteb import check, plugins
from tests.conftest import HashEncoder
from tests.test_core_plugins import THIRD_PARTY, bin_, run


class Good(HashEncoder):
    """Hashed bag of words with a separate query encoder."""

    def encode_queries(self, texts, **kwargs):
        return self.encode(texts, **kwargs)


class TorchOut(HashEncoder):
    def encode(self, texts, **kwargs):
        import torch

        return torch.from_numpy(super().encode(texts, **kwargs))


class WrongRows(HashEncoder):
    def encode(self, texts, **kwargs):
        return super().encode(texts, **kwargs)[:-1]


class NaNs(HashEncoder):
    def encode(self, texts, **kwargs):
        out = super().encode(texts, **kwargs)
        out[0, 0] = np.nan
        return out


class Constant(HashEncoder):
    def encode(self, texts, **kwargs):
        return np.ones((len(texts), self.dim), dtype=np.float32)


class Random(HashEncoder):
    def encode(self, texts, **kwargs):
        return np.random.default_rng().normal(size=(len(texts), self.dim)).astype(np.float32)


class PaddingBug(HashEncoder):
    """Each vector depends on the longest text in its batch (a classic padding bug)."""

    def encode(self, texts, **kwargs):
        out = super().encode(texts, **kwargs)
        out[:, 0] += max(len(t) for t in texts) / 10
        return out


class CrashOnEmpty(HashEncoder):
    def encode(self, texts, **kwargs):
        if any(not t.strip() for t in texts):
            raise IndexError("list index out of range")
        return super().encode(texts, **kwargs)


class Integers(HashEncoder):
    def encode(self, texts, **kwargs):
        return (super().encode(texts, **kwargs) * 100).astype(np.int64)


class Zeros(HashEncoder):
    def encode(self, texts, **kwargs):
        out = super().encode(texts, **kwargs)
        out[["cat" in t for t in texts]] = 0.0
        return out


class BadQueries(HashEncoder):
    def encode_queries(self, texts, **kwargs):
        return super().encode(texts, **kwargs)[:, :3]


class NoEncode:
    def embed(self, texts):
        return texts


def failing_factory():
    raise OSError("weights file model.safetensors not found")


ENCODERS = {
    "chk-good": (Good, {}),
    "chk-torch": (TorchOut, {}),
    "chk-wrong-rows": (WrongRows, {}),
    "chk-wrong-dim": (HashEncoder, {"embed_dim": 128}),
    "chk-nan": (NaNs, {}),
    "chk-constant": (Constant, {}),
    "chk-random": (Random, {}),
    "chk-padding": (PaddingBug, {}),
    "chk-crash-empty": (CrashOnEmpty, {}),
    "chk-int": (Integers, {}),
    "chk-zeros": (Zeros, {}),
    "chk-bad-queries": (BadQueries, {}),
    "chk-no-encode": (NoEncode, {}),
    "chk-factory-raises": (failing_factory, {}),
}


class CheckPlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_encoders(register):
        for name, (factory, meta) in ENCODERS.items():
            register(name, factory, **{"embed_dim": 64, **meta})


@pytest.fixture
def check_plugin():
    plugins.host.register_plugin(CheckPlugin, name="check-plugin")
    yield
    plugins.host.unregister_plugin("check-plugin")


def _run(name):
    return check.run_checks(plugins.host, name, long_chars=5_000, speed_texts=32, mteb_tasks=False)


@pytest.mark.parametrize("name", ["chk-good", "chk-torch"])
def test_sound_encoders_pass_every_check(check_plugin, name):
    report = _run(name)
    assert report.failures == []
    names = [c.name for c in report.checks]
    for expected in (
        "load",
        "contract",
        "output shape",
        "dtype",
        "finite values",
        "norms",
        "distinct texts",
        "determinism",
        "batch independence",
        "speed",
        "empty input",
        "whitespace input",
        "non-ASCII input",
        "very long input (5,000 chars)",
    ):
        assert expected in names
    assert report.by_name("output shape").detail.startswith("(16, 64)")
    assert "L2-normalised" in report.by_name("norms").detail
    assert "texts/s" in report.by_name("speed").detail
    if name == "chk-good":
        assert report.by_name("encode_queries").status == check.OK
        assert report.by_name("dtype").detail == "float32"
    else:
        assert report.by_name("dtype").detail == "torch.float32"


@pytest.mark.parametrize(
    "name, failed, detail",
    [
        ("chk-wrong-rows", "output shape", "15 rows for 16 texts"),
        ("chk-wrong-dim", "output shape", "dim 64, but the model registers embed_dim=128"),
        ("chk-nan", "finite values", "NaN or inf in 1 of 16 embeddings"),
        ("chk-constant", "distinct texts", "1 distinct vectors for 16 different texts"),
        ("chk-random", "determinism", "same texts encoded twice"),
        ("chk-padding", "batch independence", "min cosine"),
        ("chk-crash-empty", "empty input", "raised IndexError: list index out of range"),
        ("chk-int", "dtype", "int64: embeddings must be floating point"),
        ("chk-zeros", "norms", "1 zero vector(s)"),
        ("chk-bad-queries", "encode_queries", "dim 3, but the model registers embed_dim=64"),
        ("chk-no-encode", "contract", "NoEncode has no encode(texts) method"),
        ("chk-factory-raises", "load", "raised OSError: weights file model.safetensors not found"),
    ],
)
def test_broken_encoders_fail_the_check_they_break(check_plugin, name, failed, detail):
    report = _run(name)
    failures = {c.name: c.detail for c in report.failures}
    assert failed in failures, report.render()
    assert detail in failures[failed]
    # only what is broken fails (CrashOnEmpty also fails on whitespace; Random also differs alone)
    also = {"chk-crash-empty": {"whitespace input"}, "chk-random": {"batch independence"}}
    allowed = {failed} | also.get(name, set())
    assert set(failures) <= allowed, failures


def test_unknown_model_is_one_clear_error(check_plugin):
    with pytest.raises(
        lam_mteb.LamMtebError, match=r"unknown model 'chk-gud'.*did you mean 'chk-good'"
    ):
        _run("chk-gud")


def test_report_renders_table_markdown_and_json(check_plugin):
    report = _run("chk-nan")
    assert "finite values" in report.render("table")
    assert report.render("markdown").startswith("| check")
    doc = json.loads(report.render("json"))
    assert doc["model"] == "chk-nan" and doc["passed"] is False
    assert {"name": "finite values", "status": "FAIL"}.items() <= next(
        c for c in doc["checks"] if c["name"] == "finite values"
    ).items()


def test_long_text_has_the_requested_length():
    assert len(check.long_text(100_000)) == 100_000
    assert len(check.edge_inputs(7)["very long input (7 chars)"]) == 7


BROKEN_FOLDER_PLUGIN = """
import numpy as np
import lam_mteb


class NaNEncoder:
    def encode(self, texts, **kwargs):
        return np.full((len(texts), 8), np.nan, dtype=np.float32)


class ShortEncoder:
    def encode(self, texts, **kwargs):
        return np.ones((max(len(texts) - 1, 0), 8), dtype=np.float32)


@lam_mteb.hookimpl
def register_encoders(register):
    register("broken-nan", NaNEncoder, embed_dim=8)
    register("broken-shape", ShortEncoder, embed_dim=8)
"""


def test_cli_fails_a_broken_toy_encoder_with_one_line_per_failure(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text(textwrap.dedent(BROKEN_FOLDER_PLUGIN))
    env = {"LAM_MTEB_PLUGINS_DIR": str(folder)}
    for name, line in [
        (
            "broken-nan",
            "check failed: broken-nan: finite values: NaN or inf in 16 of 16 embeddings",
        ),
        (
            "broken-shape",
            "check failed: broken-shape: output shape: 15 rows for 16 texts (shape (15, 8))",
        ),
    ]:
        res = run([bin_("lam-mteb"), "check", name, "--long-chars", "1000"], env)
        assert res.returncode == 1, res.stdout + res.stderr
        failed = [x for x in res.stderr.splitlines() if x.startswith("check failed:")]
        assert failed == [line], res.stderr
        assert "Traceback" not in res.stderr
        assert (
            "mteb mock tasks" in res.stdout and "skipped" in res.stdout
        )  # mteb not run on a broken encoder
        assert f"{name}: 1 check(s) failed" in res.stdout
    res = run([bin_("lam-mteb"), "check", "no-such-model"], env)
    assert res.returncode == 2 and res.stderr.startswith("error: unknown model 'no-such-model'")
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_checks_a_third_party_plugin_built_in_a_temp_dir(tmp_path):
    """The acceptance check: a package installed from a temp dir, through mteb's mock tasks too."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    for rel, text in THIRD_PARTY.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(textwrap.dedent(text))
    target = tmp_path / "site"
    res = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(src),
        ]
    )
    assert res.returncode == 0, res.stderr
    res = run(
        [bin_("lam-mteb"), "check", "throwaway-bow", "--format", "json"],
        {"PYTHONPATH": str(target)},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["passed"] is True
    by = {c["name"]: c for c in doc["checks"]}
    assert by["load"]["detail"].startswith("BagOfWords from plugin 'throwaway'")
    assert by["output shape"]["detail"].startswith("(16, 32)")
    for task in check.DEFAULT_MOCK_TASKS:
        assert by[f"mteb {task}"]["status"] == "ok", by[f"mteb {task}"]
