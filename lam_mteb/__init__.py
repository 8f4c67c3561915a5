"""lam-mteb: a pluggable MTEB.

Public names for plugins: ``hookimpl``, ``data_dir``, ``cache_dir``, ``DataNotFound``,
``LamMtebError``.  This module stays import-light: it is imported at every ``import mteb``.
"""

from lam_mteb.errors import DataNotFound, LamMtebError
from lam_mteb.hookspecs import hookimpl
from lam_mteb.paths import cache_dir, data_dir

__version__ = "0.1.0"
__all__ = ["hookimpl", "data_dir", "cache_dir", "DataNotFound", "LamMtebError", "__version__"]


def get_encoder(name: str, **params):
    """Instantiate a registered model (bare name or ``org/name``), e.g. ``get_encoder("minilm")``."""
    from lam_mteb.registry import get_encoder as _get_encoder

    return _get_encoder(name, **params)


__all__.append("get_encoder")
