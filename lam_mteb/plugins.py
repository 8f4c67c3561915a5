"""The one plugin manager: built-in (first-party) plugins, entry points and a plugin folder.

First-party plugins are declared as entry points of group ``lam_mteb`` in lam-mteb's own
``pyproject.toml``, so they load through exactly the same path as third-party packages.  Files in
the folder named by ``LAM_MTEB_PLUGINS_DIR`` are loaded too, one plugin per ``.py`` file.
A plugin that fails to import is reported in one line and skipped; the others still load.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pluggy

from lam_mteb import hookspecs

ENTRY_POINT_GROUP = "lam_mteb"

pm = pluggy.PluginManager("lam_mteb")
pm.add_hookspecs(hookspecs)


@dataclass
class PluginInfo:
    name: str
    source: str  # "entry point <dist>", "file <path>" or "registered"
    version: str | None = None
    error: str | None = None
    hooks: list[str] = field(default_factory=list)


#: what a plugin's import or hook may raise and still be only *that plugin's* failure: a plugin
#: calling sys.exit() or raising KeyboardInterrupt must not kill `import mteb` or the CLI
PLUGIN_FAILURES = (Exception, SystemExit, KeyboardInterrupt)

_loaded = False
_info: dict[str, PluginInfo] = {}
_problems: list[str] = []


def report(message: str) -> None:
    """Record a plugin problem and print it as one line on stderr."""
    _problems.append(message)
    sys.stderr.write(f"lam-mteb: {message}\n")


def problems() -> list[str]:
    return list(_problems)


def _register_module(module: ModuleType, name: str, info: PluginInfo) -> None:
    if pm.has_plugin(name) or pm.is_registered(module):
        return
    pm.register(module, name=name)
    info.hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
    _info[name] = info


def _load_entry_points() -> None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            source=f"entry point {dist.name if dist else '?'}",
            version=dist.version if dist else None,
        )
        if pm.has_plugin(ep.name):
            continue
        try:
            module = ep.load()
        except PLUGIN_FAILURES as exc:  # a broken plugin must not take the others down
            info.error = f"{type(exc).__name__}: {exc}"
            _info[ep.name] = info
            report(f"plugin {ep.name!r} ({ep.value}) failed to import: {info.error}")
            continue
        _register_module(module, ep.name, info)


def _load_plugin_dir(folder: Path) -> None:
    if not folder.is_dir():
        report(f"LAM_MTEB_PLUGINS_DIR={folder} is not a directory; no folder plugins loaded")
        return
    for path in sorted(folder.glob("*.py")):
        name = f"lam_mteb_dir_plugin_{path.stem}"
        info = PluginInfo(name=path.stem, source=f"file {path}")
        if pm.has_plugin(path.stem):
            report(f"plugin file {path} has the name of the already loaded plugin {path.stem!r} "
                   f"({source_of(path.stem)}); skipped (rename the file)")
            continue
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except PLUGIN_FAILURES as exc:
            sys.modules.pop(name, None)
            info.error = f"{type(exc).__name__}: {exc}"
            _info[path.stem] = info
            report(f"plugin file {path} failed to import: {info.error}")
            continue
        _register_module(module, path.stem, info)


def load_plugins() -> pluggy.PluginManager:
    """Load every plugin once (idempotent) and return the plugin manager."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    if not os.environ.get("LAM_MTEB_NO_ENTRY_POINTS"):
        _load_entry_points()
    folder = os.environ.get("LAM_MTEB_PLUGINS_DIR", "").strip()
    if folder:
        _load_plugin_dir(Path(folder).expanduser())
    return pm


def register_plugin(module: object, name: str) -> None:
    """Register an in-process plugin (tests, notebooks); it takes part in the next registry build."""
    load_plugins()
    pm.register(module, name=name)
    _info[name] = PluginInfo(name=name, source="registered")
    _invalidate()


def unregister_plugin(name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin, name=name)
    _info.pop(name, None)
    _invalidate()


def _invalidate() -> None:
    from lam_mteb import registry

    registry.invalidate()


def plugin_infos() -> list[PluginInfo]:
    load_plugins()
    return [_info[k] for k in sorted(_info)]


def owner_rank(name: str) -> int:
    """0 for entry-point plugins (they own their names), 1 for in-process ones, 2 for folder files."""
    source = _info[name].source if name in _info else "registered"
    return 0 if source.startswith("entry point") else 2 if source.startswith("file") else 1


def source_of(name: str) -> str:
    if name in _info:
        return _info[name].source
    return "lam-mteb core" if "core" in name else "registered in-process"


def code_version(name: str) -> str:
    """What identifies a plugin's code, for model revisions: ``<dist>==<version>`` for an installed
    package, the SHA-256 of the file for a plugin-folder file (editing it changes the revision)."""
    import hashlib

    info = _info.get(name)
    if info is not None and info.source.startswith("file "):
        try:
            return "sha256:" + hashlib.sha256(Path(info.source[5:]).read_bytes()).hexdigest()[:16]
        except OSError:
            return "file"
    if info is not None and info.source.startswith("entry point"):
        return f"{info.source.removeprefix('entry point ')}=={info.version}"
    module_file = getattr(pm.get_plugin(name), "__file__", None)
    if module_file and Path(module_file).is_file():
        return "sha256:" + hashlib.sha256(Path(module_file).read_bytes()).hexdigest()[:16]
    return "registered"


def plugin_name_of(impl_plugin: object) -> str:
    return pm.get_name(impl_plugin) or getattr(impl_plugin, "__name__", repr(impl_plugin))


def call_hook_per_plugin(hook_name: str, make_register):
    """Call ``hook_name`` on every plugin separately so one failing plugin is reported, not fatal.

    ``make_register(plugin_name)`` returns the ``register`` callable handed to that plugin.
    """
    load_plugins()
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        plugin_name = plugin_name_of(impl.plugin)
        register = make_register(plugin_name)
        try:
            impl.function(register)
        except PLUGIN_FAILURES as exc:
            report(f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}")
