"""LVM plugin: next-vector task ``LVMNextVector``, predictors LVM-T / AMN, LVM-derived retrievers.

Registers (public lam-mteb hooks only):
- encoders ``lvm-t``, ``amn`` and ``lvm-r``: document side = base encoder (``minilm``), query
  side = the predictor's next vector after the query's chunks; both expose ``predict_next``;
- task ``LVMNextVector`` (reads ``$LAM_MTEB_DATA_DIR/longtext``);
- command ``lam-mteb train-lvm``.

This module is imported whenever mteb is, so it imports nothing heavy (torch, mteb) at load time.
Documentation: docs/lvm.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import lam_mteb

if TYPE_CHECKING:
    from lam_mteb.contract import RegisterBenchmark, RegisterEncoder, RegisterTask, SubParsers

    from .encoders import LVMRetriever

BASE_PARAMETERS = 22_713_216  # all-MiniLM-L6-v2


def _lvm_t(
    checkpoint: str | None = None, base_encoder: str | None = None, target_words: int | None = None
) -> LVMRetriever:
    from .encoders import make_lvm_t

    return make_lvm_t(checkpoint, base_encoder, target_words)


def _amn(
    checkpoint: str | None = None, base_encoder: str | None = None, target_words: int | None = None
) -> LVMRetriever:
    from .encoders import make_amn

    return make_amn(checkpoint, base_encoder, target_words)


def _lvm_r(
    checkpoint: str | None = None, base_encoder: str | None = None, target_words: int | None = None
) -> LVMRetriever:
    from .encoders import make_lvm_r

    return make_lvm_r(checkpoint, base_encoder, target_words)


def _revision(arch: str) -> Callable[[dict], str]:
    def revision(params: dict) -> str:
        from .encoders import checkpoint_revision

        return checkpoint_revision({"arch": arch, **params})

    return revision


def _predictor_parameters(arch: str) -> int | None:
    import json

    from .encoders import default_checkpoint

    try:
        return int(
            json.loads((default_checkpoint(arch) / "config.json").read_text())["n_parameters"]
        )
    except (OSError, ValueError, KeyError):
        return None


@lam_mteb.hookimpl
def register_encoders(register: RegisterEncoder) -> None:
    for arch, factory, what in (
        ("lvm-t", _lvm_t, "a 2-layer transformer over the context vectors"),
        ("amn", _amn, "attention over the context + residual MLP over their average"),
        ("lvm-r", _lvm_r, "the last context vector + a learned re-mixing and residual"),
    ):
        extra = _predictor_parameters(arch)
        register(
            arch,
            factory,
            description=(
                f"LVM-derived retriever ({what}): documents = MiniLM vectors, query = predicted "
                "vector of the chunk that follows the query"
            ),
            revision=_revision(arch),
            embed_dim=384,
            max_tokens=256,
            n_parameters=BASE_PARAMETERS + extra if extra else None,
            license="apache-2.0",
            open_weights=True,
            similarity_fn_name="cosine",
            use_instructions=False,
            languages=["eng-Latn"],
            adapted_from="sentence-transformers/all-MiniLM-L6-v2",
        )


@lam_mteb.hookimpl
def register_tasks(register: RegisterTask) -> None:
    from .task import LVMNextVector

    register(LVMNextVector, self_loading=True)


@lam_mteb.hookimpl
def register_commands(subparsers: SubParsers) -> None:
    from .train import add_command

    add_command(subparsers)


@lam_mteb.hookimpl
def register_benchmarks(register: RegisterBenchmark) -> None:
    register(
        "lvm",
        "LVM next-vector",
        ("LVMNextVector",),
        prefix="LVM",
        prefix_ranked=True,
        position=30,
        description="Next-vector prediction: the vector of the next text chunk from the vectors "
        "of the previous chunks (main score as the task defines it: R@5 of the model's "
        "predictor). Baseline rows are the reference predictors the task scores in the "
        "same runs (random vector, mean train vector, persistence = the last context "
        "vector, linear average of the context); minilm has no predictor of its own, so "
        "its row is the linear average. Cosine and R@1 are shown beside the main score "
        "because a predictor can trade one for the other.",
        abbreviations={"LVMNextVector": "NextVector"},
        detail_metrics=(
            ("LVMNextVector", "cosine_mean", "cos"),
            ("LVMNextVector", "recall_at_1", "R@1"),
        ),
    )
