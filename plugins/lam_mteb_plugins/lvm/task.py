"""The mteb task ``LVMNextVector``: predict the vector of the next chunk from the previous k.

Data: ``$LAM_MTEB_DATA_DIR/longtext`` (any folder of plain-text documents), chunked and split
by document (``data.py``).  The model under test encodes the chunks (as documents); predictors
then guess each chunk's vector from the k = 5 chunks before it.  Scores per split (dev, test) for
the model's own predictor (``model.encoder.predict_next``, when it has one) and every baseline:
random vector, global mean vector (of train chunks), persistence (last context vector), linear
average of the context.  Metric definitions: docs/lvm.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from datasets import Dataset, DatasetDict
from mteb.abstasks.abstask import AbsTask
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.types.statistics import SplitDescriptiveStatistics

import lam_mteb

from . import data, metrics, vectors

if TYPE_CHECKING:
    from mteb.models.models_protocols import EncoderProtocol, MTEBModels
    from mteb.timing import TimingStack
    from mteb.types import EncodeKwargs, ScoresDict

logger = logging.getLogger(__name__)

MAIN_METRIC = "recall_at_5"
BASELINES = ("random", "mean_vector", "persistence", "linear_average")


class LVMNextVectorStatistics(SplitDescriptiveStatistics):
    """Descriptive statistics of one LVMNextVector split (chunks and windows)."""

    num_samples: int
    number_of_characters: int
    num_documents: int
    num_chunks: int
    skipped_short_documents: int
    min_chunk_length: int
    average_chunk_length: float
    max_chunk_length: int


def find_predictor(model: object) -> Callable[[np.ndarray], Any] | None:
    """The ``predict_next`` of the wrapped lam-mteb encoder (``model.encoder``) or of ``model``."""
    for obj in (getattr(model, "encoder", None), model):
        fn = getattr(obj, "predict_next", None) if obj is not None else None
        if callable(fn):
            return fn
    return None


def data_folder() -> Path:
    from lam_mteb_plugins.lvm.data import longtext_folder

    return longtext_folder("LVMNextVector")


class LVMNextVector(AbsTask):
    """Next-chunk-vector prediction with strong baselines (see module docstring)."""

    metadata = TaskMetadata(
        name="LVMNextVector",
        description=(
            "Next-vector prediction over long documents: documents are cut into ~64-word "
            "sentence-aware chunks and split by document into train/dev/test; from the vectors of "
            "5 consecutive chunks a predictor guesses the next chunk's vector. Reports cosine to "
            "the target, R@1/5/10, Contain@50 and MRR (retrieving the true next chunk among all "
            "chunks of the split except the query's own context chunks) and P95 latency, for the "
            "model's own predictor and the random / mean-vector / persistence / linear-average "
            "baselines. Main score: R@5 of the model's predictor, else of the linear average. "
            "Data: $LAM_MTEB_DATA_DIR/longtext."
        ),
        reference="https://github.com/lam-mteb/lam-mteb/blob/main/docs/lvm.md",
        dataset={"path": "lam-mteb/LVMNextVector", "revision": f"chunks-v{data.DATA_VERSION}"},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=["dev", "test"],
        eval_langs=["eng-Latn"],
        main_score=MAIN_METRIC,
        date=("1813-01-01", "2023-12-31"),
        domains=["Encyclopaedic", "Fiction", "Blog", "Written"],
        task_subtypes=[],
        license="not specified",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )

    # this task reads $LAM_MTEB_DATA_DIR/longtext itself; asks the bridge not to look for an
    # offline copy of metadata.dataset["path"] (which does not exist anywhere)
    lam_mteb_self_loading = True

    context = 5
    target_words = 64
    split_seed = 42
    mean_sample = 1000  # train chunks encoded for the mean-vector baseline (fixed seeded sample)
    latency_calls = 200

    def __init__(
        self, seed: int = 42, data_folder: str | Path | None = None, **kwargs: Any
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.data_folder = Path(data_folder) if data_folder else None
        self.sequence_data: data.SequenceData | None = None
        self._train_means: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ data
    def load_data(
        self, num_proc: int | None = None, *, timer: TimingStack | None = None, **kwargs: Any
    ) -> None:
        if self.data_loaded:
            return
        folder = self.data_folder or data_folder()
        sd = data.build_sequence_data(
            folder, context=self.context, target_words=self.target_words, seed=self.split_seed
        )
        self.sequence_data = sd
        self.dataset = {
            "default": DatasetDict(
                {
                    s: Dataset.from_dict(
                        {
                            "id": [c.chunk_id for c in sd.chunks[s]],
                            "doc_id": [c.doc_id for c in sd.chunks[s]],
                            "position": [c.position for c in sd.chunks[s]],
                            "text": [c.text for c in sd.chunks[s]],
                        }
                    )
                    for s in data.SPLITS
                }
            )
        }
        logger.info("LVMNextVector data: %s", {k: v for k, v in sd.stats.items() if k != "params"})
        self.data_loaded = True

    def unload_data(self) -> None:
        super().unload_data()
        self.sequence_data = None
        self._train_means = {}

    # ------------------------------------------------------------------ encoding
    def _encode(
        self,
        model: EncoderProtocol,
        ds: Dataset,
        *,
        hf_split: str,
        hf_subset: str,
        encode_kwargs: dict[str, Any],
    ) -> np.ndarray:
        from mteb.types import PromptType

        from lam_mteb.mteb_compat import create_dataloader

        if len(ds) == 0:
            return np.zeros((0, 1), np.float32)
        emb = model.encode(
            create_dataloader(
                ds.select_columns(["id", "text"]),
                task_metadata=self.metadata,
                prompt_type=PromptType.document,
                **encode_kwargs,
            ),
            task_metadata=self.metadata,
            hf_split=hf_split,
            hf_subset=hf_subset,
            # mteb's PromptType is a StrEnum (Python 3.11+): checked as python 3.10, mypy sees
            # its members as plain str
            prompt_type=PromptType.document,  # type: ignore[arg-type]
            **encode_kwargs,
        )
        if hasattr(emb, "detach"):
            emb = emb.detach().cpu().numpy()
        return np.asarray(emb, dtype=np.float32)

    def _fingerprint(
        self,
        model: EncoderProtocol,
        hf_split: str,
        hf_subset: str,
        encode_kwargs: dict[str, Any],
    ) -> str:
        probe = Dataset.from_list(
            [{"id": f"probe{i}", "text": t} for i, t in enumerate(vectors.PROBES)]
        )
        return vectors.fingerprint(
            lambda _texts: self._encode(
                model, probe, hf_split=hf_split, hf_subset=hf_subset, encode_kwargs=encode_kwargs
            )
        )

    def _cached_encode(
        self,
        model: EncoderProtocol,
        ds: Dataset,
        *,
        hf_split: str,
        fp: str,
        hf_subset: str,
        encode_kwargs: dict[str, Any],
    ) -> np.ndarray:
        """Vectors of ``ds``'s chunks: cached ones (same encoder fingerprint) + newly encoded
        ones."""
        texts = list(ds["text"])
        out, missing = vectors.lookup(fp, texts)
        # out is None when nothing is cached: encode everything (an empty ds gives (0, 1) zeros)
        if missing or out is None:
            new = self._encode(
                model,
                ds.select(missing),
                hf_split=hf_split,
                hf_subset=hf_subset,
                encode_kwargs=encode_kwargs,
            )
            if out is None or out.shape[1] != new.shape[1]:
                out = np.zeros((len(texts), new.shape[1]), np.float32)
            out[missing] = new
            vectors.add(fp, [texts[i] for i in missing], new)
        return out

    def _split_vectors(
        self,
        model: EncoderProtocol,
        split: str,
        fp: str,
        hf_subset: str,
        encode_kwargs: dict[str, Any],
    ) -> np.ndarray:
        assert self.dataset is not None  # load_data ran (evaluate calls it first)
        return self._cached_encode(
            model,
            self.dataset[hf_subset][split],
            hf_split=split,
            fp=fp,
            hf_subset=hf_subset,
            encode_kwargs=encode_kwargs,
        )

    def _train_mean_vectors(
        self, model: EncoderProtocol, fp: str, hf_subset: str, encode_kwargs: dict[str, Any]
    ) -> np.ndarray:
        assert self.dataset is not None  # load_data ran (evaluate calls it first)
        train = self.dataset[hf_subset]["train"]
        idx = vectors.train_sample_indices(len(train), self.mean_sample, self.split_seed)
        return self._cached_encode(
            model,
            train.select(idx.tolist()),
            hf_split="train",
            fp=fp,
            hf_subset=hf_subset,
            encode_kwargs=encode_kwargs,
        )

    # ------------------------------------------------------------------ evaluation
    def _loaded(self) -> data.SequenceData:
        """The chunked documents; load_data must have run."""
        assert self.sequence_data is not None, "LVMNextVector: load_data() has not run"
        return self.sequence_data

    def _split_sequences(self, hf_split: str) -> list[tuple[list[int], int]]:
        """The split's (context, target) windows; one clear error when it has none."""
        sd = self._loaded()
        seqs = sd.sequences(hf_split)
        if not seqs:
            raise lam_mteb.LamMtebError(
                f"LVMNextVector: the {hf_split} split has no document with "
                f">= {self.context + 1} chunks "
                f"({sd.stats[hf_split + '_skipped_short_documents']} skipped as too short); "
                "add longer documents"
            )
        return seqs

    def _encode_chunks(
        self, model: EncoderProtocol, hf_split: str, hf_subset: str, encode_kwargs: dict[str, Any]
    ) -> tuple[str, np.ndarray, np.ndarray]:
        """(encoder fingerprint, the split's unit chunk vectors, the unit train sample of the
        mean-vector baseline); vectors are cached per fingerprint."""
        fp = self._fingerprint(model, hf_split, hf_subset, encode_kwargs)
        vecs = metrics.normalize(self._split_vectors(model, hf_split, fp, hf_subset, encode_kwargs))
        if fp not in self._train_means:
            self._train_means[fp] = self._train_mean_vectors(model, fp, hf_subset, encode_kwargs)
        return fp, vecs, metrics.normalize(self._train_means[fp])

    def _predictors(self, model: object, dim: int, train_sample: np.ndarray) -> dict[str, Any]:
        """The model's own predictor (when it has one) and the four baselines."""
        predictors: dict[str, Any] = {}
        own = find_predictor(model)
        if own is not None:
            predictors["model_predictor"] = lambda c, _f=own: np.asarray(_f(c), dtype=np.float32)
        predictors["random"] = metrics.random_predictor(dim, seed=self.seed)
        predictors["mean_vector"] = metrics.mean_predictor(train_sample)
        predictors["persistence"] = metrics.persistence
        predictors["linear_average"] = metrics.linear_average
        return predictors

    def _scores(
        self,
        results: dict[str, dict[str, float]],
        hf_split: str,
        n_seqs: int,
        n_vecs: int,
        n_train: int,
        fp: str,
    ) -> dict[str, Any]:
        """mteb's scores dict: the main predictor's metrics, every predictor's, provenance."""
        sd = self._loaded()
        main = "model_predictor" if "model_predictor" in results else "linear_average"
        return {
            **results[main],
            "main_predictor": main,
            "predictors": results,
            # the reference predictors among ``predictors`` (the leaderboard shows one row each)
            "baselines": [b for b in BASELINES if b in results],
            "n_documents": sd.stats[f"{hf_split}_documents"],
            "n_chunks": sd.stats[f"{hf_split}_chunks"],
            "n_sequences": n_seqs,
            "n_skipped_short_documents": sd.stats[f"{hf_split}_skipped_short_documents"],
            "candidate_pool": "all chunks of the split except the query's own context chunks",
            "n_candidates": int(n_vecs - self.context),
            "context": self.context,
            "target_words": self.target_words,
            "split_seed": self.split_seed,
            "mean_vector_train_chunks": int(n_train),
            "data_hash": sd.data_hash,
            "encoder_fingerprint": fp,
        }

    def _evaluate_subset(
        self,
        model: MTEBModels,
        data_split: Dataset,
        *,
        hf_split: str,
        hf_subset: str,
        encode_kwargs: EncodeKwargs,
        prediction_folder: Path | None = None,
        num_proc: int | None = None,
        timer: TimingStack | None = None,
        **kwargs: Any,
    ) -> ScoresDict:
        # the chunks are embedded with model.encode: mteb runs this task with encoders only
        encoder = cast("EncoderProtocol", model)
        kwargs_: dict[str, Any] = dict(encode_kwargs or {})
        seqs = self._split_sequences(hf_split)

        def phase(name: str) -> AbstractContextManager[Any]:
            if timer is None:
                import contextlib

                return contextlib.nullcontext()
            return timer(name, split=hf_split, subset=hf_subset)

        with phase("Encoding chunks"):
            fp, vecs, train_sample = self._encode_chunks(encoder, hf_split, hf_subset, kwargs_)
        ctx, tgt, excl = metrics.sequence_arrays(vecs, seqs)
        predictors = self._predictors(model, vecs.shape[1], train_sample)
        with phase("Predicting and scoring"):
            results = {
                name: metrics.evaluate_predictor(
                    fn, ctx, tgt, vecs, excl, latency_calls=self.latency_calls
                )
                for name, fn in predictors.items()
            }
        if prediction_folder:
            self._save_task_predictions(
                dict(results), model, prediction_folder, hf_split=hf_split, hf_subset=hf_subset
            )
        return self._scores(results, hf_split, len(seqs), len(vecs), len(train_sample), fp)

    def _calculate_descriptive_statistics_from_split(
        self,
        split: str,
        *,
        hf_subset: str | None = None,
        compute_overall: bool = False,
        num_proc: int | None = None,
    ) -> LVMNextVectorStatistics:
        if not self.data_loaded:
            self.load_data()
        sd = self._loaded()
        texts = [c.text for c in sd.chunks[split]]
        lens = [len(t) for t in texts] or [0]
        return {
            "num_samples": len(sd.sequences(split)),
            "number_of_characters": int(sum(lens)),
            "num_documents": sd.stats[f"{split}_documents"],
            "num_chunks": len(texts),
            "skipped_short_documents": sd.stats[f"{split}_skipped_short_documents"],
            "min_chunk_length": int(min(lens)),
            "average_chunk_length": float(np.mean(lens)),
            "max_chunk_length": int(max(lens)),
        }
