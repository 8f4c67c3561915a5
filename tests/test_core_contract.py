"""The typed encoder contract: Protocols, the run-time check, typed hooks and py.typed."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lam_mteb
from lam_mteb import contract, hookspecs

REPO = Path(__file__).resolve().parent.parent


class Plain:
    def encode(self, texts, **kwargs):
        return np.ones((len(texts), 3), dtype=np.float32)


class OnlyTexts:
    def encode(self, texts):
        return np.ones((len(texts), 3), dtype=np.float32)


class Asymmetric(Plain):
    def encode_queries(self, texts, *, batch_size=32):
        return self.encode(texts)

    def encode_documents(self, texts, **kwargs):
        return self.encode(texts)


class NoEncode:
    def embed(self, texts):
        return texts


class EncodeNotCallable:
    encode = 3


class EncodeNeedsMore:
    def encode(self, texts, model_name, **kwargs):
        return texts


class EncodeTakesNothing:
    def encode(self):
        return None


class BadQueries(Plain):
    encode_queries = "query: "


class QueriesNeedMore(Plain):
    def encode_queries(self, texts, instruction):
        return texts


def test_protocols_are_runtime_checkable():
    assert isinstance(Plain(), lam_mteb.Encoder)
    assert lam_mteb.Encoder is contract.Encoder
    assert not isinstance(NoEncode(), contract.Encoder)
    assert isinstance(Asymmetric(), contract.RetrievalEncoder)
    assert isinstance(Asymmetric(), contract.QueryEncoder)
    assert isinstance(Asymmetric(), contract.DocumentEncoder)
    assert not isinstance(Plain(), contract.QueryEncoder)
    assert not isinstance(Plain(), contract.RetrievalEncoder)


@pytest.mark.parametrize("obj", [Plain(), OnlyTexts(), Asymmetric()])
def test_valid_encoders_have_no_problem(obj):
    assert contract.encoder_problem(obj) is None


@pytest.mark.parametrize(
    "obj, expected",
    [
        (None, "the factory returned None"),
        (Plain, "returned the class Plain, not an instance"),
        (NoEncode(), "NoEncode has no encode(texts) method"),
        (EncodeNotCallable(), "EncodeNotCallable.encode is not callable (type int)"),
        (EncodeNeedsMore(), "EncodeNeedsMore.encode cannot be called as fn(texts)"),
        (EncodeTakesNothing(), "EncodeTakesNothing.encode cannot be called as fn(texts)"),
        (BadQueries(), "BadQueries.encode_queries is not callable (type str)"),
        (QueriesNeedMore(), "QueriesNeedMore.encode_queries cannot be called as fn(texts)"),
    ],
)
def test_problems_are_one_line_naming_the_object(obj, expected):
    problem = contract.encoder_problem(obj)
    assert problem is not None and expected in problem
    assert "\n" not in problem


def test_encoder_with_none_methods_and_builtin_encode():
    class OptionalNone(Plain):
        encode_queries = None

    assert contract.encoder_problem(OptionalNone()) is None

    class NoneEncode:
        encode = None

    assert "NoneEncode has no encode(texts" in (contract.encoder_problem(NoneEncode()) or "")

    class Builtin:
        encode = staticmethod(len)  # a C function: signature may be unknown; accepted

    assert contract.encoder_problem(Builtin()) is None


def test_hookspecs_are_typed_with_the_contract():
    hints = {
        "register_encoders": contract.RegisterEncoder,
        "register_tasks": contract.RegisterTask,
        "register_datasets": contract.RegisterDataset,
        "register_benchmarks": contract.RegisterBenchmark,
        "register_commands": contract.SubParsers,
    }
    import typing

    for name, expected in hints.items():
        fn = getattr(hookspecs, name)
        params = list(inspect.signature(fn).parameters.values())
        assert len(params) == 1
        resolved = typing.get_type_hints(fn, vars(hookspecs))
        assert resolved[params[0].name] is expected, name
        assert resolved["return"] is type(None)


@pytest.mark.slow
def test_package_data_is_in_the_package_and_the_wheel(tmp_path):
    """py.typed and the jinja2 templates ship in the wheel."""
    assert (REPO / "lam_mteb" / "py.typed").is_file()
    out = tmp_path / "wheel"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if res.returncode != 0:
        # building needs hatchling from the package index
        pytest.skip(f"cannot build a wheel here: {res.stderr.strip().splitlines()[-1:]}")
    import zipfile

    (wheel,) = out.glob("lam_mteb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lam_mteb/py.typed" in names
    assert "lam_mteb/contract.py" in names
    assert "lam_mteb/templates/leaderboard.html.j2" in names
    assert "lam_mteb/templates/model_card.md.j2" in names


MYPY_CONFIG = """
[mypy]
ignore_missing_imports = True
follow_imports = skip
[mypy-lam_mteb.*]
follow_imports = silent
"""


@pytest.mark.slow
def test_mypy_checks_a_plugin_against_the_protocol(tmp_path):
    """A plugin annotated with lam_mteb.Encoder gets the contract checked by mypy."""
    pytest.importorskip("mypy")
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    (tmp_path / "good_plugin.py").write_text(
        textwrap.dedent("""
        from collections.abc import Sequence
        from typing import Any

        import lam_mteb


        class Bow:
            def encode(self, texts: Sequence[str], **kwargs: Any) -> list[list[float]]:
                return [[0.0] * 4 for _ in texts]


        def make() -> lam_mteb.Encoder:
            return Bow()


        class Named:  # names the keywords it reads, no **kwargs: the bridge passes only those
            def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> list[list[float]]:
                return [[0.0] * 4 for _ in texts]


        def make_named() -> lam_mteb.Encoder:
            return Named()
    """)
    )
    (tmp_path / "bad_plugin.py").write_text(
        textwrap.dedent("""
        import lam_mteb


        class NoEncode:
            def embed(self, texts: list[str]) -> list[float]:
                return []


        def make() -> lam_mteb.Encoder:
            return NoEncode()
    """)
    )
    env = {**os.environ, "MYPYPATH": str(REPO)}
    cmd = [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "mypy.ini"]
    good = subprocess.run(
        [*cmd, "good_plugin.py"], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run(
        [*cmd, "bad_plugin.py"], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert 'Incompatible return value type (got "NoEncode", expected "Encoder")' in bad.stdout


def test_encode_texts_passes_each_encoder_only_the_keywords_it_names():
    calls = []

    class Bare:  # the smallest encoder: the texts alone
        def encode(self, texts):
            calls.append(("encode", None))
            return np.zeros((len(texts), 2))

    class Named:
        def encode(self, texts, *, batch_size=32):
            calls.append(("encode", {"batch_size": batch_size}))
            return np.zeros((len(texts), 2))

        def encode_queries(self, texts, prompt_type=None, **kwargs):
            calls.append(("encode_queries", {"prompt_type": prompt_type, **kwargs}))
            return np.ones((len(texts), 2))

    keywords = {"batch_size": 8, "show_progress_bar": False}
    out = contract.encode_texts(Bare(), ["a", "b"], prompt_type="document", **keywords)
    assert out.shape == (2, 2) and calls[-1] == ("encode", None)
    contract.encode_texts(Named(), ["a"], prompt_type="document", **keywords)
    assert calls[-1] == ("encode", {"batch_size": 8})
    out = contract.encode_texts(Named(), ["a"], prompt_type="query", **keywords)
    assert out[0, 0] == 1.0
    assert calls[-1] == (
        "encode_queries",
        {"prompt_type": "query", "batch_size": 8, "show_progress_bar": False},
    )
