"""lam-mteb: a pluggable MTEB.

Public names for plugins: ``hookimpl``, ``data_dir``, ``cache_dir``, ``DataNotFound``,
``LamMtebError``, ``get_encoder``, ``Encoder`` (the typed encoder protocol).  They are resolved
lazily: this package is imported by the start-up hook at every interpreter start, so importing it
must cost next to nothing.
"""

TYPE_CHECKING = False  # not `from typing import ...`: keeps start-up free of the typing module
if TYPE_CHECKING:  # what type checkers see of the lazy names below
    from typing import Any

    from lam_mteb.contract import Encoder
    from lam_mteb.errors import DataNotFound, LamMtebError
    from lam_mteb.hookspecs import hookimpl
    from lam_mteb.paths import cache_dir, data_dir
    from lam_mteb.plugins import get_encoder

__version__ = "0.1.0"
__all__ = [
    "hookimpl",
    "data_dir",
    "cache_dir",
    "DataNotFound",
    "LamMtebError",
    "get_encoder",
    "Encoder",
    "__version__",
]

_LAZY = {
    "hookimpl": ("lam_mteb.hookspecs", "hookimpl"),
    "data_dir": ("lam_mteb.paths", "data_dir"),
    "cache_dir": ("lam_mteb.paths", "cache_dir"),
    "DataNotFound": ("lam_mteb.errors", "DataNotFound"),
    "LamMtebError": ("lam_mteb.errors", "LamMtebError"),
    "get_encoder": ("lam_mteb.plugins", "get_encoder"),
    "Encoder": ("lam_mteb.contract", "Encoder"),
}


def __getattr__(name: str) -> "Any":
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lam_mteb' has no attribute {name!r}")


def __dir__() -> "list[str]":
    return sorted(list(globals()) + list(_LAZY))
