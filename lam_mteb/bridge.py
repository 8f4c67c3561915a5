"""Makes the stock mteb CLI and API see lam-mteb's models and tasks, without forking mteb.

mteb 2.x has no plugin mechanism; every use of its internals goes through
:mod:`lam_mteb.mteb_compat`.  :func:`install` (called by the start-up hook right after
``import mteb`` completes) adds:

- every registered model as one ``ModelMeta`` under its full name ``<org>/<name>``, whose loader
  wraps the plugin's encoder in :class:`PluginModel` (an mteb ``AbsEncoder``); its bare name
  resolves too (``mteb.get_model_meta("lam-state")`` is
  ``mteb.get_model_meta("lam-mteb/lam-state")``, ``mteb run -m lam-state`` works) through
  mteb_compat's lookup, not a second registry entry;
- every plugin task class to the task registry;
- offline data: each task's ``load_data`` first resolves its dataset path against the data
  directory (see :mod:`lam_mteb.data`).

The supported mteb versions are pinned (:data:`lam_mteb.mteb_compat.SUPPORTED_MTEB`) and tested;
on any other version install() refuses with one clear line.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from lam_mteb import mteb_compat
from lam_mteb.atomic import atomic_file
from lam_mteb.contract import accepts_param, encode_texts, is_search_model
from lam_mteb.data import RECREATION_PREFIX
from lam_mteb.errors import LamMtebError
from lam_mteb.mteb_compat import SUPPORTED_MTEB, check_mteb_version, mteb_version_supported
from lam_mteb.plugins import host
from lam_mteb.registry import ModelConfig, Registry

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.cache import ResultCache
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ModelMeta
    from mteb.results import TaskResult
    from mteb.types import Array, BatchedInput, PromptType
    from torch.utils.data import DataLoader

logger = logging.getLogger("lam_mteb.bridge")

__all__ = [  # RECREATION_PREFIX: re-exported from data; the version checks from mteb_compat
    "RECREATION_PREFIX",
    "SUPPORTED_MTEB",
    "check_mteb_version",
    "install",
    "mteb_version_supported",
    "wrap_mteb_cli",
]

_installed = False
_completing = False  # complete_install() is running
_our_models: set[str] = set()  # full names this module put into mteb's model registry


class PluginModel:
    """Placeholder replaced by the real AbsEncoder subclass on first use (keeps import light)."""


def as_embeddings(emb: Any, n_texts: int, model: str) -> np.ndarray:
    """An encoder's output (numpy, torch or nested lists) as a float32 ``(n_texts, dim)`` array;
    a wrong shape or a NaN/inf value is one LamMtebError naming the model."""
    if hasattr(emb, "detach"):
        emb = emb.detach().cpu().numpy()
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != n_texts:
        raise LamMtebError(
            f"model {model!r} returned embeddings of shape {emb.shape} "
            f"for {n_texts} texts; expected ({n_texts}, dim)"
        )
    if not np.isfinite(emb).all():
        raise LamMtebError(f"model {model!r} returned NaN/inf embeddings")
    return emb


def _call_kwargs(kwargs: dict, task_name: str) -> dict:
    """Everything mteb passes (encode_kwargs: batch_size, show_progress_bar, device, pool, ...)
    with mteb's defaults and the task's name; ``encode_texts`` hands an encoder those its
    signature names (see hookspecs.register_encoders)."""
    return {
        **kwargs,
        "batch_size": kwargs.get("batch_size", 32),
        "show_progress_bar": kwargs.get("show_progress_bar", True),
        "task_name": task_name,
    }


def _as_multi_vector(encoder: Any, emb: Sequence[Any], n_texts: int, model: str) -> list:
    """A multi-vector encoder returns one ``(n_vectors_i, dim)`` array per text."""
    if not callable(getattr(encoder, "similarity", None)):
        raise LamMtebError(
            f"model {model!r} returned a list of embeddings (multi-vector) "
            "but defines no similarity(a, b) to score them"
        )
    out = []
    for e in emb:
        if hasattr(e, "detach"):
            e = e.detach().cpu().numpy()
        out.append(np.asarray(e, dtype=np.float32))
    dims = {e.shape[1] for e in out if e.ndim == 2}
    if len(out) != n_texts or any(e.ndim != 2 or e.shape[0] == 0 for e in out) or len(dims) > 1:
        shapes = sorted({e.shape for e in out}, key=str)[:3]
        raise LamMtebError(
            f"model {model!r} returned {len(out)} multi-vector embeddings "
            f"(shapes {shapes}) for {n_texts} texts; expected one (n_i >= 1, dim) "
            "array per text"
        )
    if not all(np.isfinite(e).all() for e in out):
        raise LamMtebError(f"model {model!r} returned NaN/inf embeddings")
    return out


def _constant_warning(emb: np.ndarray, model: str, task_name: str) -> str | None:
    """The warning for a batch whose vectors are all the same (a constant encoder), or None."""
    if len(emb) <= 1 or np.ptp(emb, axis=0).any():
        return None
    what = "all-zero" if not emb.any() else "identical"
    return (
        f"lam-mteb: model {model!r} returned {what} vectors for all "
        f"{len(emb)} texts of {task_name} (a constant encoder): its "
        "scores are meaningless; check the model's weights and code\n"
    )


@functools.cache
def plugin_model_class() -> Callable[[Any, str], AbsEncoder]:
    """The mteb encoder class around plugin encoders (made once: mteb is imported lazily)."""
    from mteb.models.abs_encoder import AbsEncoder

    class PluginModel(AbsEncoder):
        """An mteb encoder around a plugin encoder (``encode(texts, **kw) -> (n, dim)``)."""

        def __init__(self, encoder: Any, config_name: str) -> None:
            self.encoder = encoder
            self.model = encoder
            self.config_name = config_name
            self._constant_reported: set = set()

        def encode(  # an Array, or a list of (n_i, dim) arrays for a multi-vector encoder
            self,
            inputs: DataLoader[BatchedInput],
            *,
            task_metadata: TaskMetadata,
            hf_split: str,
            hf_subset: str,
            prompt_type: PromptType | None = None,
            **kwargs: Any,
        ) -> Any:
            texts = [text for batch in inputs for text in batch["text"]]
            kind = None if prompt_type is None else str(getattr(prompt_type, "value", prompt_type))
            emb = encode_texts(
                self.encoder, texts, prompt_type=kind, **_call_kwargs(kwargs, task_metadata.name)
            )
            if isinstance(emb, (list, tuple)):
                return _as_multi_vector(self.encoder, emb, len(texts), self.config_name)
            emb = as_embeddings(emb, len(texts), self.config_name)
            key = (task_metadata.name, kind)
            warning = _constant_warning(emb, self.config_name, task_metadata.name)
            if warning and key not in self._constant_reported:  # once per task and prompt type
                self._constant_reported.add(key)
                sys.stderr.write(warning)
            return emb

        def similarity(self, embeddings1: Array, embeddings2: Array) -> Array:
            """The encoder's own ``similarity(a, b)`` when it has one, else mteb's (from the
            metadata)."""
            fn = getattr(self.encoder, "similarity", None)
            if callable(fn):
                return fn(embeddings1, embeddings2)
            return super().similarity(embeddings1, embeddings2)

        def similarity_pairwise(self, embeddings1: Array, embeddings2: Array) -> Array:
            fn = getattr(self.encoder, "similarity_pairwise", None)
            if callable(fn):
                return fn(embeddings1, embeddings2)
            return super().similarity_pairwise(embeddings1, embeddings2)

    return PluginModel


def load_plugin_model(
    model_name: str, revision: str | None = None, device: str | None = None, **kwargs: Any
) -> Any:
    """mteb loader for every lam-mteb model (``ModelMeta.loader``)."""
    config = host.registry().model(model_name)
    if device is not None and accepts_param(config.kind.factory, "device"):
        check_device(device)
        kwargs["device"] = device
    try:
        encoder = config.create(**kwargs)
    except LamMtebError:
        raise
    except _load_errors() as exc:  # truncated/corrupt weights, a wrong path, ...
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise LamMtebError(
            f"model {config.name!r} ({config.source}) could not be loaded: "
            f"{type(exc).__name__}: {detail}; check its weights files and params"
        ) from None
    if is_search_model(encoder):
        # e.g. BM25: handed to mteb unchanged (mteb sets its mteb_model_meta); retrieval tasks only
        return encoder
    return plugin_model_class()(encoder, config.name)


def _load_errors() -> tuple[type[BaseException], ...]:
    """What loading bad weights raises (torch, safetensors, transformers, the file system)."""
    errors: list[type[BaseException]] = [OSError, ValueError, RuntimeError, KeyError, EOFError]
    try:
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def check_device(device: str) -> None:
    """Refuse a CUDA/MPS device that this machine does not have, in one line."""
    name = str(device).split(":")[0]
    if name not in ("cuda", "mps"):
        return
    import torch

    ok = torch.cuda.is_available() if name == "cuda" else torch.backends.mps.is_available()
    if not ok:
        raise LamMtebError(
            f"--device {device}: this machine has no {name.upper()} device that torch can use "
            f"(torch {torch.__version__}); use --device cpu"
        )


def make_model_meta(config: ModelConfig) -> ModelMeta:
    from mteb.models.model_meta import ModelMeta

    md = dict(config.metadata)
    fields = {
        "loader": load_plugin_model,
        "name": config.full_name,
        "revision": config.revision,
        "release_date": md.pop("release_date", None),
        "languages": md.pop("languages", None),
        "n_parameters": md.pop("n_parameters", None),
        "memory_usage_mb": md.pop("memory_usage_mb", None),
        "max_tokens": md.pop("max_tokens", None),
        "embed_dim": md.pop("embed_dim", None),
        "license": md.pop("license", None),
        "open_weights": md.pop("open_weights", True),
        "public_training_code": md.pop("public_training_code", None),
        "public_training_data": md.pop("public_training_data", None),
        "framework": ["PyTorch"],
        "similarity_fn_name": md.pop("similarity_fn_name", "cosine"),
        "use_instructions": md.pop("use_instructions", False),
        "training_datasets": md.pop("training_datasets", None),
    }
    if isinstance(fields["training_datasets"], list):
        fields["training_datasets"] = set(fields["training_datasets"])
    fields.update(md)
    return ModelMeta(**fields)


def register_models(registry: Registry) -> None:
    for name in list(_our_models):  # re-install: drop our previous entries
        mteb_compat.remove_model(name)
    _our_models.clear()
    bare: dict[str, str] = {}
    for config in registry.models.values():
        try:
            meta = make_model_meta(config)
        except Exception as exc:
            host.report(
                f"model {config.name!r} ({config.source}): invalid metadata: {exc}".splitlines()[0]
            )
            continue
        if mteb_compat.has_model(config.full_name) and config.full_name not in _our_models:
            host.report(
                f"model {config.full_name!r} ({config.source}) clashes with a model mteb already "
                "has; skipped"
            )
            continue
        mteb_compat.add_model(config.full_name, meta)
        _our_models.add(config.full_name)
        if config.name != config.full_name:
            bare[config.name] = config.full_name  # a name mteb has itself still wins (mteb_compat)
    mteb_compat.set_bare_names(bare)


def register_tasks(registry: Registry) -> None:
    for entry in registry.tasks.values():
        existing = mteb_compat.task_class(entry.name)
        if existing is not None and existing is not entry.cls:
            host.report(
                f"task {entry.name!r} from plugin {entry.plugin!r} clashes with an mteb task; "
                "skipped"
            )
            continue
        mteb_compat.add_task_class(entry.cls)
        if not entry.self_loading:
            patch_load_data(entry.cls)


def is_self_loading(task: Any) -> bool:
    """Whether a task (class or instance) reads the data dir itself (``register(cls,
    self_loading=True)``)."""
    entry = host.registry().tasks.get(task.metadata.name)
    if entry is not None and entry.cls in type(task).__mro__ + (task,):
        return entry.self_loading
    return bool(getattr(task, "lam_mteb_self_loading", False))


def patch_provided_tasks() -> None:
    """Wrap ``load_data`` of the mteb tasks whose dataset the data dir can provide (a registered
    builder, or a local snapshot under LAM_MTEB_DATA_DIR now); every other mteb task is
    untouched."""
    from lam_mteb import data

    paths = set(data.builders()) | data.local_snapshots()
    for cls in set(mteb_compat.task_classes().values()):
        if cls.metadata.dataset.get("path") in paths:
            patch_load_data(cls)


# -- offline data --------------------------------------------------------------------------------


def patch_load_data(cls: type) -> None:
    """Wrap ``cls.load_data`` (and overrides in subclasses) to use local data when present."""
    mteb_compat.wrap_load_data(cls, _offline_load_data)


def _offline_load_data(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    # self: an mteb AbsTask, to which this wrapper adds _lam_mteb_loading and lam_mteb_data
    def load_data(self: Any, *args: Any, **kwargs: Any) -> None:
        if (
            getattr(self, "data_loaded", False)
            or getattr(self, "_lam_mteb_loading", False)
            or is_self_loading(self)
        ):
            # already loaded, re-entered, or a task that reads LAM_MTEB_DATA_DIR itself
            return original(self, *args, **kwargs)
        from lam_mteb import data

        dataset = dict(self.metadata.dataset)
        path = str(dataset["path"]) if dataset.get("path") else None
        resolution = data.resolve(path) if path else data.Resolution(None, [])
        if resolution.path is None:
            if resolution.looked_for:
                sys.stderr.write(
                    f"lam-mteb: no local copy of {path} for {self.metadata.name} (looked for "
                    f"{'; '.join(resolution.looked_for)}); using mteb's own loading from {path}\n"
                )
            return original(self, *args, **kwargs)
        original_metadata = self.__dict__.get("metadata")
        self.metadata = self.metadata.model_copy(
            update={"dataset": {**dataset, "path": str(resolution.path)}}
        )
        self._lam_mteb_loading = True
        self.lam_mteb_data = {
            "local_path": str(resolution.path),
            "recreation": resolution.recreation,
        }
        try:
            return original(self, *args, **kwargs)
        finally:
            self._lam_mteb_loading = False
            if original_metadata is None:
                del self.metadata
            else:
                self.metadata = original_metadata
            # results record task.metadata.revision as dataset_revision: record the content address
            # of the data actually loaded (re-created data keeps the "lam-mteb-recreation:" prefix,
            # so no result computed on it can pass for one on the published dataset)
            self.metadata = self.metadata.model_copy(
                update={"dataset": {**dataset, "revision": resolution.revision}}
            )

    setattr(load_data, "__lam_mteb_offline__", True)  # noqa: B010 - marks our wrapper
    return load_data


# -- results: never reuse or write a wrong score -------------------------------------------------


def expected_dataset_revision(task_name: str) -> str | None:
    """The dataset revision a result of ``task_name`` must carry to be reused: the content address
    of the local data the task would load now, else the task's published revision (None:
    unknown)."""
    cls = mteb_compat.task_class(task_name)
    if cls is None or is_self_loading(cls):
        return None
    from lam_mteb import data

    dataset: dict[str, Any] = dict(cls.metadata.dataset)
    resolution = data.resolve(dataset["path"]) if dataset.get("path") else data.Resolution(None, [])
    return resolution.revision or dataset.get("revision")


def non_finite_scores(task_result: TaskResult) -> list[str]:
    """``split/subset`` of every main score of a TaskResult that is NaN, infinite or missing."""
    bad = []
    for split, subsets in task_result.scores.items():
        for scores in subsets:
            value = scores.get("main_score")
            if not isinstance(value, (int, float)) or not np.isfinite(value):
                bad.append(f"{split}/{scores.get('hf_subset', 'default')}={value}")
    return bad


def check_finite_scores(task_result: TaskResult, model_name: str | None) -> None:
    """Raise a one-line error when a main score of ``task_result`` is NaN, infinite or missing."""
    bad = non_finite_scores(task_result)
    if bad:
        raise LamMtebError(
            f"{model_name} on {task_result.task_name}: main score is not a finite number "
            f"({', '.join(bad)}); nothing was written. The encoder's embeddings are "
            "degenerate (constant, zero or NaN): check the model's weights and code"
        )


def _stale_cached_result(result: TaskResult, task_name: str) -> str | None:
    """Why a cached result must not be reused (a line for stderr), or None when it may be."""
    expected = expected_dataset_revision(task_name)
    if expected is not None and result.dataset_revision != expected:
        return (
            f"lam-mteb: cached result for {task_name} was computed on dataset revision "
            f"{result.dataset_revision!r}, the data now loaded is {expected!r}; "
            "evaluating again\n"
        )
    bad = non_finite_scores(result)
    if bad:
        return (
            f"lam-mteb: cached result for {task_name} has non-finite main scores "
            f"({', '.join(bad)}); evaluating again\n"
        )
    return None


def patch_result_cache() -> None:
    """Wrap mteb's result files so that (1) a cached result is reused only when its dataset
    revision is the data now loaded, (2) a corrupt result file is named in one line and treated as
    missing, (3) a NaN/inf main score is an error and nothing is written, (4) result files are
    written through a temporary file and a rename."""
    mteb_compat.wrap_result_cache(
        load_task_result=_checked_load, save_to_cache=_finite_save, to_disk=_atomic_to_disk
    )


def _checked_load(original: Callable[..., TaskResult | None]) -> Callable[..., TaskResult | None]:
    def load_task_result(
        self: ResultCache,
        task_name: str,
        model_name: str | ModelMeta,
        model_revision: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> TaskResult | None:
        try:
            result = original(self, task_name, model_name, model_revision, *args, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - JSON/pydantic errors of a file cut by a kill
            path = self.get_task_result_path(task_name, model_name, model_revision)
            sys.stderr.write(
                f"lam-mteb: result file {path} is corrupt ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); treating it as missing "
                "(it is replaced when the task is evaluated again)\n"
            )
            return None
        stale = None if result is None else _stale_cached_result(result, task_name)
        if stale:
            sys.stderr.write(stale)
            return None
        return result

    return load_task_result


def _finite_save(original: Callable[..., None]) -> Callable[..., None]:
    def save_to_cache(
        self: ResultCache,
        task_result: TaskResult,
        model_name: str | ModelMeta,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        name = model_name if isinstance(model_name, str) else model_name.name
        check_finite_scores(task_result, name)
        return original(self, task_result, model_name, *args, **kwargs)

    return save_to_cache


def _atomic_to_disk(original: Callable[..., None]) -> Callable[..., None]:
    def to_disk(self: TaskResult, path: Path) -> None:
        with atomic_file(path) as tmp:
            original(self, tmp)

    return to_disk


# -- install -------------------------------------------------------------------------------------


def install(force: bool = False) -> None:
    """Register every plugin model and task with mteb (idempotent)."""
    global _installed
    if _installed and not force:
        return
    check_mteb_version()
    if force:
        host.invalidate()
    registry = host.registry()
    register_models(registry)
    mteb_compat.install_bare_name_lookup()
    register_tasks(registry)
    patch_provided_tasks()
    patch_result_cache()
    mteb_compat.call_before_task_lookup(complete_install)
    # a plugin that waited for its own module (host.waiting) is registered at the next lookup
    _installed = not host.waiting


def complete_install() -> None:
    """Finish an installation that had to wait: run before every ``mteb.get_task(s)``, except
    the lookups a plugin hook makes while that installation runs."""
    global _completing
    if _installed or _completing:
        return
    _completing = True
    try:
        install(force=True)
    finally:
        _completing = False


def wrap_mteb_cli(cli_module: ModuleType) -> None:
    """Make the stock ``mteb`` CLI print lam-mteb errors and unknown names as one line (exit 2)."""
    mteb_compat.wrap_cli_main(cli_module, _one_line_errors)


def _one_line_errors(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def main(*args: Any, **kwargs: Any) -> Any:
        try:
            _check_run_output_folder()
            return original(*args, **kwargs)
        except LamMtebError as exc:
            sys.stderr.write(f"error: {exc}\n")
            raise SystemExit(2) from None
        except KeyError as exc:
            message = mteb_compat.is_not_found_error(exc)
            if message is not None:
                sys.stderr.write(f"error: {message}\n")
                raise SystemExit(2) from None
            raise
        except Exception as exc:
            # An unregistered model name makes mteb fall back to the Hugging Face hub; when that
            # fails too, say so in one line with the close registered names.
            unknown = _unknown_model_in_argv()
            if unknown is None:
                raise
            sys.stderr.write(
                f"error: {unknown_model_message(unknown)} (loading it from the Hugging Face hub "
                f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})\n"
            )
            raise SystemExit(2) from None

    return main


def _check_run_output_folder() -> None:
    """``mteb run --output-folder X``: refuse a file or a read-only folder before evaluating."""
    from lam_mteb.paths import check_writable_folder

    for folder in mteb_compat.cli_option_values(("--output-folder", "--output_folder")):
        check_writable_folder(folder, "--output-folder")


def _unknown_model_in_argv() -> str | None:
    """The ``-m/--model`` of an ``mteb run`` command line when mteb's registry lacks it."""
    import os

    for value in mteb_compat.cli_option_values(("-m", "--model"))[:1]:
        return None if mteb_compat.has_model(value) or os.path.exists(value) else value
    return None


def unknown_model_message(name: str) -> str:
    from lam_mteb.inputs import did_you_mean

    ours = sorted(_our_models | set(mteb_compat.bare_names()))
    hint = did_you_mean(name, ours, fallback=mteb_compat.model_names())
    return (
        f"unknown model {name!r}: not a lam-mteb or mteb model{hint} "
        "(`lam-mteb models` lists lam-mteb's)"
    )
