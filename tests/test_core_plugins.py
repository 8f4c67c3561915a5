"""Plugin loading: entry points, a plugin folder, broken plugins, hook documentation."""

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lam_mteb import hookspecs, plugins

REPO = Path(__file__).resolve().parent.parent


def run(cmd, env_extra=None, cwd=None, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def bin_(name):
    return str(Path(sys.executable).with_name(name))


def test_every_hook_is_documented_and_tested():
    tests_text = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    hooks = [
        n
        for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "lam_mteb_spec")
    ]
    assert set(hooks) == {
        "register_encoders",
        "register_tasks",
        "register_datasets",
        "register_commands",
        "register_benchmarks",
    }
    for name in hooks:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc) > 40, f"hook {name} lacks documentation"
        assert f"def {name}(" in tests_text.replace("    def", "def"), (
            f"hook {name} has no test implementing it"
        )


def test_first_party_plugins_load_through_entry_points():
    infos = {p.name: p for p in plugins.host.infos()}
    assert infos["minilm"].source == "entry point lam-mteb"
    assert "register_encoders" in infos["minilm"].hooks


def test_plugin_folder_and_broken_plugins(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "good.py").write_text(
        textwrap.dedent("""
        import numpy as np, lam_mteb
        class Ones:
            def encode(self, texts, **kw):
                return np.ones((len(texts), 4), dtype=np.float32)
        @lam_mteb.hookimpl
        def register_encoders(register):
            register("folder-ones", Ones, embed_dim=4)
    """)
    )
    (folder / "broken_import.py").write_text("import no_such_module_xyz\n")
    (folder / "broken_hook.py").write_text(
        textwrap.dedent("""
        import lam_mteb
        @lam_mteb.hookimpl
        def register_encoders(register):
            register("half", object)
            raise RuntimeError("boom")
    """)
    )
    res = run([bin_("lam-mteb"), "models"], {"LAM_MTEB_PLUGINS_DIR": str(folder)})
    assert res.returncode == 0, res.stderr
    assert "folder-ones" in res.stdout and "minilm" in res.stdout
    assert "half" not in res.stdout  # a plugin whose hook failed contributes nothing
    err_lines = [line for line in res.stderr.splitlines() if line.startswith("lam-mteb:")]
    assert any(
        "broken_import.py failed to import: ModuleNotFoundError" in line for line in err_lines
    )
    assert any(
        "'broken_hook' failed in register_encoders: RuntimeError: boom" in line
        for line in err_lines
    )
    assert "Traceback" not in res.stderr
    res = run([bin_("lam-mteb"), "plugins"], {"LAM_MTEB_PLUGINS_DIR": str(folder)})
    assert "good" in res.stdout and "ModuleNotFoundError" in res.stdout


def test_register_plugin_in_process(mock_plugin):
    assert "mock-hash" in plugins.get_registry().models
    assert any(p.name == "mock-plugin" and p.source == "registered" for p in plugins.host.infos())


THIRD_PARTY = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "throwaway-encoder"
        version = "0.0.1"
        [project.entry-points.lam_mteb]
        throwaway = "throwaway_encoder.plugin"
        [tool.setuptools]
        packages = ["throwaway_encoder"]
    """,
    "throwaway_encoder/__init__.py": "",
    "throwaway_encoder/plugin.py": """
        import zlib
        import numpy as np
        import lam_mteb

        class BagOfWords:
            def __init__(self, dim: int = 32):
                self.dim = dim
            def encode(self, texts, **kwargs):
                out = np.full((len(texts), self.dim), 1e-3, dtype=np.float32)
                for i, t in enumerate(texts):
                    for w in t.lower().split():
                        out[i, zlib.crc32(w.encode()) % self.dim] += 1
                return out / np.linalg.norm(out, axis=1, keepdims=True)

        @lam_mteb.hookimpl
        def register_encoders(register):
            register("throwaway-bow", BagOfWords, embed_dim=32)
    """,
}


@pytest.mark.slow
def test_third_party_package_is_listed_and_runs_with_stock_mteb(tmp_path, tiny_sts_data_dir):
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
    env = {"PYTHONPATH": str(target), "LAM_MTEB_DATA_DIR": str(tiny_sts_data_dir)}
    res = run([bin_("lam-mteb"), "models"], env)
    assert res.returncode == 0, res.stderr
    line = next(line for line in res.stdout.splitlines() if line.startswith("throwaway-bow"))
    assert "throwaway" in line and "32" in line
    out = tmp_path / "out"
    res = run(
        [
            bin_("mteb"),
            "run",
            "-m",
            "throwaway-bow",
            "-t",
            "STSBenchmark",
            "--output-folder",
            str(out),
        ],
        env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    files = list(out.glob("results/lam-mteb__throwaway-bow/*/STSBenchmark.json"))
    assert len(files) == 1


def test_registry_does_not_import_the_plugin_host():
    """plugins.py (the host) builds the registry; registry.py knows nothing of the host."""
    code = "import sys, lam_mteb.registry; print('lam_mteb.plugins' in sys.modules)"
    res = run([sys.executable, "-c", code])
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr


def test_call_hook_isolates_a_failing_plugin_and_names_it(capsys):
    class Good:
        @staticmethod
        @__import__("lam_mteb").hookimpl
        def register_commands(subparsers):
            subparsers.append("good")

    class Bad:
        @staticmethod
        @__import__("lam_mteb").hookimpl
        def register_commands(subparsers):
            raise RuntimeError("broken on purpose")

    plugins.host.register_plugin(Bad, name="bad-cmds")
    plugins.host.register_plugin(Good, name="good-cmds")
    try:
        got: list = []
        done = [name for name, _ in plugins.host.call_hook("register_commands", lambda _: got)]
    finally:
        plugins.host.unregister_plugin("bad-cmds")
        plugins.host.unregister_plugin("good-cmds")
    assert "good-cmds" in done and "bad-cmds" not in done and got.count("good") == 1
    err = capsys.readouterr().err
    assert "plugin 'bad-cmds' failed in register_commands: RuntimeError: broken on purpose" in err
