"""The README's plugin tutorial works when copied, and its commands stay true."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent


def test_tutorial_plugin_runs_when_copied(tmp_path, tiny_sts_data_dir):
    code = re.search(r"Save this as `my_plugins/bow.py`.*?```python\n(.*?)```", README, re.S).group(
        1
    )
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "bow.py").write_text(code)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LAM_MTEB_PLUGINS_DIR": str(folder),
        "LAM_MTEB_DATA_DIR": str(tiny_sts_data_dir),
    }
    res = subprocess.run([str(BIN / "lam-mteb"), "models"], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and re.search(r"^my-bow\s+my-bow\s+bow\s+256", res.stdout, re.M), (
        res.stdout
    )
    res = subprocess.run(
        [
            str(BIN / "mteb"),
            "run",
            "-m",
            "my-bow",
            "-t",
            "STSBenchmark",
            "--output-folder",
            str(tmp_path / "out"),
            "-v",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert list((tmp_path / "out").glob("results/lam-mteb__my-bow/*/STSBenchmark.json"))
    tutorial = re.search(r"export LAM_MTEB_PLUGINS_DIR=.*?```", README, re.S).group(0)
    assert "lam-mteb check my-bow" in tutorial
    assert "lam-mteb card my-bow --results results" in tutorial
    res = subprocess.run(
        [str(BIN / "lam-mteb"), "check", "my-bow", "--no-mteb"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "my-bow: all checks passed" in res.stdout
    card = tmp_path / "my-bow-card.md"
    res = subprocess.run(
        [
            str(BIN / "lam-mteb"),
            "card",
            "my-bow",
            "--results",
            str(tmp_path / "out"),
            "--out",
            str(card),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    from huggingface_hub import ModelCard

    (entry,) = ModelCard.load(card).data.eval_results
    assert entry.dataset_name == "STSBenchmark (default)" and entry.metric_type == "cosine_spearman"


def test_registry_example_in_readme_is_valid(tmp_path):
    from lam_mteb import plugins, registry

    code = re.search(r"Save this as `my_plugins/bow.py`.*?```python\n(.*?)```", README, re.S).group(
        1
    )
    namespace = {}
    exec(compile(code, "bow.py", "exec"), namespace)
    module = type(sys)("readme_bow")
    module.__dict__.update(namespace)
    plugins.host.register_plugin(module, name="readme-bow")
    try:
        yaml_text = re.search(r"## registry.yaml.*?```yaml\n(.*?)```", README, re.S).group(1)
        (tmp_path / "r.yaml").write_text(yaml_text)
        reg = plugins.get_registry()
        registry.load_registry_file(tmp_path / "r.yaml", reg)
        assert reg.model("my-bow-64").create().encode(["a b c"]).shape == (1, 64)
    finally:
        plugins.host.unregister_plugin("readme-bow")


def test_run_your_own_model_yaml_is_a_valid_registry(tmp_path):
    """The section's YAML (the three-line entry, then the wrappers over it) validates as a registry
    file, with the model's true dimension read from a real sentence-transformers folder."""
    from lam_mteb import plugins, registry
    from lam_mteb_plugins.minilm import minilm_path

    section = re.search(r"## Run your own model\n(.*?)\n## ", README, re.S).group(1)
    entry, wrappers = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert entry.count("\n") == 4 and "kind: sentence-transformers" in entry  # models: + 3 lines
    assert "mteb run -m my-model -t STSBenchmark" in section
    assert "kind: chunked" in wrappers and "kind: lexical" in wrappers
    (tmp_path / "my-model").symlink_to(minilm_path(), target_is_directory=True)
    (tmp_path / "my.yaml").write_text(entry + wrappers)
    reg = plugins.get_registry()
    registry.load_registry_file(tmp_path / "my.yaml", reg)
    assert reg.model("my-model").metadata["embed_dim"] == 384
    assert reg.model("my-model").metadata["max_tokens"] == 256
    assert reg.model("my-model-chunk-mean").metadata["embed_dim"] == 384
    assert reg.model("my-model-chunk-mean-lexical").metadata["embed_dim"] == 384 + 16384


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "ci: test command" in ci and "ci: test command" in README
    block = re.search(r"<!-- ci: test command.*?```bash\n(.*?)```", README, re.S).group(1)
    assert "pytest" in block and "torch==2.13.0" in block
    # lint and types run between the install and the tests, in the same venv
    assert 'lint="ruff check . && ruff format --check . && mypy"' in ci
    install, tests = block.strip().rsplit(" && ", 1)
    assert "pip install '.[test]'" in install and "python -m pytest -q" in tests
