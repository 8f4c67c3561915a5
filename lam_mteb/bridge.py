"""Makes the stock mteb CLI and API see lam-mteb's models and tasks, without forking mteb.

mteb 2.x has no plugin mechanism; every use of its internals goes through
:mod:`lam_mteb.mteb_compat`.  :meth:`Bridge.install` (the plugin host's bridge, which the
start-up hook installs right after ``import mteb`` completes) adds:

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
from lam_mteb.data import RECREATION_PREFIX, Resolution
from lam_mteb.errors import LamMtebError, one_line
from lam_mteb.mteb_compat import SUPPORTED_MTEB, check_mteb_version, mteb_version_supported
from lam_mteb.registry import Registry

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.cache import ResultCache
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ModelMeta
    from mteb.results import TaskResult
    from mteb.types import Array, BatchedInput, PromptType
    from torch.utils.data import DataLoader

    from lam_mteb.plugins import PluginHost

logger = logging.getLogger("lam_mteb.bridge")

__all__ = [  # RECREATION_PREFIX: re-exported from data; the version checks from mteb_compat
    "RECREATION_PREFIX",
    "SUPPORTED_MTEB",
    "Bridge",
    "check_mteb_version",
    "mteb_version_supported",
]


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


# -- results: never reuse or write a wrong score -------------------------------------------------


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


def _check_run_output_folder() -> None:
    """``mteb run --output-folder X``: refuse a file or a read-only folder before evaluating."""
    from lam_mteb.paths import check_writable_folder

    for folder in mteb_compat.cli_option_values(("--output-folder", "--output_folder")):
        check_writable_folder(folder, "--output-folder")


# -- the bridge of one plugin host ---------------------------------------------------------------


class Bridge:
    """What one plugin host registered with mteb: its models (full names and bare names), its
    tasks and the wrappers of mteb's task loading and result files.  Made by the host
    (:attr:`lam_mteb.plugins.PluginHost.bridge`); the wrappers it installs into mteb's classes are
    process-wide and call the first bridge that installed them."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host
        self.our_models: set[str] = set()  # full names this bridge put into mteb's model registry
        self.bare_names: dict[str, str] = {}  # bare name -> full name of those models
        self.installed = False
        self._completing = False  # complete_install() is running

    def __deepcopy__(self, memo: dict) -> Bridge:  # mteb deep-copies ModelMeta (its loader)
        return self

    def __reduce__(self) -> tuple[Callable[[], Bridge], tuple]:  # pickled: the process's own
        return _process_bridge, ()

    def load_plugin_model(
        self, model_name: str, revision: str | None = None, device: str | None = None, **kwargs: Any
    ) -> Any:
        """mteb loader for every lam-mteb model (``ModelMeta.loader``)."""
        config = self.host.registry().model(model_name)
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
            # e.g. BM25: handed to mteb unchanged (mteb sets its mteb_model_meta); retrieval only
            return encoder
        return plugin_model_class()(encoder, config.name)

    def register_models(self, registry: Registry) -> None:
        for name in list(self.our_models):  # re-install: drop our previous entries
            mteb_compat.remove_model(name)
        self.our_models.clear()
        bare: dict[str, str] = {}
        for config in registry.models.values():
            try:
                meta = config.model_meta(self.load_plugin_model)
            except Exception as exc:
                problem = f"invalid metadata: {exc}".splitlines()[0]
                self.host.report(f"model {config.name!r} ({config.source}): {problem}")
                continue
            if mteb_compat.has_model(config.full_name) and config.full_name not in self.our_models:
                self.host.report(
                    f"model {config.full_name!r} ({config.source}) clashes with a model mteb "
                    "already has; skipped"
                )
                continue
            mteb_compat.add_model(config.full_name, meta)
            self.our_models.add(config.full_name)
            if config.name != config.full_name:  # a name mteb has itself still wins
                bare[config.name] = config.full_name
        self.bare_names = bare

    def register_tasks(self, registry: Registry) -> None:
        for entry in registry.tasks.values():
            existing = mteb_compat.task_class(entry.name)
            if existing is not None and existing is not entry.cls:
                self.host.report(
                    f"task {entry.name!r} from plugin {entry.plugin!r} clashes with an mteb task; "
                    "skipped"
                )
                continue
            mteb_compat.add_task_class(entry.cls)
            if not entry.self_loading:
                self.patch_load_data(entry.cls)

    def is_self_loading(self, task: Any) -> bool:
        """Whether a task (class or instance) reads the data dir itself (``register(cls,
        self_loading=True)``)."""
        entry = self.host.registry().tasks.get(task.metadata.name)
        if entry is not None and entry.cls in type(task).__mro__ + (task,):
            return entry.self_loading
        return bool(getattr(task, "lam_mteb_self_loading", False))

    def patch_provided_tasks(self) -> None:
        """Wrap ``load_data`` of the mteb tasks whose dataset the data dir can provide (a registered
        builder, or a local snapshot under LAM_MTEB_DATA_DIR now); every other mteb task is
        untouched."""
        from lam_mteb import data

        paths = set(self.host.data.builders()) | data.local_snapshots()
        for cls in set(mteb_compat.task_classes().values()):
            if cls.metadata.dataset.get("path") in paths:
                self.patch_load_data(cls)

    def patch_load_data(self, cls: type) -> None:
        """Wrap ``cls.load_data`` (and overrides in subclasses) to use local data when present."""
        mteb_compat.wrap_load_data(cls, self._offline_load_data)

    def _offline_load_data(self, original: Callable[..., None]) -> Callable[..., None]:
        bridge = self

        @functools.wraps(original)
        # self: an mteb AbsTask, to which this wrapper adds _lam_mteb_loading and lam_mteb_data
        def load_data(self: Any, *args: Any, **kwargs: Any) -> None:
            if (
                getattr(self, "data_loaded", False)
                or getattr(self, "_lam_mteb_loading", False)
                or bridge.is_self_loading(self)
            ):
                # already loaded, re-entered, or a task that reads LAM_MTEB_DATA_DIR itself
                return original(self, *args, **kwargs)
            dataset = dict(self.metadata.dataset)
            path = str(dataset["path"]) if dataset.get("path") else None
            resolution = bridge._resolve(path)
            if resolution.path is None:
                if resolution.looked_for:
                    sys.stderr.write(
                        f"lam-mteb: no local copy of {path} for {self.metadata.name} (looked for "
                        f"{'; '.join(resolution.looked_for)}); using mteb's own loading from "
                        f"{path}\n"
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
                # results record task.metadata.revision as dataset_revision: record the content
                # address of the data actually loaded (re-created data keeps the
                # "lam-mteb-recreation:" prefix, so no result computed on it can pass for one on
                # the published dataset)
                self.metadata = self.metadata.model_copy(
                    update={"dataset": {**dataset, "revision": resolution.revision}}
                )

        setattr(load_data, "__lam_mteb_offline__", True)  # noqa: B010 - marks our wrapper
        return load_data

    def _resolve(self, path: str | None) -> Resolution:
        """The local copy of the dataset ``path`` in the data dir (none: mteb loads it)."""
        return self.host.data.resolve(path) if path else Resolution(None, [])

    def expected_dataset_revision(self, task_name: str) -> str | None:
        """The dataset revision a result of ``task_name`` must carry to be reused: the content
        address of the local data the task would load now, else the task's published revision
        (None: unknown)."""
        cls = mteb_compat.task_class(task_name)
        if cls is None or self.is_self_loading(cls):
            return None
        dataset: dict[str, Any] = dict(cls.metadata.dataset)
        return self._resolve(dataset.get("path")).revision or dataset.get("revision")

    def _stale_cached_result(self, result: TaskResult, task_name: str) -> str | None:
        """Why a cached result must not be reused (a line for stderr), or None when it may be."""
        expected = self.expected_dataset_revision(task_name)
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

    def patch_result_cache(self) -> None:
        """Wrap mteb's result files so that (1) a cached result is reused only when its dataset
        revision is the data now loaded, (2) a corrupt result file is named in one line and
        treated as missing, (3) a NaN/inf main score is an error and nothing is written, (4)
        result files are written through a temporary file and a rename."""
        mteb_compat.wrap_result_cache(
            load_task_result=self._checked_load,
            save_to_cache=_finite_save,
            to_disk=_atomic_to_disk,
        )

    def _checked_load(
        self, original: Callable[..., TaskResult | None]
    ) -> Callable[..., TaskResult | None]:
        stale_reason = self._stale_cached_result

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
                detail = str(exc).splitlines()[0][:120] if str(exc) else ""
                sys.stderr.write(
                    f"lam-mteb: result file {path} is corrupt ({type(exc).__name__}: {detail}); "
                    "treating it as missing (it is replaced when the task is evaluated again)\n"
                )
                return None
            stale = None if result is None else stale_reason(result, task_name)
            if stale:
                sys.stderr.write(stale)
                return None
            return result

        return load_task_result

    def install(self, force: bool = False) -> None:
        """Register every plugin model and task with mteb (idempotent)."""
        if self.installed and not force:
            return
        check_mteb_version()
        if force:
            self.host.invalidate()
        registry = self.host.registry()
        self.register_models(registry)
        mteb_compat.install_bare_name_lookup(self.bare_names.get)
        self.register_tasks(registry)
        self.patch_provided_tasks()
        self.patch_result_cache()
        mteb_compat.call_before_task_lookup(self.complete_install)
        # a plugin that waited for its own module (host.waiting) is registered at the next lookup
        self.installed = not self.host.waiting

    def complete_install(self) -> None:
        """Finish an installation that had to wait: run before every ``mteb.get_task(s)``, except
        the lookups a plugin hook makes while that installation runs."""
        if self.installed or self._completing:
            return
        self._completing = True
        try:
            self.install(force=True)
        finally:
            self._completing = False

    def wrap_mteb_cli(self, cli_module: ModuleType) -> None:
        """Make the stock ``mteb`` CLI print lam-mteb errors and unknown names as one line (exit
        2)."""
        mteb_compat.wrap_cli_main(cli_module, self._one_line_errors)

    def _one_line_errors(self, original: Callable[..., Any]) -> Callable[..., Any]:
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
                unknown = self._unknown_model_in_argv()
                if unknown is None:
                    raise
                sys.stderr.write(
                    f"error: {self.unknown_model_message(unknown)} (loading it from the Hugging "
                    f"Face hub failed: {one_line(exc)})\n"
                )
                raise SystemExit(2) from None

        return main

    def _unknown_model_in_argv(self) -> str | None:
        """The ``-m/--model`` of an ``mteb run`` command line when mteb's registry lacks it."""
        import os

        for value in mteb_compat.cli_option_values(("-m", "--model"))[:1]:
            return None if self.has_model(value) or os.path.exists(value) else value
        return None

    def has_model(self, name: str) -> bool:
        """Whether mteb resolves ``name`` without the hub (its own name or our bare name)."""
        return mteb_compat.has_model(name) or name in self.bare_names

    def unknown_model_message(self, name: str) -> str:
        from lam_mteb.inputs import did_you_mean

        ours = sorted(self.our_models | set(self.bare_names))
        hint = did_you_mean(name, ours, fallback=mteb_compat.model_names())
        return (
            f"unknown model {name!r}: not a lam-mteb or mteb model{hint} "
            "(`lam-mteb models` lists lam-mteb's)"
        )


def _process_bridge() -> Bridge:
    """The bridge of this process's plugin host (what an unpickled loader calls)."""
    from lam_mteb.plugins import host

    return host.bridge
