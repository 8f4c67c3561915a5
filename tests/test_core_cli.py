"""The lam-mteb CLI and the stock mteb CLI: listings, runs and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lam_mteb
from lam_mteb import cli, plugins

BIN = Path(sys.executable).parent


def run(*cmd, env_extra=None, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [str(BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_models_json_lists_minilm(capsys):
    assert cli.main(["models", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["minilm"]["kind"] == "sentence-transformers" and rows["minilm"]["embed dim"] == 384
    assert rows["minilm"]["mteb name"] == "lam-mteb/minilm" and rows["minilm"]["plugin"] == "minilm"


def test_tasks_lists_offline_datasets(capsys, tmp_path, monkeypatch):
    from tests.conftest import write_raw_stsb

    write_raw_stsb(tmp_path)
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tmp_path))
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("mteb/stsbenchmark-sts"))
    assert "STSBenchmark" in line and "available" in line
    assert "missing" in next(line for line in out.splitlines() if line.startswith("mteb/scifact"))


def test_run_unknown_model_and_task_are_one_line(capsys):
    assert cli.main(["run", "-m", "minlm", "-t", "STSBenchmark"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "unknown model 'minlm'" in err and "did you mean 'minilm'" in err
    )
    assert cli.main(["run", "-m", "minilm", "-t", "STSBenchmrk"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown task 'STSBenchmrk'" in err and "'STSBenchmark'" in err


def test_run_prints_summary_and_writes_results(mock_plugin, tiny_sts_data_dir, tmp_path, capsys):
    out = tmp_path / "res"
    assert (
        cli.main(
            [
                "run",
                "-m",
                "mock-hash",
                "-t",
                "STSBenchmark",
                "--output-folder",
                str(out),
                "--data-dir",
                str(tiny_sts_data_dir),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "lam-mteb/mock-hash" in text and "STSBenchmark" in text and "test" in text
    assert list(out.glob("results/lam-mteb__mock-hash/*/STSBenchmark.json"))


def test_data_import_command(tmp_path, capsys):
    from tests.conftest import write_raw_stsb

    write_raw_stsb(tmp_path / "raw")
    assert (
        cli.main(
            [
                "data",
                "import",
                "mteb/stsbenchmark-sts",
                "--source",
                str(tmp_path / "raw"),
                "--out",
                str(tmp_path / "dd"),
            ]
        )
        == 0
    )
    assert (tmp_path / "dd" / "mteb" / "stsbenchmark-sts" / "README.md").is_file()
    assert (
        cli.main(
            [
                "data",
                "import",
                "mteb/stsbenchmark-sts",
                "--source",
                str(tmp_path / "raw"),
                "--out",
                str(tmp_path / "dd"),
            ]
        )
        == 1
    )
    assert "refusing to overwrite" in capsys.readouterr().err


class CommandPlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_commands(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("--name", default="world")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)


def test_plugin_commands_are_added(capsys):
    plugins.host.register_plugin(CommandPlugin, name="cmd-plugin")
    try:
        assert cli.main(["hello", "--name", "lam"]) == 0
        assert capsys.readouterr().out.strip() == "hello lam"
    finally:
        plugins.host.unregister_plugin("cmd-plugin")


def test_stock_mteb_cli_one_line_errors():
    res = run(
        "mteb",
        "run",
        "-m",
        "minlm",
        "-t",
        "STSBenchmark",
        "--output-folder",
        "/tmp/lam-mteb-unused",
        "-v",
        "0",
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "did you mean 'minilm'" in err[0]
    res = run("mteb", "run", "-m", "minilm", "-t", "STSBenchmrk", "-v", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "'STSBenchmrk' not found. Did you mean: 'STSBenchmark'?" in res.stderr


def test_malformed_registry_is_one_line_nonzero(tmp_path):
    bad = tmp_path / "registry.yaml"
    bad.write_text("models:\n  - name: x\n    kind: nope\n")
    res = run("lam-mteb", "models", env_extra={"LAM_MTEB_REGISTRY": str(bad)})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{bad}:2: model 'x' has unknown encoder kind 'nope'" in res.stderr
    # the registry is built once (not again by the bridge inside the build): the problem is
    # printed once, then one summary line
    assert res.stderr.count("unknown encoder kind 'nope'") == 1, res.stderr
    assert [line for line in res.stderr.splitlines() if line.startswith("error:")] == [
        "error: 1 problem in plugins or registry files, reported above; fix and run again"
    ]


def test_stock_mteb_sees_models_and_python_m(tmp_path):
    code = "import mteb; m = mteb.get_model_meta('minilm'); print(m.name, m.embed_dim)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip() == "lam-mteb/minilm 384", res.stderr
    # a plugin task: only there if the start-up hook ran although runpy looks mteb up twice
    res = subprocess.run(
        [sys.executable, "-m", "mteb", "available-tasks", "--tasks", "LVMNextVector"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and "LVMNextVector" in res.stdout, res.stderr


@pytest.mark.parametrize("env", [{"LAM_MTEB_DISABLE_BRIDGE": "1"}])
def test_bridge_can_be_disabled(env):
    code = (
        "import mteb; from lam_mteb.mteb_compat import model_names; "
        "print('minilm' in model_names())"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}
    )
    assert res.stdout.strip() == "False"


def test_bridge_survives_a_find_spec_before_the_import():
    # `python -m mteb` (runpy) looks mteb up once without importing it, then imports it
    code = (
        "import importlib.util; importlib.util.find_spec('mteb'); import mteb; "
        "from lam_mteb.mteb_compat import model_names; "
        "print('lam-mteb/minilm' in model_names())"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip() == "True", res.stderr
