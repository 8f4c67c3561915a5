"""No unsafe torch.load anywhere in the source: every call passes weights_only=True, so loading a
crafted checkpoint or trainer state never runs code (docs/reliability.md)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("lam_mteb", "plugins", "scripts", "benchmarks", "research")


def _torch_load_names(tree: ast.AST) -> set[str]:
    """Local names bound to torch.load (``from torch import load [as x]``)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "torch"
        for alias in node.names
        if alias.name == "load"
    }


def _is_torch_load(call: ast.Call, names: set[str]) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "load":
        return isinstance(func.value, ast.Name) and func.value.id == "torch"
    return isinstance(func, ast.Name) and func.id in names


def _safe(call: ast.Call) -> bool:
    return any(
        kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is True
        for kw in call.keywords
    )


def unsafe_torch_loads(root: Path = REPO) -> list[str]:
    """``file:line`` of every torch.load call without a literal ``weights_only=True``."""
    found = []
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            names = _torch_load_names(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _is_torch_load(node, names) and not _safe(node):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_torch_load_passes_weights_only_true():
    unsafe = unsafe_torch_loads()
    assert not unsafe, f"torch.load without weights_only=True (a crafted file runs code): {unsafe}"


def test_the_scan_finds_unsafe_calls(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "bad.py").write_text(
        "import torch\n"
        "from torch import load as tl\n"
        "torch.load('a', weights_only=True)\n"
        "torch.load('b')\n"
        "torch.load('c', weights_only=False)\n"
        "tl('d')\n"
        "flag = True\n"
        "torch.load('e', weights_only=flag)\n",
        encoding="utf-8",
    )
    assert unsafe_torch_loads(tmp_path) == [
        "plugins/bad.py:4",
        "plugins/bad.py:5",
        "plugins/bad.py:6",
        "plugins/bad.py:8",
    ]
