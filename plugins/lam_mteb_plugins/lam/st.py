"""Old import path of LAM v1's sentence-transformers module, kept so that model folders saved
before the v1/v2 split (their modules.json names ``lam_mteb_plugins.lam.st.LamSTModule``) still
load.  The class lives in :mod:`lam_mteb_plugins.lam.v1.st`; folders saved now name that path."""

from __future__ import annotations

from lam_mteb_plugins.lam.v1.st import LamSTModule

__all__ = ["LamSTModule"]
