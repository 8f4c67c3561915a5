"""The LAM plugin's hooks, registry entries, shipped weights and the `lam-mteb distill` command."""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import lam_mteb
import lam_mteb_plugins.lam as lam_plugin
from lam_mteb_plugins.lam.common.model import LamModel
from lam_mteb_plugins.lam.v1 import encoder as enc_mod
from lam_mteb_plugins.lam.v1.model import load_checkpoint

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent


def test_register_encoders_hook():
    calls = []
    lam_plugin.register_encoders(lambda *a, **kw: calls.append((a, kw)))
    assert [c[0][0] for c in calls] == ["lam", "lam2"]
    (name, factory), meta = calls[0]
    assert name == "lam" and factory is enc_mod.LamEncoder
    assert meta["params"] == enc_mod.DEFAULTS == lam_plugin.PARAMS
    defaults = {k: p.default for k, p in inspect.signature(factory).parameters.items()}
    assert {k: defaults[k] for k in lam_plugin.PARAMS} == lam_plugin.PARAMS and "device" in defaults
    assert meta["embed_dim"] == 384 and callable(meta["revision"])
    assert meta["revision"](dict(lam_plugin.PARAMS)) != meta["revision"](
        {**lam_plugin.PARAMS, "pooling": "state"}
    )
    assert sum(p.numel() for p in LamModel().parameters()) == lam_plugin.N_PARAMETERS


def test_registry_yaml_keeps_the_v1_checkpoint_as_lam_v1():
    models = {m["name"]: m for m in yaml.safe_load((REPO / "registry.yaml").read_text())["models"]}
    for pooling in ("mean", "state", "hybrid"):
        entry = models[f"lam-v1-{pooling}"]
        assert entry["kind"] == "lam" and entry["params"]["pooling"] == pooling
        assert entry["params"].get("weights") is None  # the shipped v1 checkpoint (v1/weights)


def test_shipped_default_checkpoint_is_small_and_loads():
    folder = enc_mod.DEFAULT_WEIGHTS
    if not (folder / "model.safetensors").is_file():
        pytest.skip("no shipped checkpoint in this checkout")
    size = (folder / "model.safetensors").stat().st_size
    assert size < 10 * 2**20
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "command" in cfg["training"]  # provenance: how it was made
    enc = enc_mod.LamEncoder(pooling="mean", device="cpu")
    e = enc.encode(
        [
            "A man is playing a guitar.",
            "Someone plays the guitar.",
            "The stock market fell sharply on Monday.",
        ]
    )
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2  # paraphrase closer than an unrelated sentence


def _write_fixture_data(root: Path) -> Path:
    sts = root / "stsbenchmark"
    sts.mkdir(parents=True)
    pairs = [
        ("A man plays guitar.", "A man is playing a guitar.", 4.8),
        ("A dog runs.", "A cat sleeps.", 0.6),
        ("Kids play in snow.", "Children play in the snow.", 4.6),
        ("The market fell.", "Stocks dropped sharply.", 3.9),
        ("A woman cooks.", "A plane lands.", 0.1),
        ("He reads a book.", "A man is reading.", 3.5),
    ]
    (sts / "sts-train.csv").write_text(
        "".join(f"main\tf\t2012\t{i:04d}\t{s}\t{a}\t{b}\n" for i, (a, b, s) in enumerate(pairs))
    )
    long = root / "longtext"
    long.mkdir()
    (long / "essay.txt").write_text("Rivers carry water from mountains to the sea. " * 80)
    return root


def _distill_args(argv):
    parser = argparse.ArgumentParser(prog="lam-mteb")
    subparsers = parser.add_subparsers()
    lam_plugin.register_commands(subparsers)
    return parser.parse_args(argv)


def test_distill_command_writes_a_loadable_checkpoint_and_resumes(tmp_path, capsys):
    data = _write_fixture_data(tmp_path / "data")
    out = tmp_path / "ckpt"
    argv = [
        "distill",
        "-o",
        str(out),
        "--data-dir",
        str(data),
        "--n-sts",
        "6",
        "--n-long",
        "2",
        "--layerwise-epochs",
        "1",
        "--e2e-epochs",
        "1",
        "--batch-tokens",
        "256",
        "--cos-weight",
        "1",
        "--state-weight",
        "1",
        "--sts-weight",
        "0.1",
        "--threads",
        "1",
    ]
    args = _distill_args(argv + ["--max-minutes", "1e-9"])  # stops after the first step
    assert args.func(args) == 0
    state = torch.load(out / "trainer_state.pt", weights_only=True)
    assert state["step"] > 0
    assert "--resume" in capsys.readouterr().err
    args = _distill_args(argv + ["--resume"])
    assert args.func(args) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (
        cfg["training"]["finished"]
        and cfg["training"]["steps_done"] == cfg["training"]["steps_planned"]
    )
    model = load_checkpoint(out)
    init = LamModel.from_base()
    moved = (
        (model.layers[5].attention.q_proj.weight - init.layers[5].attention.q_proj.weight)
        .abs()
        .max()
    )
    assert moved > 0  # the blocks were trained
    for (n, p), (_, p0) in zip(model.named_parameters(), init.named_parameters(), strict=False):
        if ".attention." not in n:
            assert torch.equal(p, p0), n  # frozen parts untouched
    e = enc_mod.LamEncoder(weights=str(out), device="cpu").encode(["hello", ""])
    assert np.isfinite(e).all()
    # a resumed run must use the same settings
    args = _distill_args(argv + ["--resume", "--lr", "0.5"])
    with pytest.raises(lam_mteb.LamMtebError, match="settings differ"):
        args.func(args)


def test_distill_without_data_is_a_clear_error(tmp_path):
    args = _distill_args(["distill", "-o", str(tmp_path / "x"), "--data-dir", str(tmp_path)])
    with pytest.raises(lam_mteb.LamMtebError, match="looked for"):
        args.func(args)
