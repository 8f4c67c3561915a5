"""The lam-mteb hook contract.

Every hook receives a ``register`` callable (or, for commands, the argparse
sub-parsers).  A plugin implements any subset of them with ``@lam_mteb.hookimpl``.
The types of those callables and the ``Encoder`` protocol live in :mod:`lam_mteb.contract`.
"""

from __future__ import annotations

import pluggy

from lam_mteb.contract import (
    RegisterBenchmark,
    RegisterDataset,
    RegisterEncoder,
    RegisterTask,
    SubParsers,
)

__all__ = [
    "hookimpl",
    "hookspec",
    "register_benchmarks",
    "register_commands",
    "register_datasets",
    "register_encoders",
    "register_tasks",
]

hookspec = pluggy.HookspecMarker("lam_mteb")
hookimpl = pluggy.HookimplMarker("lam_mteb")


@hookspec
def register_encoders(register: RegisterEncoder) -> None:
    """Register encoders: ``register(name, factory, **metadata)``.

    ``factory(**params)`` returns an object with ``encode(texts, **kwargs) -> array (n, dim)``
    (optionally ``encode_queries`` / ``encode_documents`` for retrieval).  Metadata keys follow
    mteb's ``ModelMeta`` (embed_dim, max_tokens, n_parameters, license, ...); ``params`` gives the
    default factory parameters and ``revision`` (a string or ``callable(params) -> str``) the
    version recorded in results.  Each registered encoder is both an *encoder kind* that
    registry.yaml configurations refer to and a model of the same name.

    Keywords ``encode`` (and ``encode_queries`` / ``encode_documents``) may accept; each is passed
    only when the signature names it or has ``**kwargs``:

    - ``batch_size`` (int, default 32) and ``show_progress_bar`` (bool): always given;
    - ``prompt_type``: ``"query"``, ``"document"`` or ``None``; ``task_name``: the mteb task's name;
    - everything else in mteb's ``encode_kwargs`` (``mteb.evaluate(..., encode_kwargs={...})``,
      ``lam-mteb run --encode-kwargs JSON``), e.g. ``device``: one device or a *list* of devices
      for multi-process / multi-GPU encoding (``lam-mteb run --device cuda:0 cuda:1``), ``pool``
      (a sentence-transformers multi-process pool), ``chunk_size``, ``precision``.  An encoder
      that forwards ``**kwargs`` to a stricter function should pick the keys it understands.

    A factory that accepts ``device`` gets mteb's model device (``mteb.get_model(name,
    device=...)``).

    Optional, for kinds and encoders that need them:

    - ``configure=callable(params, lookup) -> dict``: called for every configuration of the kind
      (its default and each registry.yaml entry) when the registry loads; validates ``params``
      (raise ``ValueError`` -> one error naming the registry file and line) and returns ModelMeta
      fields derived from them (e.g. ``embed_dim`` of a wrapped model) and optionally
      ``"revision"``.  ``lookup(name)`` describes another registered model (``name``, ``full_name``,
      ``kind``, ``revision``, ``metadata``, ``source``) or raises for an unknown name.  A
      ``configure`` that takes a keyword ``metadata`` also gets the entry's declared metadata, so
      it can refuse a declared value that contradicts the one it derives (a ``ValueError``).
    - multi-vector encoders: ``encode`` may return a list with one ``(n_i, dim)`` array per text,
      provided the encoder defines ``similarity(a, b) -> (len(a), len(b))`` (and
      ``similarity_pairwise(a, b) -> (len(a),)``).  The bridge hands an encoder's own
      ``similarity`` / ``similarity_pairwise`` to mteb in place of the metadata's
      ``similarity_fn_name`` (this is how ``chunked`` with ``pool: max`` scores by MaxSim).
    - search models: a factory may return an object with mteb's ``SearchProtocol`` (``index`` and
      ``search``, no ``encode``, e.g. mteb's BM25); the bridge hands it to mteb unchanged, so it
      runs retrieval tasks only.
    - ``tokenizer`` (a Hugging Face ``tokenizers.Tokenizer`` or fast ``transformers`` tokenizer) and
      ``max_seq_length`` attributes let the ``chunked`` kind cut windows on the encoder's own tokens
      (sentence-transformers models are found through ``encoder.model``); without a tokenizer it
      cuts windows of words.
    """


@hookspec
def register_tasks(register: RegisterTask) -> None:
    """Register mteb tasks: ``register(task_class, *, self_loading=False)``.

    ``task_class`` is an ``mteb.AbsTask`` subclass.  By default lam-mteb wraps its ``load_data`` so
    that the dataset (``metadata.dataset["path"]``) is read from the data directory
    (``LAM_MTEB_DATA_DIR``) when a local copy or a registered builder provides it, and the result
    records the content address of the data loaded.  ``self_loading=True`` says the task reads the
    data directory itself: its ``load_data`` is left alone and its ``metadata.revision`` is the
    dataset revision of its results.  (The class attribute ``lam_mteb_self_loading = True`` still
    works for one release, with a DeprecationWarning.)
    """


@hookspec
def register_datasets(register: RegisterDataset) -> None:
    """Register offline builders for mteb datasets.

    ``register(dataset_path, builder, *, inputs=None, description="", recreation=False,
    version="1")``: ``builder(source_dir, target_dir)`` reads raw files under the data directory
    ``source_dir`` and writes a local copy of the Hugging Face dataset ``dataset_path`` (loadable
    with ``datasets.load_dataset(target_dir, config)``) into the empty ``target_dir``.  When the
    raw files are absent it raises ``lam_mteb.DataNotFound`` saying what it looked for.
    ``inputs`` names the folders (relative to the data directory) the builder reads, e.g.
    ``("scifact",)``: their content hash names the cached build and is recorded as the results'
    dataset revision (``()`` for a generator that reads nothing; ``None`` hashes the whole data
    directory).  ``recreation=True`` marks data that is a local re-creation, not a copy of the
    published set.
    """


@hookspec
def register_benchmarks(register: RegisterBenchmark) -> None:
    """Register benchmarks (groups of tasks) for ``lam-mteb leaderboard``: one table each.

    ``register(key, title, tasks, *, extra_tasks=(), prefix=None, prefix_ranked=False,
    position=100, description="", abbreviations=None, detail_metrics=(), recreations=None)``:
    ``tasks`` (mteb task names) are averaged and Borda-ranked over the rows that have all of them;
    ``extra_tasks`` are shown but not averaged or ranked; result tasks whose name starts with
    ``prefix`` join ``tasks`` (``prefix_ranked``) or ``extra_tasks``.  Tables appear by
    ``position``.  ``abbreviations`` maps task names to column labels; ``detail_metrics`` are
    ``(task, metric key, label)`` shown beside the main score; ``recreations`` maps a task to how
    its local re-creation was made and checked against the published set (the table's first
    sentence, for results that ran on re-created data).
    The plugin that owns a benchmark's tasks registers it; ``key`` is what
    ``leaderboard/references.yaml`` names in ``summaries`` / ``benchmarks``.
    """


@hookspec
def register_commands(subparsers: SubParsers) -> None:
    """Add sub-commands to the ``lam-mteb`` CLI.

    ``subparsers`` are argparse sub-parsers; give each parser ``set_defaults(func=...)``.
    """
