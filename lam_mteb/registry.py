"""Plugin registrations + registry.yaml files -> named models, tasks and dataset builders.

An *encoder kind* is what a plugin registers with ``register(name, factory, **metadata)``; it is
also a model of the same name with the kind's default parameters.  ``registry.yaml`` files add
named *configurations* of those kinds (other params or weights).  Everything is validated: an
unknown key, a missing field, an unknown kind or a duplicate name is one error naming file:line.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lam_mteb.benchmark import BENCHMARK_OPTIONS, Benchmark
from lam_mteb.contract import accepts_param, encoder_problem, is_search_model
from lam_mteb.errors import LamMtebError
from lam_mteb.hashing import content_hash
from lam_mteb.inputs import check_name, did_you_mean, load_yaml_with_lines

if TYPE_CHECKING:
    from mteb.abstasks import AbsTask
    from mteb.models.model_meta import ModelMeta

DEFAULT_ORG = "lam-mteb"

#: ``register(name, factory, **kwargs)`` keys that are not mteb ModelMeta fields
REGISTER_KEYS = {"params", "revision", "org", "description", "configure"}
#: ModelMeta fields lam-mteb sets itself (every other one is a model's metadata)
_META_SET_BY_LAM = {"loader", "loader_kwargs", "name", "revision"}
#: what a model's ModelMeta holds unless its metadata says otherwise (ModelMeta requires them)
META_DEFAULTS: dict[str, Any] = {
    "open_weights": True,
    "framework": ["PyTorch"],
    "similarity_fn_name": "cosine",
    "use_instructions": False,
}


def metadata_keys() -> set[str]:
    """The metadata keys a plugin or registry entry may set: mteb's ModelMeta fields, less those
    lam-mteb sets itself.  (Imports mteb: called only once the registry is built.)"""
    from mteb.models.model_meta import ModelMeta

    return set(ModelMeta.model_fields) - _META_SET_BY_LAM


def model_meta(metadata: dict[str, Any], **fields: Any) -> ModelMeta:
    """mteb's ModelMeta of ``metadata`` (over :data:`META_DEFAULTS`) plus ``fields`` (loader,
    name, revision); pydantic's ValidationError if a value is invalid."""
    from mteb.models.model_meta import ModelMeta

    required = {n: None for n, f in ModelMeta.model_fields.items() if f.is_required()}
    return ModelMeta(**{**required, **META_DEFAULTS, **metadata, **fields})


def metadata_problem(metadata: dict[str, Any]) -> tuple[str | None, str] | None:
    """The first key of ``metadata`` that mteb's ModelMeta refuses and why (one line), or None."""
    try:
        allowed = metadata_keys()
    except ImportError:  # without mteb nothing reads the metadata (see plugins._import_mteb)
        return None
    unknown = [k for k in metadata if k not in allowed]
    if unknown:
        return unknown[0], (
            f"unknown metadata key(s) {', '.join(map(repr, unknown))}; "
            f"allowed (mteb ModelMeta fields): {', '.join(sorted(allowed))}"
        )
    try:
        model_meta(metadata, loader=None, name=f"{DEFAULT_ORG}/check", revision="check")
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else None
        return key, f"invalid metadata {key or 'value'}: {_pydantic_message(err)}"
    return None


@dataclass
class EncoderKind:
    name: str
    factory: Callable[..., Any]
    plugin: str
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    revision: str | Callable[[dict], str] | None = None
    org: str = DEFAULT_ORG
    description: str = ""
    # configure(params, lookup) -> dict: validates a configuration's params and derives metadata
    # (ModelMeta fields, and optionally "revision") from them; see hookspecs.register_encoders
    configure: Callable[[dict, Callable[[str], ModelInfo]], dict] | None = None
    code_version: str = ""  # the plugin's code version (PluginHost.code_version), for revisions


@dataclass(frozen=True)
class ModelInfo:
    """What ``configure``'s ``lookup(name)`` returns about another registered model."""

    name: str
    full_name: str
    kind: str
    revision: str
    metadata: dict
    source: str


@dataclass
class ModelConfig:
    """A named model: an encoder kind plus parameters (what mteb sees as one model)."""

    name: str
    kind: EncoderKind
    params: dict[str, Any]
    metadata: dict[str, Any]
    source: str  # "plugin <name>" or "<file>:<line>"
    org: str = DEFAULT_ORG
    description: str = ""
    revision_override: str | None = None
    derived_revision: str | None = None  # from the kind's configure(), when it returns "revision"

    @property
    def full_name(self) -> str:
        return f"{self.org}/{self.name}"

    @property
    def embed_dim(self) -> int | None:
        return self.metadata.get("embed_dim")

    @property
    def revision(self) -> str:
        """The model revision (a folder name in mteb's results layout, so validated as a name)."""
        if self.revision_override:
            value = self.revision_override
        elif self.derived_revision:
            value = self.derived_revision
        elif callable(self.kind.revision):
            value = str(self.kind.revision(dict(self.params)))
        elif isinstance(self.kind.revision, str) and not self._has_path_params():
            value = self.kind.revision
        else:
            return default_revision(
                self.kind.name, self.params, self.kind.plugin, self.kind.code_version
            )
        problem = check_name(value, "revision")
        if problem:
            raise LamMtebError(f"model {self.name!r} ({self.source}): {problem}")
        return value

    def model_meta(self, loader: Callable[..., Any] | None) -> ModelMeta:
        """This model's mteb ModelMeta (its metadata is validated as the registry is built)."""
        return model_meta(self.metadata, loader=loader, name=self.full_name, revision=self.revision)

    def _has_path_params(self) -> bool:
        return any(isinstance(v, str) and Path(v).exists() for v in self.params.values())

    def build(self, **overrides: Any) -> Any:
        """What the kind's factory returns for this configuration's params (plus overrides),
        unchecked (``lam-mteb check`` reports the contract itself)."""
        params = {**self.params, **overrides}
        problem = unknown_params(self.kind, params)
        if problem:
            raise LamMtebError(f"model {self.name!r} ({self.source}): {problem}")
        return self.kind.factory(**params)

    def create(self, **overrides: Any) -> Any:
        """Instantiate the encoder with this configuration's params (plus overrides) and check it
        against the contract: a None, a class or an object without ``encode(texts)`` is one error
        naming the plugin, not an AttributeError inside mteb."""
        obj = self.build(**overrides)
        problem = None if is_search_model(obj) else encoder_problem(obj)
        if problem:
            raise LamMtebError(
                f"model {self.name!r} (kind {self.kind.name!r} of plugin {self.kind.plugin!r}): "
                f"{problem}"
            )
        return obj


def _accepted_params(factory: Callable[..., Any]) -> set[str] | None:
    """Names a factory accepts, or None when it takes **kwargs."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.add(p.name)
    names.discard("self")
    return names


def unknown_params(kind: EncoderKind, params: dict[str, Any]) -> str | None:
    """Which of ``params`` the kind's factory does not take (one line), or None."""
    accepted = _accepted_params(kind.factory)
    unknown = sorted(set(params) - accepted) if accepted is not None else []
    if not unknown:
        return None
    return (
        f"encoder kind {kind.name!r} does not accept parameter(s) {', '.join(unknown)} "
        f"(accepts: {', '.join(sorted(accepted or ())) or 'none'})"
    )


def _fingerprint_path(path: Path) -> list | str:
    """Content hash of a weights file/folder (same bytes, same revision: ``cp -p`` of other weights
    changes it); a folder of more than 200 files falls back to names, sizes and mtimes."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if len(files) <= 200:
        return content_hash([path])
    return [
        (str(p.relative_to(path)), p.stat().st_size, int(p.stat().st_mtime)) for p in files[:200]
    ]


def default_revision(kind: str, params: dict, plugin: str, code_version: str) -> str:
    """Hash of kind, params, lam-mteb's version, the plugin's code version (its package version,
    or a folder plugin's file hash) and the content hash of path params (weights)."""
    try:
        version = importlib_metadata.version("lam-mteb")
    except importlib_metadata.PackageNotFoundError:
        version = "0"
    version = f"{version}+{code_version}"
    paths = {
        k: _fingerprint_path(Path(v))
        for k, v in params.items()
        if isinstance(v, str) and v and Path(v).exists()
    }
    blob = json.dumps(
        {"kind": kind, "params": params, "plugin": plugin, "version": version, "paths": paths},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class TaskEntry:
    cls: type[AbsTask]
    plugin: str
    self_loading: bool = False  # the task reads LAM_MTEB_DATA_DIR itself: load_data is not wrapped

    @property
    def name(self) -> str:
        return self.cls.metadata.name


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset builder as a plugin registered it (``register_datasets``)."""

    path: str  # the mteb dataset path it provides, e.g. "mteb/scifact"
    builder: Callable[[Path, Path], None]  # builder(source_dir, target_dir)
    plugin: str
    #: the folders (relative to the data dir) the builder reads: their content hash names the
    #: cached build and is the results' dataset revision; None = the whole data dir
    inputs: tuple[str, ...] | None = None
    description: str = ""
    recreation: bool = False
    version: str = "1"


class Registry:
    def __init__(self) -> None:
        self.kinds: dict[str, EncoderKind] = {}
        self.models: dict[str, ModelConfig] = {}
        self.tasks: dict[str, TaskEntry] = {}
        self.datasets: dict[str, DatasetEntry] = {}
        self.benchmarks: dict[str, Benchmark] = {}
        self.errors: list[str] = []

    # -- lookups ---------------------------------------------------------------------------
    def model(self, name: str) -> ModelConfig:
        if name in self.models:
            return self.models[name]
        for cfg in self.models.values():
            if cfg.full_name == name:
                return cfg
        candidates = list(self.models) + [c.full_name for c in self.models.values()]
        hint = did_you_mean(name, candidates)
        raise LamMtebError(f"unknown model {name!r}{hint} (`lam-mteb models` lists them)")


def builtin_registry_file() -> Path | None:
    """The repository's registry.yaml (source checkout) or the copy shipped inside the wheel."""
    source = Path(__file__).resolve().parent.parent / "registry.yaml"
    if source.is_file():
        return source
    try:
        shipped = resources.files("lam_mteb") / "registry.yaml"
        if shipped.is_file():
            return Path(str(shipped))
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    return None


def registry_files() -> list[Path]:
    files = []
    builtin = builtin_registry_file()
    if builtin and not os.environ.get("LAM_MTEB_NO_BUILTIN_REGISTRY"):
        files.append(builtin)
    for item in os.environ.get("LAM_MTEB_REGISTRY", "").split(os.pathsep):
        if item.strip():
            files.append(Path(item.strip()).expanduser())
    return files


class PluginSource(Protocol):
    """What building a registry needs from the plugin host
    (:class:`lam_mteb.plugins.PluginHost`)."""

    def call_hook(
        self, hook_name: str, make_arg: Callable[[str], Any]
    ) -> Iterator[tuple[str, Any]]: ...

    def report(self, message: str) -> None: ...

    def source_of(self, name: str) -> str: ...

    def code_version(self, name: str) -> str: ...


def build_registry(plugins: PluginSource) -> Registry:
    """Collect every plugin's encoders, tasks and dataset builders, then the registry files.

    A plugin's registrations are kept only if its whole hook succeeded; every configuration error
    is reported (one line) and recorded in ``Registry.errors``, and its entry skipped.
    """
    reg = Registry()
    files = registry_files()
    builtin = _read_builtin(files)
    _collect_encoders(reg, plugins, {e.name: f"{files[0]}:{line}" for e, line in builtin or ()})
    retry = []  # a kind's default may name a registry.yaml model (chunked's `minilm`): try again
    for name in [n for n, cfg in reg.models.items() if cfg.kind.configure is not None]:
        try:
            apply_configure(reg, reg.models[name])
        except LamMtebError:
            retry.append(reg.models.pop(name))
    _collect_tasks(reg, plugins)
    _collect_datasets(reg, plugins)
    _collect_benchmarks(reg, plugins)
    for i, path in enumerate(files):
        try:
            entries = builtin if i == 0 and builtin is not None else _read_registry_doc(path)
            _load_entries(path, entries, reg)
        except LamMtebError as exc:
            _record_error(reg, plugins, exc)
    for config in retry:
        try:
            apply_configure(reg, config)
        except LamMtebError as exc:
            _record_error(reg, plugins, exc)
        else:
            reg.models.setdefault(config.name, config)
    return reg


def _read_builtin(files: list[Path]) -> list[tuple[_Entry, int]] | None:
    """The built-in registry.yaml's entries when it is among ``files`` and valid (its names are
    owned: no plugin encoder may take them), else None (a problem is reported as it loads)."""
    if not files or files[0] != builtin_registry_file():
        return None
    try:
        return _read_registry_doc(files[0])
    except LamMtebError:
        return None


def _record_error(reg: Registry, plugins: PluginSource, exc: LamMtebError) -> None:
    reg.errors.append(str(exc))
    plugins.report(str(exc))


class _EncoderStage:
    """The ``register`` callable handed to one plugin's ``register_encoders``: validates and
    stages."""

    def __init__(self, plugin: str, code_version: str) -> None:
        self.plugin, self.code_version = plugin, code_version
        self.staged: list[EncoderKind] = []

    def __call__(self, name: str, factory: Callable[..., Any], **metadata: Any) -> None:
        problem = check_name(name, "encoder name")
        if problem:
            raise ValueError(problem)
        if not callable(factory):
            raise TypeError(f"factory for {name!r} is not callable")
        meta = {k: v for k, v in metadata.items() if k not in REGISTER_KEYS}
        problem_of_meta = metadata_problem(meta)
        if problem_of_meta:
            raise TypeError(f"register({name!r}): {problem_of_meta[1]}")
        if any(k.name == name for k in self.staged):
            raise ValueError(f"encoder {name!r} is registered twice")
        org_problem = metadata.get("org") is not None and check_name(metadata["org"], "org")
        if org_problem:
            raise ValueError(org_problem)
        configure = metadata.get("configure")
        if configure is not None and not callable(configure):
            raise TypeError(
                f"register({name!r}): configure must be callable(params, lookup) -> dict"
            )
        self.staged.append(
            EncoderKind(
                name=name,
                factory=factory,
                plugin=self.plugin,
                params=dict(metadata.get("params") or {}),
                metadata=meta,
                revision=metadata.get("revision"),
                org=metadata.get("org") or DEFAULT_ORG,
                description=metadata.get("description")
                or (inspect.getdoc(factory) or "").split("\n")[0],
                configure=configure,
                code_version=self.code_version,
            )
        )


def _collect_encoders(reg: Registry, plugins: PluginSource, owned: dict[str, str]) -> None:
    """Every plugin's encoder kinds (each also a model of its name); ``owned``: names the built-in
    registry.yaml defines (name -> ``file:line``), which no plugin encoder may take."""

    def make_stage(plugin_name: str) -> _EncoderStage:
        return _EncoderStage(plugin_name, plugins.code_version(plugin_name))

    for plugin_name, stage in plugins.call_hook("register_encoders", make_stage):
        for kind in stage.staged:
            if kind.name in owned:
                plugins.report(
                    f"plugin {plugin_name!r} ({plugins.source_of(plugin_name)}) registers encoder "
                    f"{kind.name!r}, which the built-in registry ({owned[kind.name]}) already "
                    f"owns; {plugin_name!r}'s encoder skipped (rename it)"
                )
                continue
            if not _claim(reg.kinds, kind.name, kind, plugins, "encoder"):
                continue
            reg.models[kind.name] = ModelConfig(
                name=kind.name,
                kind=kind,
                params=dict(kind.params),
                metadata=dict(kind.metadata),
                source=f"plugin {plugin_name}",
                org=kind.org,
                description=kind.description,
            )


class _TaskStage:
    """The ``register`` callable handed to one plugin's ``register_tasks``."""

    def __init__(self) -> None:
        self.staged: list[tuple[type[AbsTask], bool]] = []

    def __call__(self, task_class: type, *, self_loading: bool | None = None) -> None:
        from mteb.abstasks import AbsTask

        if not (isinstance(task_class, type) and issubclass(task_class, AbsTask)):
            raise TypeError(f"register_tasks: {task_class!r} is not an mteb AbsTask subclass")
        if self_loading is None:
            self_loading = _legacy_self_loading(task_class)
        self.staged.append((task_class, bool(self_loading)))


def _collect_tasks(reg: Registry, plugins: PluginSource) -> None:
    for plugin_name, stage in plugins.call_hook("register_tasks", lambda _: _TaskStage()):
        for cls, self_loading in stage.staged:
            owner = reg.tasks.get(cls.metadata.name)
            if owner is not None and owner.cls is cls:  # the same class again: the first stays
                continue
            entry = TaskEntry(cls=cls, plugin=plugin_name, self_loading=self_loading)
            _claim(reg.tasks, cls.metadata.name, entry, plugins, "task")


def _legacy_self_loading(task_class: type) -> bool:
    """The class attribute ``lam_mteb_self_loading`` (deprecated; removed in the next release)."""
    if not getattr(task_class, "lam_mteb_self_loading", False):
        return False
    warnings.warn(
        f"{task_class.__name__}.lam_mteb_self_loading is deprecated; register the task with "
        "register(TaskClass, self_loading=True)",
        DeprecationWarning,
        stacklevel=3,
    )
    return True


class _DatasetStage:
    """The ``register`` callable handed to one plugin's ``register_datasets``."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.staged: list[DatasetEntry] = []

    def __call__(
        self,
        dataset_path: str,
        builder: Callable[[Path, Path], None],
        *,
        inputs: Sequence[str] | None = None,
        description: str = "",
        recreation: bool = False,
        version: str = "1",
    ) -> None:
        if not callable(builder):
            raise TypeError(f"register_datasets: builder for {dataset_path!r} is not callable")
        if isinstance(inputs, str):
            raise TypeError(
                f"register_datasets: inputs for {dataset_path!r} must be a sequence "
                f"of folder names, not the string {inputs!r}"
            )
        for rel in inputs or ():
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ValueError(
                    f"register_datasets: input {rel!r} of {dataset_path!r} must be a "
                    "path relative to the data directory"
                )
        self.staged.append(
            DatasetEntry(
                path=dataset_path,
                builder=builder,
                plugin=self.plugin,
                inputs=None if inputs is None else tuple(str(rel) for rel in inputs),
                description=description,
                recreation=bool(recreation),
                version=str(version),
            )
        )


def _collect_datasets(reg: Registry, plugins: PluginSource) -> None:
    for _plugin, stage in plugins.call_hook("register_datasets", _DatasetStage):
        for entry in stage.staged:
            _claim(reg.datasets, entry.path, entry, plugins, "dataset builder")


class _BenchmarkStage:
    """The ``register`` callable handed to one plugin's ``register_benchmarks``."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.staged: list[Benchmark] = []

    def __call__(self, key: str, title: str, tasks: Sequence[str], **options: Any) -> None:
        problem = check_name(key, "benchmark key")
        if problem:
            raise ValueError(problem)
        if isinstance(tasks, str) or not all(isinstance(t, str) for t in tasks):
            raise TypeError(f"register_benchmarks({key!r}): tasks must be a sequence of task names")
        unknown = sorted(set(options) - BENCHMARK_OPTIONS)
        if unknown:
            raise TypeError(
                f"register_benchmarks({key!r}): unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(BENCHMARK_OPTIONS))}"
            )
        self.staged.append(
            Benchmark(
                key=key,
                title=str(title),
                tasks=tuple(tasks),
                plugin=self.plugin,
                extra_tasks=tuple(options.get("extra_tasks", ())),
                prefix=options.get("prefix"),
                prefix_ranked=bool(options.get("prefix_ranked", False)),
                position=int(options.get("position", 100)),
                description=str(options.get("description", "")),
                abbreviations=dict(options.get("abbreviations") or {}),
                detail_metrics=tuple(tuple(m) for m in options.get("detail_metrics", ())),
                recreations=dict(options.get("recreations") or {}),
            )
        )


def _collect_benchmarks(reg: Registry, plugins: PluginSource) -> None:
    for _plugin, stage in plugins.call_hook("register_benchmarks", _BenchmarkStage):
        for bench in stage.staged:
            _claim(reg.benchmarks, bench.key, bench, plugins, "benchmark")


class _Owned(Protocol):
    plugin: str


def _claim(
    table: dict[str, Any], name: str, item: _Owned, plugins: PluginSource, what: str
) -> bool:
    """Add ``item`` under ``name`` unless another plugin owns that name already (plugins are
    called owners first, so the first registration wins); a refused one is reported."""
    owner = table.get(name)
    if owner is not None:
        _refuse_clash(plugins, item.plugin, what, name, owner.plugin)
        return False
    table[name] = item
    return True


def _refuse_clash(plugins: PluginSource, newcomer: str, what: str, name: str, owner: str) -> None:
    plugins.report(
        f"plugin {newcomer!r} ({plugins.source_of(newcomer)}) registers {what} {name!r}, which "
        f"{owner!r} ({plugins.source_of(owner)}) already owns; {newcomer!r}'s {what} skipped "
        "(rename it; to replace a model on purpose, add a registry.yaml entry with `override: "
        "true`)"
    )


# -- registry.yaml ---------------------------------------------------------------------------


class _Entry(BaseModel):
    """One ``models:`` entry of a registry file."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    kind: str = Field(min_length=1)
    description: str = ""
    org: str | None = None
    params: dict[str, Any] = {}
    revision: str | None = None
    override: bool = False
    metadata: dict[str, Any] = {}  # checked against mteb's ModelMeta (metadata_problem)

    @field_validator("name", "org", "revision")
    @classmethod
    def _safe_name(cls, value: str | None, info: Any) -> str | None:
        problem = value is not None and check_name(value, info.field_name)
        if problem:
            raise ValueError(problem)  # a folder name in mteb's results layout
        return value


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    models: list[_Entry]


MAX_REGISTRY_BYTES = 1024 * 1024


def load_registry_file(path: Path, reg: Registry) -> None:
    """Add the configurations of a registry.yaml file to ``reg`` (the first problem raises)."""
    path = Path(path)
    _load_entries(path, _read_registry_doc(path), reg)


def _load_entries(path: Path, entries: list[tuple[_Entry, int]], reg: Registry) -> None:
    for entry, line in entries:
        config = _config_from_entry(entry, path, line, reg)
        reg.models[config.name] = config


def _read_registry_doc(path: Path) -> list[tuple[_Entry, int]]:
    """A registry file's entries and their lines, validated (:class:`_Entry`, mteb's ModelMeta for
    ``metadata``); the first problem in file order is one error naming ``file:line``."""
    if not path.is_file():
        raise LamMtebError(f"{path}: registry file not found (check LAM_MTEB_REGISTRY)")
    try:
        doc, lines = load_yaml_with_lines(path, what="registry file", limit=MAX_REGISTRY_BYTES)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LamMtebError(f"{path}:{line}: invalid YAML: {problem}") from None
    problems: list[tuple[tuple[Any, ...], str]] = []
    entries: list[_Entry] = []
    try:
        entries = _RegistryFile.model_validate({"models": []} if doc is None else doc).models
    except ValidationError as exc:
        # on one line, an unknown key (a typo) says more than the missing one it stands for
        errors = sorted(exc.errors(), key=lambda err: err["type"] == "missing")
        problems = [(err["loc"], _pydantic_message(err)) for err in errors]
    for i, entry in enumerate(entries):
        found = metadata_problem(entry.metadata)
        if found:
            problems.append((("models", i, "metadata", found[0]), found[1]))
    if problems:

        def line_of(loc: tuple[Any, ...]) -> int:
            return next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), 1)

        loc, message = min(problems, key=lambda p: line_of(p[0]))
        where = "/".join(str(p) for p in loc if p is not None) or "top level"
        raise LamMtebError(f"{path}:{line_of(loc)}: {message} (at {where})")
    return [(entry, lines.get(("models", i), 1)) for i, entry in enumerate(entries)]


def _pydantic_message(err: Any) -> str:
    """One line for a pydantic error (``err`` of ``ValidationError.errors()``)."""
    loc = err["loc"]
    if err["type"] == "extra_forbidden":
        model = _Entry if len(loc) > 1 else _RegistryFile
        return f"unknown key {loc[-1]!r}; allowed keys: {', '.join(model.model_fields)}"
    if err["type"] == "missing":
        return f"{loc[-1]!r} is missing (required)"
    if err["type"] == "value_error":
        return str(err["ctx"]["error"]).splitlines()[0]
    got = repr(err["input"])
    got = got if len(got) <= 80 else got[:77] + "..."
    if err["type"] == "model_type":  # pydantic would name the model class
        return f"expected a mapping (key: value), got {got}"
    return f"{err['msg']}, got {got}"


def _config_from_entry(entry: _Entry, path: Path, line: int, reg: Registry) -> ModelConfig:
    """One validated ``models:`` entry -> its configuration (kind known, name free or
    overridden, params accepted, ``configure`` applied)."""
    name, kind_name = entry.name, entry.kind
    if kind_name not in reg.kinds:
        hint = did_you_mean(kind_name, reg.kinds)
        known = ", ".join(sorted(reg.kinds)) or "none (no encoder plugin loaded)"
        raise LamMtebError(
            f"{path}:{line}: model {name!r} has unknown encoder kind {kind_name!r}{hint} "
            f"(registered kinds: {known})"
        )
    if name in reg.models and not entry.override:
        raise LamMtebError(
            f"{path}:{line}: duplicate model name {name!r} (already defined by "
            f"{reg.models[name].source}); "
            "choose another name, or add `override: true` to this entry to replace it"
        )
    kind = reg.kinds[kind_name]
    params = {**kind.params, **_resolve_paths(entry.params, path.parent)}
    problem = unknown_params(kind, params)
    if problem:
        raise LamMtebError(f"{path}:{line}: model {name!r}: {problem}")
    config = ModelConfig(
        name=name,
        kind=kind,
        params=params,
        metadata={**kind.metadata, **entry.metadata},
        source=f"{path}:{line}",
        org=entry.org or kind.org,
        description=entry.description or kind.description,
        revision_override=entry.revision,
    )
    if kind.configure is not None:
        apply_configure(reg, config, explicit_metadata=dict(entry.metadata))
    return config


def apply_configure(
    reg: Registry, config: ModelConfig, explicit_metadata: dict | None = None
) -> None:
    """Run the kind's ``configure(params, lookup)``: validate params, derive metadata and revision.

    A ``configure`` whose signature names ``metadata`` also gets the entry's declared ``metadata``
    (to refuse a value that contradicts the model's files).  Derived metadata sits between the
    kind's and the registry entry's own ``metadata`` (which wins).
    Any error is one LamMtebError naming the configuration's source (``file:line`` for
    registry.yaml).
    """

    def lookup(other: str) -> ModelInfo:
        if other == config.name or other == config.full_name:
            raise LamMtebError(f"model {other!r} cannot refer to itself")
        cfg = reg.model(other)
        return ModelInfo(
            name=cfg.name,
            full_name=cfg.full_name,
            kind=cfg.kind.name,
            revision=cfg.revision,
            metadata=dict(cfg.metadata),
            source=cfg.source,
        )

    configure = config.kind.configure
    if configure is None:
        return
    declared = {"metadata": dict(explicit_metadata or {})}
    try:
        derived = configure(
            dict(config.params),
            lookup,
            **(declared if accepts_param(configure, "metadata") else {}),
        )
        derived = derived or {}
        if not isinstance(derived, dict):
            raise TypeError(f"configure() returned {type(derived).__name__}, expected a dict")
        problem = metadata_problem({k: v for k, v in derived.items() if k != "revision"})
        if problem:
            raise TypeError(f"configure() returned {problem[1]}")
    except (LamMtebError, ValueError, TypeError, KeyError) as exc:
        raise LamMtebError(f"{config.source}: model {config.name!r}: {exc}") from None
    revision = derived.pop("revision", None)
    config.derived_revision = str(revision) if revision else None
    config.metadata = {**config.metadata, **derived, **(explicit_metadata or {})}


def _resolve_paths(params: dict, base: Path) -> dict:
    """``./x`` and ``../x`` relative to the registry file's folder, ``~`` expanded."""

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("~"):
            return str(Path(value).expanduser())
        if isinstance(value, str) and value.startswith(("./", "../")):
            return str((base / value).resolve())
        return value

    return {key: resolve(value) for key, value in params.items()}
