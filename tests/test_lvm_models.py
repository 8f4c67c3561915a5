"""LVM-T / AMN: residual-over-average start, checkpoints, training that learns a dynamic, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lam_mteb
from lam_mteb_plugins.lvm import data as D
from lam_mteb_plugins.lvm import metrics as M
from lam_mteb_plugins.lvm.models import TorchPredictor, build, load_checkpoint, save_checkpoint
from lam_mteb_plugins.lvm.testing import drifting_sequences
from lam_mteb_plugins.lvm.train import train_model

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", ["lvm-t", "amn"])
def test_untrained_model_is_the_linear_average(arch):
    model = build(arch, dim=16, context=5)
    ctx = M.normalize(np.random.default_rng(0).standard_normal((7, 5, 16)))
    pred = TorchPredictor(model)(ctx)
    np.testing.assert_allclose(pred, M.normalize(M.linear_average(ctx)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pred, axis=1), 1.0, atol=1e-5)
    # shorter contexts work too (the retriever pads, but the modules accept k' <= k)
    assert TorchPredictor(model)(ctx[:, -2:]).shape == (7, 16)


@pytest.mark.parametrize("arch", ["lvm-t", "amn", "lvm-r"])
def test_checkpoint_roundtrip(arch, tmp_path):
    model = build(arch, dim=16, context=5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(model, tmp_path, {"arch": arch, "model": {"dim": 16, "context": 5}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded, cfg = load_checkpoint(tmp_path)
    ctx = np.random.default_rng(1).standard_normal((3, 5, 16)).astype(np.float32)
    np.testing.assert_allclose(
        TorchPredictor(loaded)(ctx), TorchPredictor(model.eval())(ctx), atol=1e-6
    )
    with pytest.raises(lam_mteb.LamMtebError, match="no LVM checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def _split(vecs, docs, context=5):
    chunks = [D.Chunk(f"{d}@{i}", str(d), i, "") for i, d in enumerate(docs)]
    n_train = int(len(chunks) * 0.75)
    cut = next(i for i in range(n_train, len(chunks)) if docs[i] != docs[i - 1])
    return (vecs[:cut], D.make_sequences(chunks[:cut], context)), (
        vecs[cut:],
        D.make_sequences(chunks[cut:], context),
    )


HP = {
    "model": {},
    "epochs": 6,
    "batch_size": 64,
    "lr": 3e-3,
    "weight_decay": 0.0,
    "w_cos": 1.0,
    "w_mse": 0.0,
    "w_nce": 0.1,
    "tau": 0.1,
    "seed": 0,
    "select": "legacy",
}


@pytest.mark.parametrize(
    "arch,model_cfg",
    [
        ("amn", {"hidden": 64, "attn_dim": 16}),
        ("lvm-t", {"d_model": 32, "n_layers": 1, "n_heads": 2}),
    ],
)
def test_training_beats_the_linear_average_on_a_learnable_dynamic(arch, model_cfg):
    vecs, docs = drifting_sequences(n_docs=50, length=16, dim=16)
    (tv, ts), (dv, ds) = _split(vecs, docs)
    hp = {**HP, "arch": arch, "model": model_cfg}
    model, history, best = train_model(hp, tv, ts, dv, ds, progress=False, log=lambda *_: None)
    assert history[0]["epoch"] == 0  # the untrained (= linear average) model is scored first
    assert best["epoch"] > 0
    assert best["dev_cosine_mean"] > history[0]["dev_cosine_mean"] + 0.05


def test_training_resumes_after_an_interruption(tmp_path):
    vecs, docs = drifting_sequences(n_docs=30, length=14, dim=8, seed=2)
    (tv, ts), (dv, ds) = _split(vecs, docs)
    hp = {**HP, "arch": "amn", "model": {"hidden": 16, "attn_dim": 8}, "epochs": 3}

    def crash_after_first_epoch(msg):
        if "epoch 1:" in msg:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(hp, tv, ts, dv, ds, tmp_path, progress=False, log=crash_after_first_epoch)
    state = json.loads((tmp_path / ".train_state" / "trainer_state.json").read_text())
    assert state["epoch"] == 1
    seen = []
    _, history, _ = train_model(hp, tv, ts, dv, ds, tmp_path, progress=False, log=seen.append)
    assert any("resuming amn from epoch 2" in m for m in seen)
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert not any("epoch 1:" in m for m in seen)  # epoch 1 was not trained again


# ------------------------------------------------------------- LVM-R (persistence + correction)


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"hidden": 0},
        {"content_mix": False},
        {"global_bias": False},
        {"features": "all"},
        {"features": "all", "hidden": 0},
    ],
)
def test_untrained_lvm_r_is_persistence(cfg):
    model = build("lvm-r", dim=16, context=5, **cfg)
    ctx = M.normalize(np.random.default_rng(0).standard_normal((7, 5, 16)))
    pred = TorchPredictor(model)(ctx)
    assert pred.shape == (7, 16)
    np.testing.assert_allclose(pred, M.normalize(M.persistence(ctx)), atol=1e-6)
    if cfg.get("features") != "all":  # "all" reads exactly `context` vectors
        assert TorchPredictor(model)(ctx[:, -2:]).shape == (7, 16)  # shorter contexts work too


def test_lvm_r_unknown_features_is_one_clear_error():
    with pytest.raises(lam_mteb.LamMtebError, match="features"):
        build("lvm-r", dim=16, context=5, features="everything")


def test_lvm_r_mixing_coefficients_reach_the_linear_average():
    """The gate parametrisation covers the other baseline: a = (1/k, ..., 1/k - 1) gives the
    average."""
    model = build("lvm-r", dim=16, context=5, hidden=0, content_mix=False, global_bias=False)
    with torch.no_grad():
        model.pos.copy_(torch.tensor([0.2, 0.2, 0.2, 0.2, -0.8]))
    ctx = M.normalize(np.random.default_rng(3).standard_normal((4, 5, 16)))
    np.testing.assert_allclose(
        TorchPredictor(model)(ctx), M.normalize(M.linear_average(ctx)), atol=1e-5
    )
    a, r = model.coefficients(torch.as_tensor(ctx))
    assert a.shape == (4, 5) and r is None


def test_lvm_r_gradients_flow_from_the_zero_start():
    """Zero-initialised output layers must still receive gradient (else training never leaves
    persistence)."""
    model = build("lvm-r", dim=16, context=5, hidden=8)
    ctx = torch.as_tensor(M.normalize(np.random.default_rng(4).standard_normal((6, 5, 16))))
    y = torch.as_tensor(M.normalize(np.random.default_rng(5).standard_normal((6, 16))))
    (1 - (model(ctx) * y).sum(-1)).mean().backward()
    for name in ("pos", "bias", "res.weight", "mix.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_margin_selection_requires_beating_every_baseline_on_every_metric():
    from lam_mteb_plugins.lvm.train import margin_key

    base = {
        "persistence": {"cosine_mean": 0.45, "recall_at_1": 0.15, "recall_at_5": 0.34},
        "linear_average": {"cosine_mean": 0.52, "recall_at_1": 0.08, "recall_at_5": 0.24},
    }
    wins = {"dev_cosine_mean": 0.53, "dev_recall_at_1": 0.16, "dev_recall_at_5": 0.35}
    assert margin_key(wins, base)[0] == 1
    for metric in wins:  # losing to the best baseline on any one metric disqualifies
        assert margin_key({**wins, metric: 0.1}, base)[0] == 0
    assert margin_key(wins, base) > margin_key({**wins, "dev_recall_at_1": 0.151}, base)


@pytest.mark.parametrize("losses", [{"w_doc": 0.0}, {"w_doc": 0.5}, {"w_near": 0.5, "near": 2}])
def test_lvm_r_training_beats_persistence_and_average_on_a_learnable_dynamic(losses):
    vecs, docs = drifting_sequences(n_docs=50, length=16, dim=16)
    (tv, ts), (dv, ds) = _split(vecs, docs)
    hp = {
        **HP,
        "arch": "lvm-r",
        "model": {"hidden": 32, "dropout": 0.0},
        **losses,
        "select": "all_baselines",
    }
    train_docs = np.array(docs[: len(tv)])
    _, history, best = train_model(
        hp, tv, ts, dv, ds, progress=False, log=lambda *_: None, train_docs=train_docs
    )
    ctx, tgt, ex = M.sequence_arrays(M.normalize(dv), ds)
    persist = M.evaluate_predictor(M.persistence, ctx, tgt, M.normalize(dv), ex, latency_calls=0)
    assert history[0]["dev_cosine_mean"] == pytest.approx(
        persist["cosine_mean"], abs=1e-5
    )  # epoch 0 = persistence
    assert best["epoch"] > 0 and best["score"][0] == 1
    assert best["dev_cosine_mean"] > persist["cosine_mean"] + 0.02


@pytest.mark.parametrize("loss", ["w_doc", "w_near"])
def test_doc_negatives_need_document_ids(loss):
    vecs, docs = drifting_sequences(n_docs=10, length=10, dim=8)
    (tv, ts), (dv, ds) = _split(vecs, docs)
    with pytest.raises(lam_mteb.LamMtebError, match="train_docs"):
        train_model(
            {**HP, "arch": "lvm-r", loss: 0.5}, tv, ts, dv, ds, progress=False, log=lambda *_: None
        )


def test_on_epoch_sees_every_epoch_in_eval_mode():
    """The callback (research/lvm_cv_sweep.py records predictions with it) gets epoch 0..E."""
    vecs, docs = drifting_sequences(n_docs=12, length=10, dim=8)
    (tv, ts), (dv, ds) = _split(vecs, docs)
    seen = []

    def on_epoch(epoch, model):
        seen.append((epoch, model.training))

    train_model(
        {**HP, "arch": "lvm-r", "epochs": 2, "model": {"hidden": 8}},
        tv,
        ts,
        dv,
        ds,
        progress=False,
        log=lambda *_: None,
        on_epoch=on_epoch,
    )
    assert seen == [(0, False), (1, False), (2, False)]
