"""Issue 15, cases 3, 4 and 6: hostile registry/plugin input is contained (see
docs/reliability.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from lam_mteb import plugins, registry
from lam_mteb.errors import LamMtebError
from lam_mteb.inputs import load_json, load_yaml

# the 592-byte "billion laughs": 9 levels of 9 aliases = 9**9 strings once expanded
ALIAS_BOMB = textwrap.dedent("""\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    models: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """)


def _bounded(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(LamMtebError) as err:
            fn()
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return err.value, elapsed, peak


@pytest.mark.parametrize("kind", ["registry", "references"])
def test_alias_bomb_refused_fast_and_small(tmp_path, kind):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) <= 600
    from lam_mteb.leaderboard import references

    def load():
        if kind == "registry":
            return registry.load_registry_file(path, registry.Registry())
        return references.load(path, ())  # the file is refused before any benchmark is looked at

    exc, elapsed, peak = _bounded(load)
    assert elapsed < 2.0 and peak < 100e6, (elapsed, peak)
    assert str(path) in str(exc) and "aliases" in str(exc) and "\n" not in str(exc)


def test_alias_bomb_in_import_mteb_is_one_line(tmp_path):
    """The bomb as LAM_MTEB_REGISTRY: `import mteb` survives, the file is named in one line."""
    path = tmp_path / "registry.yaml"
    path.write_text(ALIAS_BOMB)
    env = {**os.environ, "LAM_MTEB_REGISTRY": str(path), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    res = subprocess.run(
        check=False,
        args=[
            sys.executable,
            "-c",
            (
                "import mteb; from lam_mteb.plugins import get_registry; "
                "print('models', len(get_registry().models))"
            ),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert any(str(path) in line and "aliases" in line for line in res.stderr.splitlines())
    assert "models" in res.stdout
    assert time.perf_counter() - t0 < 120


def test_deep_nesting_and_size_refused(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("models: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(LamMtebError, match="nested"):
        load_yaml(deep)
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: a "50 MB registry"
    t0 = time.perf_counter()
    with pytest.raises(LamMtebError, match="over the 1 MB limit"):
        registry.load_registry_file(big, registry.Registry())
    assert time.perf_counter() - t0 < 2
    deep_json = tmp_path / "deep.json"
    deep_json.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested"):
        load_json(deep_json)


@pytest.mark.parametrize(
    "entry, words",
    [
        ('- name: "evil\\n"\n    kind: mock-hash', ["not a valid name", "name"]),
        (
            "- name: ok\n    kind: mock-hash\n    revision: ../../x",
            ["not a valid name", "revision"],
        ),
        ("- name: ok\n    kind: mock-hash\n    revision: a/b", ["not a valid name", "revision"]),
        ("- name: ok\n    kind: mock-hash\n    revision: ..", ["not a valid name", "revision"]),
        ('- name: ok\n    kind: mock-hash\n    org: "x\\n"', ["not a valid name", "org"]),
    ],
)
def test_names_and_revisions_validated(tmp_path, mock_plugin, entry, words):
    path = tmp_path / "registry.yaml"
    path.write_text("models:\n  " + entry + "\n")
    with pytest.raises(LamMtebError) as err:
        registry.load_registry_file(path, plugins.get_registry())
    assert str(err.value).startswith(f"{path}:") and "\n" not in str(err.value)
    assert all(w in str(err.value) for w in words), str(err.value)


class _EvilRevision:
    @staticmethod
    @__import__("lam_mteb").hookimpl
    def register_encoders(register):
        from tests.conftest import HashEncoder

        register("evil-rev", HashEncoder, revision="../../outside")


def test_plugin_revision_validated():
    plugins.host.register_plugin(_EvilRevision, "evil")
    try:
        cfg = plugins.get_registry().model("evil-rev")
        with pytest.raises(LamMtebError, match="revision '../../outside' is not a valid name"):
            _ = cfg.revision
    finally:
        plugins.host.unregister_plugin("evil")


def test_registry_override_is_explicit(tmp_path, mock_plugin):
    path = tmp_path / "registry.yaml"
    path.write_text("models:\n  - name: mock-hash\n    kind: mock-hash\n    params: {dim: 32}\n")
    with pytest.raises(
        LamMtebError, match=r"registry.yaml:2: duplicate model name 'mock-hash'.*override: true"
    ):
        registry.load_registry_file(path, plugins.get_registry())
    path.write_text(
        "models:\n  - name: mock-hash\n    kind: mock-hash\n    params: {dim: 32}\n    override: "
        "true\n"
    )
    reg = plugins.get_registry()
    registry.load_registry_file(path, reg)
    assert (
        reg.models["mock-hash"].params == {"dim": 32}
        and str(path) in reg.models["mock-hash"].source
    )


HOSTILE_PLUGINS = {
    # takes first-party names: minilm (plugin minilm) and amn (plugin lvm)
    "usurper.py": """
        import lam_mteb

        class Enc:
            def encode(self, texts, **kw):
                raise AssertionError("never used")

        @lam_mteb.hookimpl
        def register_encoders(register):
            register("minilm", Enc)
            register("amn", Enc)
            register("usurper-own", Enc)
    """,
    "exits.py": """
        import sys
        sys.exit(3)
    """,
    "interrupts.py": """
        import lam_mteb

        @lam_mteb.hookimpl
        def register_encoders(register):
            raise KeyboardInterrupt
    """,
    "bow.py": """
        import lam_mteb

        class Bow:
            def encode(self, texts, **kw):
                raise AssertionError("never used")

        @lam_mteb.hookimpl
        def register_encoders(register):
            register("my-bow", Bow)
    """,
}


@pytest.fixture
def hostile_dir(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, text in HOSTILE_PLUGINS.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_folder_plugins_cannot_take_names_or_kill_the_cli(hostile_dir):
    env = {**os.environ, "LAM_MTEB_PLUGINS_DIR": str(hostile_dir), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        check=False,
        args=[_bin("lam-mteb"), "models", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    import json

    models = {m["name"]: m for m in json.loads(res.stdout)}
    # the owners keep their names and *all* their other registrations
    assert models["minilm"]["plugin"] == "minilm"
    assert models["amn"]["plugin"] == "lvm" and "lvm-t" in models
    assert models["usurper-own"]["plugin"] == "usurper" and "my-bow" in models
    err = [line for line in res.stderr.splitlines() if line.startswith("lam-mteb:")]
    assert any(
        "'usurper'" in line
        and "'minilm'" in line
        and "already owns" in line
        and "usurper.py" in line
        for line in err
    ), err
    assert any("exits.py failed to import: SystemExit: 3" in line for line in err), err
    assert any(
        "'interrupts' failed in register_encoders: KeyboardInterrupt" in line for line in err
    ), err
    # stock `import mteb` survives too, and sees the owners' models
    res = subprocess.run(
        check=False,
        args=[
            sys.executable,
            "-c",
            (
                "import mteb; from lam_mteb.mteb_compat import model_names; "
                "print(mteb.get_model_meta('minilm').loader.__module__, "
                "'lam-mteb/lvm-t' in model_names())"
            ),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "True" in res.stdout


def test_folder_plugin_revision_follows_its_file(hostile_dir):
    (hostile_dir / "exits.py").unlink()
    plugins.host.load_folder(hostile_dir)
    try:
        plugins.host.invalidate()
        before = plugins.get_registry().model("my-bow").revision
        path = hostile_dir / "bow.py"
        path.write_text(path.read_text().replace("never used", "fixed"))
        plugins.host.invalidate()
        after = plugins.get_registry().model("my-bow").revision
        assert before != after
    finally:
        for name in ("usurper", "interrupts", "bow"):
            plugins.host.unregister_plugin(name)


class _WeightsPlugin:
    @staticmethod
    @__import__("lam_mteb").hookimpl
    def register_encoders(register):
        from tests.conftest import HashEncoder

        def make(weights: str | None = None):
            return HashEncoder()

        register("weights-enc", make)


def test_model_revision_follows_weight_bytes(tmp_path):
    """A checkpoint replaced by other bytes of the same size and mtime (`cp -p`) is a new revision,
    so a cached result of the old weights is not reused."""
    weights = tmp_path / "ckpt" / "model.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"\x00" * 64)
    reg_file = tmp_path / "registry.yaml"
    reg_file.write_text(
        "models:\n  - name: mine\n    kind: weights-enc\n    params: {weights: ./ckpt}\n"
    )
    plugins.host.register_plugin(_WeightsPlugin, "weights-plugin")
    try:
        reg = plugins.get_registry()
        registry.load_registry_file(reg_file, reg)
        before = reg.model("mine").revision
        st = weights.stat()
        weights.write_bytes(b"\x01" * 64)
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert reg.model("mine").revision != before
    finally:
        plugins.host.unregister_plugin("weights-plugin")


def test_stock_mteb_run_refuses_a_file_as_output_folder(tmp_path):
    target = tmp_path / "results"
    target.write_text("keep me")
    res = subprocess.run(
        check=False,
        args=[
            _bin("mteb"),
            "run",
            "-m",
            "minilm",
            "-t",
            "STSBenchmark",
            "--output-folder",
            str(target),
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--output-folder" in lines[0] and "not a folder" in lines[0], (
        res.stderr
    )
    assert target.read_text() == "keep me"
