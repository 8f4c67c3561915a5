"""LVM-derived retrievers: document side = base encoder, query side = predicted next vector."""

from __future__ import annotations

import numpy as np
import pytest

import lam_mteb
from lam_mteb_plugins.lvm import metrics as M
from lam_mteb_plugins.lvm.encoders import LVMRetriever, checkpoint_revision
from lam_mteb_plugins.lvm.models import build, save_checkpoint
from lam_mteb_plugins.lvm.testing import HashEncoder


@pytest.fixture
def base(monkeypatch):
    enc = HashEncoder(dim=16)
    monkeypatch.setattr(lam_mteb, "get_encoder", lambda name, **kw: enc)
    return enc


def _untrained_checkpoint(folder, arch="amn"):
    save_checkpoint(
        build(arch, dim=16, context=5),
        folder,
        {
            "arch": arch,
            "model": {"dim": 16, "context": 5},
            "base_encoder": "minilm",
            "target_words": 8,
        },
    )
    return folder


def test_documents_use_the_base_encoder(base, tmp_path):
    r = LVMRetriever("amn", str(_untrained_checkpoint(tmp_path)))
    texts = ["The whale dived deep.", "A rose grew in the garden."]
    np.testing.assert_allclose(r.encode_documents(texts), base.encode(texts))
    np.testing.assert_allclose(r.encode(texts), base.encode(texts))  # no prompt -> document side
    np.testing.assert_allclose(r.encode(texts, prompt_type="document"), base.encode(texts))


def test_query_is_the_predicted_next_vector_of_its_chunks(base, tmp_path):
    r = LVMRetriever("amn", str(_untrained_checkpoint(tmp_path)))  # untrained = linear average
    sents = [f"Sentence {w} number {i} about whales and ships." for i, w in enumerate("abcdefgh")]
    query = " ".join(sents)  # 8 sentences of 8 words -> 8 chunks at target_words=8; last 5 used
    expected = M.normalize(base.encode(sents[-5:]).mean(axis=0, keepdims=True))
    np.testing.assert_allclose(r.encode_queries([query]), expected, atol=1e-5)
    np.testing.assert_allclose(r.encode([query], prompt_type="query"), expected, atol=1e-5)
    # a one-chunk query: context [x, x, x, x, x] -> the prediction of an untrained model is x itself
    short = "A short query about ships."
    np.testing.assert_allclose(r.encode_queries([short]), base.encode([short]), atol=1e-5)


def test_predict_next_shape_and_errors(base, tmp_path):
    r = LVMRetriever("amn", str(_untrained_checkpoint(tmp_path)))
    ctx = np.random.default_rng(0).standard_normal((4, 5, 16)).astype(np.float32)
    out = r.predict_next(ctx)
    assert out.shape == (4, 16) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    with pytest.raises(lam_mteb.LamMtebError, match=r"\(n, k, d\)"):
        r.predict_next(ctx[0])
    with pytest.raises(lam_mteb.LamMtebError, match="is a 'amn' model, not 'lvm-t'"):
        LVMRetriever("lvm-t", str(tmp_path))


def test_revision_follows_the_weights(tmp_path):
    a = _untrained_checkpoint(tmp_path / "a")
    b = _untrained_checkpoint(tmp_path / "b", arch="lvm-t")
    ra = checkpoint_revision({"arch": "amn", "checkpoint": str(a)})
    assert ra == checkpoint_revision({"arch": "amn", "checkpoint": str(a)})
    assert ra != checkpoint_revision({"arch": "amn", "checkpoint": str(b)})


@pytest.mark.parametrize("arch", ["lvm-t", "amn", "lvm-r"])
def test_shipped_checkpoints_load(arch, base):
    from lam_mteb_plugins.lvm.encoders import default_checkpoint

    if not (default_checkpoint(arch) / "model.safetensors").exists():
        pytest.skip(f"no shipped {arch} checkpoint yet")
    r = LVMRetriever(arch)
    assert r.config["arch"] == arch and r.context == 5 and r.config["model"]["dim"] == 384
    out = r.predict_next(M.normalize(np.random.default_rng(0).standard_normal((2, 5, 384))))
    assert out.shape == (2, 384)
