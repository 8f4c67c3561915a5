"""Bounded reading of user-supplied YAML/JSON files and validation of names used as paths.

Every YAML or JSON document lam-mteb reads from a user (registry files, references files, result
files) goes through here, so none can exhaust memory or time: the file size is capped, YAML alias
expansion and nesting are measured on the composed node graph *before* anything is constructed
(a 592-byte "billion laughs" is refused in milliseconds), and JSON nesting is capped.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from lam_mteb.errors import LamMtebError

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_JSON_BYTES = 64 * 1024 * 1024
#: nodes of a YAML document once every alias is expanded (what json.dumps or a schema check visits)
MAX_YAML_NODES = 200_000
MAX_DEPTH = 64

#: a model name, org or revision: it becomes a folder name in mteb's results layout
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")


def did_you_mean(
    name: str, candidates: Iterable[str], *, cutoff: float = 0.5, fallback: Iterable[str] = ()
) -> str:
    """``"; did you mean 'a', 'b'?"`` naming up to three close ``candidates`` (else close names
    among ``fallback``, with a stricter cutoff), or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=cutoff)
    if not close and fallback:
        close = difflib.get_close_matches(name, list(fallback), n=3, cutoff=cutoff + 0.1)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_name(value: Any, what: str) -> str | None:
    """Why ``value`` is not a safe name (no path separators, not dots-only, one line), or None."""
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__}"
    if not NAME_RE.match(value):
        return (
            f"{what} {value!r} is not a valid name (letters, digits and . _ + -, starting with a "
            "letter or digit, at most 128 characters, no path separators or newlines)"
        )
    return None


def read_bytes_bounded(path: Path, limit: int, what: str) -> bytes:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise LamMtebError(
                f"{path}: {what} is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit; "
                "is this the right file?"
            )
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise LamMtebError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise LamMtebError(
            f"{path}: {what} is over the {limit / 1e6:.0f} MB limit; is this the right file?"
        )
    return data


def _decode(data: bytes, path: Path, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LamMtebError(
            f"{path}: {what} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None


def _check_node_graph(root: yaml.Node, path: Path, what: str) -> None:
    """Refuse documents whose alias-expanded size or nesting is over the limits (iterative,
    memoised)."""
    sizes: dict[int, int] = {}
    depth_of: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            depth_of[key] = 1 + max((depth_of[id(c)] for c in children), default=0)
            if sizes[key] > MAX_YAML_NODES:
                raise LamMtebError(
                    f"{path}: {what} expands to more than {MAX_YAML_NODES} values (YAML aliases "
                    "repeated too often); write the values out or use fewer aliases"
                )
            if depth_of[key] > MAX_DEPTH:
                raise LamMtebError(f"{path}: {what} is nested more than {MAX_DEPTH} levels deep")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise LamMtebError(f"{path}: {what} has a recursive YAML alias")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
        if len(on_path) > MAX_DEPTH:
            raise LamMtebError(f"{path}: {what} is nested more than {MAX_DEPTH} levels deep")


def load_yaml(path: Path, *, what: str = "YAML file", limit: int = MAX_YAML_BYTES) -> Any:
    """Parse a YAML file within the size, alias-expansion and nesting limits.

    YAML syntax errors propagate as ``yaml.YAMLError`` (callers name the line); everything else is
    a :class:`LamMtebError` naming the file.
    """
    return _load_yaml(path, what, limit, lines=None)


def load_yaml_with_lines(
    path: Path, *, what: str = "YAML file", limit: int = MAX_YAML_BYTES
) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """:func:`load_yaml`, plus the 1-based line of every key path of the document (``()``,
    ``("models",)``, ``("models", 0)``, ``("models", 0, "name")``, ...); a key given twice in one
    mapping is a ``yaml.YAMLError`` naming both lines."""
    lines: dict[tuple[Any, ...], int] = {}
    return _load_yaml(path, what, limit, lines=lines), lines


def _load_yaml(path: Path, what: str, limit: int, lines: dict | None) -> Any:
    text = _decode(read_bytes_bounded(path, limit, what), path, what)
    ldr = yaml.SafeLoader(text)
    try:
        try:
            node = ldr.get_single_node()
        except RecursionError:
            raise LamMtebError(f"{path}: {what} is nested too deeply") from None
        if node is None:
            return None
        _check_node_graph(node, path, what)
        if lines is not None:
            lines.update(_key_lines(ldr, node))
        return ldr.construct_document(node)
    finally:
        ldr.dispose()


def _key_lines(ldr: yaml.SafeLoader, root: yaml.Node) -> dict[tuple[Any, ...], int]:
    """The line of every key path under ``root`` (the graph is already bounded by
    :func:`_check_node_graph`); raises on a duplicate key."""
    lines: dict[tuple[Any, ...], int] = {(): root.start_mark.line + 1}
    stack: list[tuple[tuple[Any, ...], yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = (*path, i)
                lines[sub] = item.start_mark.line + 1
                stack.append((sub, item))
        elif isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = ldr.construct_object(key_node)
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first on line {first[key]})",
                        key_node.start_mark,
                    )
                sub = (*path, key)
                first[key] = lines[sub] = key_node.start_mark.line + 1
                stack.append((sub, value))
    return lines


def load_json(path: Path, *, what: str = "JSON file", limit: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file within the size and nesting limits; ValueError (with the reason) if
    invalid."""
    text = _decode(read_bytes_bounded(path, limit, what), path, what)
    return loads_json(text)


def loads_json(text: str) -> Any:
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    if _json_depth(doc) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    return doc


def _json_depth(doc: Any) -> int:
    depth, level = 0, [doc]
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        level = nxt
    return depth - 1
