"""Start-up hook, imported from ``lam_mteb_bridge.pth`` at every interpreter start.

It must stay cheap and must not import mteb: it only installs a meta-path finder that waits for
``import mteb`` to complete, then installs the bridge of the process's plugin host
(:data:`lam_mteb.plugins.host`, which registers every plugin model and task with mteb), and wraps
``mteb.cli``'s entry point so that lam-mteb's user-facing errors print as one line.
"""

from __future__ import annotations

import importlib.machinery  # cheap (frozen); importlib.abc would pull in importlib.resources
import sys

TYPE_CHECKING = False  # not `from typing import ...`: typing costs start-up time at every start
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import ModuleType
    from typing import Any

    Callback = Callable[[ModuleType], None]


class _AfterImportLoader:
    def __init__(self, wrapped: Any, callback: Callback) -> None:
        self._wrapped = wrapped
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._wrapped.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._wrapped.exec_module(module)
        self._callback(module)

    # get_resource_reader, get_source, ... of the wrapped loader
    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class _MtebFinder:
    """Runs a callback right after ``mteb`` / ``mteb.cli`` finish importing."""

    def __init__(self) -> None:
        self._pending: dict[str, Callback] = {"mteb": _after_mteb, "mteb.cli": _after_mteb_cli}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        callback = self._pending.get(fullname)
        if callback is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        # The callback is dropped only once the module has really been executed: runpy
        # (`python -m mteb`) asks for the spec once before importing the package itself.
        # (not an importlib.abc.Loader subclass: importing importlib.abc costs start-up time)
        spec.loader = _AfterImportLoader(spec.loader, self._ran(fullname, callback))  # type: ignore[assignment]
        return spec

    def _ran(self, fullname: str, callback: Callback) -> Callback:
        def run(module: ModuleType) -> None:
            if self._pending.pop(fullname, None) is None:
                return
            if not self._pending:
                _remove_finder()
            callback(module)

        return run


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _MtebFinder)]


def _after_mteb(module: ModuleType) -> None:
    try:
        from lam_mteb.plugins import host

        host.bridge.install()
    except Exception as exc:  # never break `import mteb`
        sys.stderr.write(
            f"lam-mteb: could not register plugins with mteb: {type(exc).__name__}: {exc}\n"
        )


def _after_mteb_cli(module: ModuleType) -> None:
    try:
        from lam_mteb.plugins import host

        host.bridge.wrap_mteb_cli(module)
    except Exception as exc:
        sys.stderr.write(f"lam-mteb: could not wrap the mteb CLI: {type(exc).__name__}: {exc}\n")


def install_finder() -> None:
    if "mteb" in sys.modules:  # imported before us (unusual): register right away
        _after_mteb(sys.modules["mteb"])
        return
    if not any(isinstance(f, _MtebFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MtebFinder())


install_finder()
