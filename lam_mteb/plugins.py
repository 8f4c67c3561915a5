"""The plugin host: the composition root.  One object owns the plugin manager, what is known
about each plugin, the registry built from the plugins' registrations, the offline data (its
file-hash index) and the bridge into mteb; it is handed to whoever needs them.

First-party plugins are declared as entry points of group ``lam_mteb`` in lam-mteb's own
``pyproject.toml``, so they load through exactly the same path as third-party packages.  Files in
the folder named by ``LAM_MTEB_PLUGINS_DIR`` are loaded too, one plugin per ``.py`` file.
A plugin that fails to import, or whose hook raises, is reported in one line naming it and
skipped; the others still load.

The core's own sub-commands (:mod:`lam_mteb.commands`) are a plugin registered here like any
other.  :data:`host` is this process's host, for entry points only (the start-up hook, the CLI,
``lam_mteb.get_encoder``, worker processes); nothing else in lam_mteb holds state at module level.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from lam_mteb import hookspecs
from lam_mteb.data import OfflineData
from lam_mteb.errors import LamMtebError
from lam_mteb.hashing import HashIndex
from lam_mteb.registry import Registry, build_registry

if TYPE_CHECKING:
    from lam_mteb.bridge import Bridge

ENTRY_POINT_GROUP = "lam_mteb"

#: what a plugin's import or hook may raise and still be only *that plugin's* failure: a plugin
#: calling sys.exit() or raising KeyboardInterrupt must not kill `import mteb` or the CLI
PLUGIN_FAILURES = (Exception, SystemExit, KeyboardInterrupt)


@dataclass
class PluginInfo:
    name: str
    source: str  # "entry point <dist>", "file <path>" or "registered"
    version: str | None = None
    error: str | None = None
    hooks: list[str] = field(default_factory=list)


CORE_PLUGIN = "lam-mteb"  # the core's sub-commands (lam_mteb.commands), a plugin like the others


class PluginHost:
    """The plugin manager, the loaded plugins' descriptions, the registry built from them, the
    offline data and the bridge into mteb."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("lam_mteb")
        self.pm.add_hookspecs(hookspecs)
        self._loaded = False
        self._infos: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None
        #: plugins whose hook imported a module that was itself still importing (it imported mteb,
        #: which ran the bridge): their registrations wait for the next build (see the bridge)
        self.waiting: set[str] = set()
        #: remembered file hashes behind the content addresses of data and weights
        self.hashes = HashIndex()
        self.data = OfflineData(lambda: self.registry().datasets, self.hashes)
        #: the model a grid job of this process loaded last (kept while the next job wants it)
        self.loaded_model: tuple[tuple, Any] | None = None

    @functools.cached_property
    def bridge(self) -> Bridge:
        """What this host registered with mteb (made on first use: it needs numpy and mteb)."""
        from lam_mteb.bridge import Bridge

        return Bridge(self)

    # -- problems ---------------------------------------------------------------------------------
    def report(self, message: str) -> None:
        """Print a plugin or configuration problem as one line on stderr."""
        sys.stderr.write(f"lam-mteb: {message}\n")

    # -- loading ----------------------------------------------------------------------------------
    def load(self) -> pluggy.PluginManager:
        """Load every plugin once (idempotent) and return the plugin manager."""
        if self._loaded:
            return self.pm
        _import_mteb()
        if self._loaded:  # importing mteb ran the bridge, which loaded the plugins through us
            return self.pm
        self._loaded = True
        from lam_mteb.commands import CoreCommands

        self._add(CoreCommands(self), CORE_PLUGIN, PluginInfo(CORE_PLUGIN, source="core"))
        if not os.environ.get("LAM_MTEB_NO_ENTRY_POINTS"):
            self._load_entry_points()
        folder = os.environ.get("LAM_MTEB_PLUGINS_DIR", "").strip()
        if folder:
            self.load_folder(Path(folder).expanduser())
        return self.pm

    def _load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                source=f"entry point {dist.name if dist else '?'}",
                version=dist.version if dist else None,
            )
            if self.pm.has_plugin(ep.name):
                continue
            try:
                module = ep.load()
            except PLUGIN_FAILURES as exc:  # a broken plugin must not take the others down
                self._failed_import(info, f"plugin {ep.name!r} ({ep.value})", exc)
                continue
            self._add(module, ep.name, info)

    def load_folder(self, folder: Path) -> None:
        """Load each ``.py`` file of ``folder`` as a plugin named by the file's stem."""
        if not folder.is_dir():
            self.report(
                f"LAM_MTEB_PLUGINS_DIR={folder} is not a directory; no folder plugins loaded"
            )
            return
        for path in sorted(folder.glob("*.py")):
            info = PluginInfo(name=path.stem, source=f"file {path}")
            if self.pm.has_plugin(path.stem):
                self.report(
                    f"plugin file {path} has the name of the already loaded plugin {path.stem!r} "
                    f"({self.source_of(path.stem)}); skipped (rename the file)"
                )
                continue
            try:
                module = _import_file(path, f"lam_mteb_dir_plugin_{path.stem}")
            except PLUGIN_FAILURES as exc:
                self._failed_import(info, f"plugin file {path}", exc)
                continue
            self._add(module, path.stem, info)
        self.invalidate()

    def _failed_import(self, info: PluginInfo, what: str, exc: BaseException) -> None:
        info.error = f"{type(exc).__name__}: {exc}"
        self._infos[info.name] = info
        self.report(f"{what} failed to import: {info.error}")

    def _add(self, module: object, name: str, info: PluginInfo) -> None:
        if self.pm.has_plugin(name) or self.pm.is_registered(module):
            return
        self.pm.register(module, name=name)
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        self._infos[name] = info

    def register_plugin(self, module: object, name: str) -> None:
        """Register an in-process plugin (tests, notebooks); it takes part in the next registry
        build."""
        self.load()
        self.pm.register(module, name=name)
        self._infos[name] = PluginInfo(name=name, source="registered")
        self.invalidate()

    def unregister_plugin(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        self._infos.pop(name, None)
        self.invalidate()

    # -- what is known about a plugin -----------------------------------------------------------
    def infos(self) -> list[PluginInfo]:
        self.load()
        return [self._infos[k] for k in sorted(self._infos)]

    def owner_rank(self, name: str) -> int:
        """Who owns a name first: the core, then entry-point plugins (first-party and installed
        packages), then plugins registered in-process, then files of LAM_MTEB_PLUGINS_DIR."""
        source = self._infos[name].source if name in self._infos else "registered"
        if source == "core":
            return -1
        return 0 if source.startswith("entry point") else 2 if source.startswith("file") else 1

    def source_of(self, name: str) -> str:
        if name in self._infos:
            return self._infos[name].source
        return "registered in-process"

    def code_version(self, name: str) -> str:
        """What identifies a plugin's code, for model revisions: ``<dist>==<version>`` for an
        installed package, the SHA-256 of the file for a plugin-folder file (editing it changes
        the revision)."""
        info = self._infos.get(name)
        if info is not None and info.source.startswith("file "):
            return _file_version(Path(info.source[5:]), default="file")
        if info is not None and info.source.startswith("entry point"):
            return f"{info.source.removeprefix('entry point ')}=={info.version}"
        module_file = getattr(self.pm.get_plugin(name), "__file__", None)
        if module_file and Path(module_file).is_file():
            return _file_version(Path(module_file), default="registered")
        return "registered"

    # -- calling hooks ----------------------------------------------------------------------------
    def call_hook(
        self, hook_name: str, make_arg: Callable[[str], Any]
    ) -> Iterator[tuple[str, Any]]:
        """Call ``hook_name`` through pluggy once per plugin, each call isolated; yield ``(plugin
        name, the argument it got)`` for each plugin whose hook returned.

        ``make_arg(plugin_name)`` makes the plugin's argument (e.g. a ``register`` callable that
        stages its registrations).  Each call goes through pluggy's hook caller restricted to that
        plugin plus every wrapper (``wrapper=True`` / ``hookwrapper=True``), so wrappers wrap each
        plugin's call.  Order: ``tryfirst`` implementations, then the others, then ``trylast``;
        within each, owners first (see :meth:`owner_rank`), then registration order.  A plugin
        whose call raises (SystemExit and KeyboardInterrupt included) is reported in one line
        naming it and contributes nothing; the others still run."""
        pm = self.load()
        caller = getattr(pm.hook, hook_name)
        argname = caller.spec.argnames[0] if caller.spec else "register"
        impls = caller.get_hookimpls()
        wrappers = {id(i.plugin) for i in impls if i.wrapper or i.hookwrapper}
        order = {id(plugin): n for n, (_, plugin) in enumerate(pm.list_name_plugin())}

        def rank(impl: pluggy.HookImpl) -> tuple[int, int, int]:
            first = 0 if impl.tryfirst else 2 if impl.trylast else 1
            return first, self.owner_rank(self._name_of(impl.plugin)), order[id(impl.plugin)]

        callees = sorted((i for i in impls if id(i.plugin) not in wrappers), key=rank)
        for impl in callees:
            plugin_name = self._name_of(impl.plugin)
            others = [i.plugin for i in callees if i.plugin is not impl.plugin]
            arg = make_arg(plugin_name)
            try:
                pm.subset_hook_caller(hook_name, remove_plugins=others)(**{argname: arg})
            except ImportError as exc:
                if not _still_importing(exc):
                    self.report(f"plugin {plugin_name!r} failed in {hook_name}: ImportError: {exc}")
                else:
                    self.waiting.add(plugin_name)
                continue
            except PLUGIN_FAILURES as exc:
                self.report(
                    f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
                )
                continue
            yield plugin_name, arg

    def _name_of(self, plugin: object) -> str:
        return self.pm.get_name(plugin) or str(getattr(plugin, "__name__", repr(plugin)))

    # -- the registry -----------------------------------------------------------------------------
    def registry(self, strict: bool = False) -> Registry:
        """The registry built (once, until :meth:`invalidate`) from every plugin and registry file.

        Configuration errors are reported on stderr when it is built (one line each) and their
        entries skipped; with ``strict`` any such error also raises one LamMtebError.
        """
        if self._registry is None:
            self.load()  # may build it: importing mteb runs the bridge, which asks for it
        if self._registry is None:
            self.waiting.clear()
            self._registry = build_registry(self)
        if strict and self._registry.errors:
            count = len(self._registry.errors)
            what = "1 problem" if count == 1 else f"{count} problems"
            raise LamMtebError(
                f"{what} in plugins or registry files, reported above; fix and run again"
            )
        return self._registry

    def invalidate(self) -> None:
        """Forget the registry: the next :meth:`registry` call rebuilds it."""
        self._registry = None


def _still_importing(exc: ImportError) -> bool:
    """Whether ``exc`` names a module that is being imported right now: a plugin module that
    imports mteb at its top (``from my_plugin.tasks import MyTask`` before ``import mteb``) runs
    the bridge before its own classes exist; that is no failure of the plugin."""
    module = sys.modules.get(exc.name or "")
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _import_mteb() -> None:
    """Import mteb before any plugin.  The start-up hook runs the bridge right after ``import
    mteb``, and the bridge asks this host for the registry: when that happens before the plugins
    load (here) the registry sees all of them, not only those imported before one imported mteb."""
    # without mteb the registry and the CLI still work; the bridge reports what is missing
    with contextlib.suppress(ImportError):
        import mteb  # noqa: F401


def _import_file(path: Path, module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _file_version(path: Path, *, default: str) -> str:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return default


#: the one plugin host of this process
host = PluginHost()


def get_registry(strict: bool = False) -> Registry:
    """The registry of every plugin and registry file (see :meth:`PluginHost.registry`)."""
    return host.registry(strict)


def get_encoder(name: str, **params: Any) -> Any:
    """Instantiate the registered model ``name`` (bare or ``org/name``) with optional param
    overrides."""
    return host.registry().model(name).create(**params)
