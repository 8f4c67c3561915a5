"""Plugin loading: entry points, a plugin folder, broken plugins, hook documentation."""

import ast
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lam_mteb
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


def _module_imports(path: Path, package: str) -> set[str]:
    """lam_mteb modules a file imports at module level (its top level and ``if`` blocks other than
    ``if TYPE_CHECKING:``); imports inside functions run later, on use, and do not count."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                if node.level:  # relative: resolve against the file's package
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody)

    visit(tree.body)
    return found


def test_no_import_cycle_inside_lam_mteb():
    """The rule: no cycle among lam_mteb's module-level imports (``import x`` also runs the
    ``__init__`` of every package above x).  Function-level imports are allowed to point back
    (e.g. the host makes its bridge on first use), type-only imports do not count."""
    root = Path(lam_mteb.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        modules[name] = (path, package)
    graph: dict[str, set[str]] = {}
    for name, (path, package) in modules.items():
        deps = set()
        for target in _module_imports(path, package):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            pieces = target.split(".")
            for i in range(2, len(pieces) + 1):  # the packages above it run first
                deps.add(".".join(pieces[:i]))
        deps.discard(name)
        graph[name] = {d for d in deps if d in modules and d != "lam_mteb"}
    # depth-first search for a cycle
    state: dict[str, int] = {}
    stack: list[str] = []

    def cycle_from(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state:
                found = cycle_from(dep)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = cycle_from(node)
            assert found is None, "import cycle: " + " -> ".join(found)
    assert "lam_mteb.data" not in graph["lam_mteb.registry"]  # the circle of issue 25, cut
    assert "lam_mteb.plugins" not in graph["lam_mteb.leaderboard.spec"]


def test_no_global_statement_nor_module_level_mutable_state():
    """No ``global`` in lam_mteb, and one module-level stateful object: ``plugins.host`` (names
    in capitals and dunders are constants: ``__all__``, ``_LAZY``, ``SUPPORTED_MTEB``...)."""
    root = Path(lam_mteb.__file__).parent
    problems = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                problems.append(f"{path.name}:{node.lineno}: global {', '.join(node.names)}")
        for node in tree.body:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if not names or all(n.isupper() or n.startswith("__") for n in names):
                continue
            value = node.value
            mutable = isinstance(value, (ast.List, ast.Dict, ast.Set)) or (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id in ("list", "dict", "set", "defaultdict", "PluginHost")
            )
            if mutable:
                problems.append(f"{path.name}: {ast.unparse(node)[:60]}")
    assert problems == ["plugins.py: host = PluginHost()"], problems


def test_hooks_run_through_pluggy_wrappers_and_tryfirst(capsys):
    """Each plugin's hook is called through pluggy: a wrapper wraps every plugin's call (and sees
    its failure), ``tryfirst`` goes first whatever the registration order, and a failing plugin
    is still only that plugin's failure."""
    seen: list[str] = []

    class Wrapper:
        @staticmethod
        @lam_mteb.hookimpl(wrapper=True)
        def register_commands(subparsers):
            seen.append("before")
            try:
                return (yield)
            finally:
                seen.append("after")

    class Late:
        @staticmethod
        @lam_mteb.hookimpl
        def register_commands(subparsers):
            subparsers.append("late")

    class Early:
        @staticmethod
        @lam_mteb.hookimpl(tryfirst=True)
        def register_commands(subparsers):
            subparsers.append("early")

    class Broken:
        @staticmethod
        @lam_mteb.hookimpl(trylast=True)
        def register_commands(subparsers):
            raise SystemExit(3)

    names = ["wrapper-cmds", "late-cmds", "early-cmds", "broken-cmds"]
    for plugin, name in zip((Wrapper, Late, Early, Broken), names, strict=True):
        plugins.host.register_plugin(plugin, name=name)
    try:
        impls = plugins.host.pm.hook.register_commands.get_hookimpls()
        n_callees = len([i for i in impls if not (i.wrapper or i.hookwrapper)])
        got: list = []  # not argparse sub-parsers: the other plugins fail on it, reported
        done = [n for n, _ in plugins.host.call_hook("register_commands", lambda _: got)]
    finally:
        for name in names:
            plugins.host.unregister_plugin(name)
    assert got == ["early", "late"]
    assert done[0] == "early-cmds" and "late-cmds" in done and "broken-cmds" not in done
    assert seen == ["before", "after"] * n_callees  # around every plugin's call, failing ones too
    err = capsys.readouterr().err
    assert "plugin 'broken-cmds' failed in register_commands: SystemExit: 3" in err


#: the functions that may fetch the process's plugin host (``lam_mteb.plugins.host``): entry
#: points of a process or of the stock mteb CLI; everything else is handed the host or registry
HOST_ENTRY_POINTS = {
    "_startup._after_mteb",  # the .pth start-up hook, right after `import mteb`
    "_startup._after_mteb_cli",
    "cli.main",  # lam-mteb
    "leaderboard.main",  # python -m lam_mteb.leaderboard
    "bridge._process_bridge",  # an unpickled mteb loader
    "encode._EncodeActor.__init__",  # a Ray worker
    "runner.run_grid",  # the grid's driver
    "runner._evaluate_job",  # a grid job (in process, pool or Ray worker)
    "runner.run_in_process",
}


def test_only_entry_points_fetch_the_process_plugin_host():
    root = Path(lam_mteb.__file__).parent
    fetching = set()
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")

        def visit(node: ast.AST, where: list[str], module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    visit(child, [*where, child.name])
                    continue
                names = []
                if isinstance(child, ast.ImportFrom) and child.module == "lam_mteb.plugins":
                    names = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom) and child.module == "lam_mteb":
                    names = ["host" for a in child.names if a.name == "plugins"]
                if where and ("host" in names or "get_registry" in names):
                    fetching.add(".".join([module, *where]))
                visit(child, where)

        visit(ast.parse(path.read_text(encoding="utf-8")), [])
    assert fetching <= HOST_ENTRY_POINTS, sorted(fetching - HOST_ENTRY_POINTS)
    assert {"cli.main", "_startup._after_mteb"} <= fetching
