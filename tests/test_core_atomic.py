"""lam_mteb.atomic: the one atomic-write helper of every writer (temp file beside, rename)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from lam_mteb import atomic
from lam_mteb.atomic import atomic_file, atomic_folder, atomic_write

REPO = Path(__file__).resolve().parents[1]


class Boom(Exception):
    pass


def test_write_text_and_bytes_readable_and_nothing_left(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    atomic_write(path, b"\x00bytes", fsync=True)
    assert path.read_bytes() == b"\x00bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o600)
    atomic_write(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(Boom), atomic_file(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.json.")
        tmp.write_text('{"half')
        raise Boom
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_suffix_for_libraries_that_append_an_extension(tmp_path):
    path = tmp_path / "vecs.npy"
    with atomic_file(path, suffix=".tmp.npy") as tmp:
        np.save(tmp, np.arange(3))  # np.save would append .npy to a name without it
    assert np.load(path).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["vecs.npy"]


def test_folder_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "build"
    with pytest.raises(Boom), atomic_folder(target) as tmp:
        (tmp / "part.txt").write_text("half")
        raise Boom
    assert list(tmp_path.iterdir()) == []
    with atomic_folder(target, prefix=".build-x-", fsync=True) as tmp:
        assert tmp.name.startswith(".build-x-") and list(tmp.iterdir()) == []
        (tmp / "a.txt").write_text("a")
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["build"]


def test_existing_output_is_replaced_only_once_complete(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(Boom), atomic_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise Boom
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    # a file over a folder and a folder over a file (`lam-mteb encode --overwrite` switching
    # between the local parquet file and Ray's folder of shards)
    atomic_write(target, "file now")
    assert target.read_text() == "file now"
    with atomic_folder(target) as tmp:
        (tmp / "shard.txt").write_text("s")
    assert [p.name for p in target.iterdir()] == ["shard.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failed_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real_replace = atomic.os.replace

    def replace(src, dst):
        if Path(src).name.startswith(".out.") and Path(dst) == target:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="No space"), atomic_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_is_a_leaf_module():
    """It imports nothing from lam_mteb but errors, so any module can use it without a cycle."""
    tree = ast.parse((REPO / "lam_mteb" / "atomic.py").read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree))
    imported = {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in nodes if isinstance(n, ast.ImportFrom)}
    ours = {name for name in imported if name and name.split(".")[0] == "lam_mteb"}
    assert ours <= {"lam_mteb.errors"}, ours
