"""LAM as a sentence-transformers module: built from modules=[...], saved, and loaded from a
folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lam_mteb_plugins.lam.common.model import LamModel
from lam_mteb_plugins.lam.v1.encoder import LamEncoder
from lam_mteb_plugins.lam.v1.model import LamConfig, save_checkpoint

torch.set_num_threads(1)
TEXTS = ["A man is playing a guitar.", "", "A long text about rivers. " * 60]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = LamModel.from_base(LamConfig(mode="final"))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt"), dtype=torch.float32)


@pytest.mark.parametrize("pooling", ["mean", "state", "hybrid"])
def test_sentence_transformer_module_save_and_load(ckpt, tmp_path, pooling):
    from sentence_transformers import SentenceTransformer

    from lam_mteb_plugins.lam.v1.st import LamSTModule

    st = SentenceTransformer(
        modules=[LamSTModule(pooling=pooling, weights=str(ckpt))], device="cpu"
    )
    assert st.get_embedding_dimension() == 384
    a = st.encode(TEXTS)
    # the same numbers as the mteb encoder (the third text spans several 16-token chunks)
    st[0].chunk_size = 16
    b = st.encode(TEXTS)
    ref = LamEncoder(weights=str(ckpt), pooling=pooling, chunk_size=16, device="cpu").encode(TEXTS)
    np.testing.assert_allclose(b, ref, atol=2e-5)
    st[0].chunk_size = 512
    np.testing.assert_allclose(
        a, LamEncoder(weights=str(ckpt), pooling=pooling, device="cpu").encode(TEXTS), atol=2e-5
    )

    st.save(str(tmp_path / "saved"))
    modules = json.loads((tmp_path / "saved" / "modules.json").read_text())
    assert modules[0]["type"] == "lam_mteb_plugins.lam.v1.st.LamSTModule"
    loaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu", trust_remote_code=True)
    np.testing.assert_allclose(loaded.encode(TEXTS), a, atol=1e-6)
    assert loaded[0].pooling == pooling


def test_folder_saved_under_the_old_module_path_still_loads(ckpt, tmp_path):
    """Folders saved before the v1/v2 split name ``lam_mteb_plugins.lam.st.LamSTModule`` in
    modules.json; that path stays importable and loads the same module."""
    from sentence_transformers import SentenceTransformer

    from lam_mteb_plugins.lam.st import LamSTModule as OldPath
    from lam_mteb_plugins.lam.v1.st import LamSTModule

    assert OldPath is LamSTModule
    st = SentenceTransformer(modules=[LamSTModule(weights=str(ckpt))], device="cpu")
    st.save(str(tmp_path / "saved"))
    modules_file = tmp_path / "saved" / "modules.json"
    modules = json.loads(modules_file.read_text())
    modules[0]["type"] = "lam_mteb_plugins.lam.st.LamSTModule"
    modules_file.write_text(json.dumps(modules))
    loaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu", trust_remote_code=True)
    assert isinstance(loaded[0], LamSTModule)
    np.testing.assert_allclose(loaded.encode(TEXTS), st.encode(TEXTS), atol=1e-6)
