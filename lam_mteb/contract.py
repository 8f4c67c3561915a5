"""The typed plugin contract: the ``Encoder`` protocol and the ``register`` callables of the hooks.

Plugin authors may use these in type hints (``def make() -> lam_mteb.Encoder``); mypy then checks
an encoder against the contract.  At run time :func:`encoder_problem` checks an object and returns
one line saying what is wrong, or ``None``.

This module imports nothing heavy (no numpy, torch or mteb at run time): ``lam_mteb`` is imported
at every interpreter start by the start-up hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import argparse

    import numpy.typing as npt
    from mteb.abstasks import AbsTask

    #: what ``encode`` returns: a numpy array, a torch tensor or nested lists, shape (n, dim)
    Embeddings = npt.ArrayLike
else:
    Embeddings = Any

__all__ = [
    "DatasetBuilder",
    "DocumentEncoder",
    "Embeddings",
    "Encoder",
    "EncoderFactory",
    "QueryEncoder",
    "RegisterBenchmark",
    "RegisterDataset",
    "RegisterEncoder",
    "RegisterTask",
    "RetrievalEncoder",
    "SearchModel",
    "SubParsers",
    "accepts_param",
    "encode_method",
    "encode_texts",
    "encoder_problem",
    "is_search_model",
]


@runtime_checkable
class Encoder(Protocol):
    """What a registered factory returns: ``encode(texts, **kwargs) -> (len(texts), dim)``.

    ``encode`` is called with the texts as its one positional argument; it also receives
    ``batch_size`` and ``show_progress_bar``, and ``prompt_type`` (``"query"``, ``"document"`` or
    ``None``) and ``task_name``, each only when its signature accepts that name (or ``**kwargs``).
    So the protocol asks for the texts alone: ``encode(texts, *, batch_size=32)`` and
    ``encode(texts, **kwargs)`` both keep it.
    """

    def encode(self, texts: Sequence[str], /) -> Embeddings: ...


@runtime_checkable
class QueryEncoder(Protocol):
    """Optional: queries embedded differently from documents (used by retrieval tasks)."""

    def encode_queries(self, texts: Sequence[str], /) -> Embeddings: ...


@runtime_checkable
class DocumentEncoder(Protocol):
    """Optional: documents embedded differently from queries (used by retrieval tasks)."""

    def encode_documents(self, texts: Sequence[str], /) -> Embeddings: ...


@runtime_checkable
class RetrievalEncoder(Encoder, QueryEncoder, DocumentEncoder, Protocol):
    """An encoder with all three methods."""


@runtime_checkable
class SearchModel(Protocol):
    """A model that retrieves by itself (mteb's ``SearchProtocol``, e.g. mteb's BM25): ``index``
    and ``search``, no ``encode``; the bridge hands it to mteb unchanged (retrieval tasks only)."""

    def index(self, *args: Any, **kwargs: Any) -> Any: ...

    def search(self, *args: Any, **kwargs: Any) -> Any: ...


#: ``register(name, factory, **metadata)``: ``factory(**params)`` returns an :class:`Encoder` (or a
#: :class:`SearchModel`)
EncoderFactory = Callable[..., Encoder | SearchModel]


class RegisterEncoder(Protocol):
    """The ``register`` callable handed to ``register_encoders``."""

    def __call__(self, name: str, factory: EncoderFactory, **metadata: Any) -> None: ...


class RegisterTask(Protocol):
    """The ``register`` callable handed to ``register_tasks``."""

    def __call__(self, task_class: type[AbsTask], *, self_loading: bool = False) -> None: ...


class DatasetBuilder(Protocol):
    """``builder(source_dir, target_dir)`` writes an offline copy of a dataset from raw files."""

    def __call__(self, source_dir: Path, target_dir: Path) -> None: ...


class RegisterDataset(Protocol):
    """The ``register`` callable handed to ``register_datasets``."""

    def __call__(
        self,
        dataset_path: str,
        builder: DatasetBuilder,
        *,
        inputs: Sequence[str] | None = None,
        description: str = "",
        recreation: bool = False,
        version: str = "1",
    ) -> None: ...


class RegisterBenchmark(Protocol):
    """The ``register`` callable handed to ``register_benchmarks``."""

    def __call__(
        self,
        key: str,
        title: str,
        tasks: Sequence[str],
        *,
        extra_tasks: Sequence[str] = (),
        prefix: str | None = None,
        prefix_ranked: bool = False,
        position: int = 100,
        description: str = "",
        abbreviations: dict[str, str] | None = None,
        detail_metrics: Sequence[tuple[str, str, str]] = (),
        recreations: dict[str, str] | None = None,
    ) -> None: ...


if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
    #: what ``ArgumentParser.add_argument_group`` returns
    ArgumentGroup = argparse._ArgumentGroup
else:
    SubParsers = Any
    ArgumentGroup = Any


# -- run-time check ------------------------------------------------------------------------------

_METHODS = ("encode", "encode_queries", "encode_documents")


def _call_problem(fn: Any) -> str | None:
    """Why ``fn(texts)`` cannot be called with one positional argument, or None."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # builtins / C extensions: cannot tell, assume it works
    try:
        sig.bind(["text"])
    except TypeError as exc:
        return f"cannot be called as fn(texts): {exc}"
    return None


def encoder_problem(obj: object) -> str | None:
    """One line saying how ``obj`` breaks the :class:`Encoder` contract, or ``None`` if it keeps it.

    Checks what can be checked without encoding: the object is an instance (not a class or
    ``None``), has a callable ``encode`` that takes the texts as one positional argument, and any
    ``encode_queries`` / ``encode_documents`` it defines are callable the same way.
    """
    what = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if obj is None:
        return "the factory returned None; it must return an object with encode(texts, **kwargs)"
    if isinstance(obj, type):
        return (
            f"the factory returned the class {obj.__qualname__}, not an instance; "
            "register a factory that returns an encoder object"
        )
    if not isinstance(obj, Encoder):
        return f"{what} has no encode(texts) method"
    for name in _METHODS:
        fn = getattr(obj, name, None)
        if fn is None:  # optional method set to None (a None encode fails the isinstance above)
            continue
        if not callable(fn):
            return (
                f"{what}.{name} is not callable (type {type(fn).__name__}); "
                f"it must be a method {name}(texts, **kwargs)"
            )
        problem = _call_problem(fn)
        if problem:
            return f"{what}.{name} {problem}"
    return None


def is_search_model(obj: object) -> bool:
    """A :class:`SearchModel`: ``index`` and ``search``, and no ``encode`` (handed to mteb as it
    is)."""
    return (
        callable(getattr(obj, "index", None))
        and callable(getattr(obj, "search", None))
        and not callable(getattr(obj, "encode", None))
    )


def encode_method(encoder: Encoder, prompt_type: str | None) -> Callable[..., Embeddings]:
    """The method that embeds texts of ``prompt_type``: ``encode_queries`` for ``"query"`` and
    ``encode_documents`` for ``"document"`` when the encoder defines them, else ``encode``."""
    if prompt_type == "query" and isinstance(encoder, QueryEncoder):
        return encoder.encode_queries
    if prompt_type == "document" and isinstance(encoder, DocumentEncoder):
        return encoder.encode_documents
    return encoder.encode


def accepts_param(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes the keyword ``name`` (by name or through ``**kwargs``); False when its
    signature cannot be read (then only what every callable takes is passed)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def encode_texts(
    encoder: Encoder, texts: Sequence[str], *, prompt_type: str | None = None, **keywords: Any
) -> Embeddings:
    """Embed ``texts`` the way the bridge does, for code that calls an encoder it did not write (a
    wrapper, a trainer): :func:`encode_method` for ``prompt_type``, and ``prompt_type`` and each
    keyword only where that method's signature names it (or has ``**kwargs``)."""
    fn = encode_method(encoder, prompt_type)
    given = {**keywords, "prompt_type": prompt_type}
    return fn(texts, **{k: v for k, v in given.items() if accepts_param(fn, k)})
