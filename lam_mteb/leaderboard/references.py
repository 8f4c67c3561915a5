"""``leaderboard/references.yaml``: published scores with provenance, validated by a JSON schema."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lam_mteb.errors import LamMtebError
from lam_mteb.leaderboard import spec
from lam_mteb.leaderboard.model import Cell, Row, Summary

SCHEMA_FILE = Path(__file__).with_name("references.schema.json")

_KIND_OF_STATUS = {
    "published": spec.KIND_PUBLISHED,
    "claimed": spec.KIND_CLAIMED,
    "no-scores": spec.KIND_NO_SCORES,
}


class ReferencesError(LamMtebError):
    """references.yaml is unreadable or invalid; the message names the file and the entry."""


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def default_references_file() -> Path | None:
    """The references shipped with lam-mteb: the package copy, else the source checkout's file."""
    here = Path(__file__).resolve().parent
    for candidate in (
        here / "references.yaml",
        here.parents[1] / "leaderboard" / "references.yaml",
    ):
        if candidate.is_file():
            return candidate
    return None


def _where(doc: Any, path: list) -> str:
    """Human-readable location: ``entries[3] (model 'X', source 'Y'): scores.SciFact.value``."""
    if not path:
        return "top level"
    head = ""
    rest = list(path)
    if rest[0] == "entries" and len(rest) > 1 and isinstance(rest[1], int):
        idx = rest[1]
        entry = (
            doc["entries"][idx]
            if isinstance(doc.get("entries"), list) and idx < len(doc["entries"])
            else {}
        )
        who = []
        if isinstance(entry, dict):
            if "model" in entry:
                who.append(f"model {entry['model']!r}")
            if "source" in entry:
                who.append(f"source {entry['source']!r}")
        head = f"entries[{idx}]" + (f" ({', '.join(who)})" if who else "")
        rest = rest[2:]
    elif rest[0] in ("sources", "models") and len(rest) > 1:
        head = f"{rest[0]}[{rest[1]!r}]"
        rest = rest[2:]
    tail = ".".join(str(p) for p in rest)
    return f"{head}: {tail}" if head and tail else (head or tail)


def validate(doc: Any, file: str | Path, benchmarks: Iterable[spec.Benchmark]) -> None:
    """Raise :class:`ReferencesError` (one line: file, entry, problem) unless ``doc`` is valid;
    the benchmark keys it names must be those of ``benchmarks`` (the plugins')."""
    import jsonschema
    from jsonschema.exceptions import best_match

    if not isinstance(doc, dict):
        raise ReferencesError(
            f"{file}: top level: expected a mapping with sources, models, entries"
        )
    validator = jsonschema.Draft202012Validator(schema())
    error = best_match(validator.iter_errors(doc))
    if error is not None:
        message = error.message.splitlines()[0]
        if len(message) > 200:
            message = message[:200] + "…"
        raise ReferencesError(f"{file}: {_where(doc, list(error.absolute_path))}: {message}")
    # cross-references the schema cannot express
    bench_keys = {b.key for b in benchmarks}
    seen: dict[tuple, int] = {}
    for i, entry in enumerate(doc["entries"]):
        where = _where(doc, ["entries", i])
        for group in ("scores", "summaries"):
            for task, value in (entry.get(group) or {}).items():
                # .nan passes the schema's minimum/maximum
                if not math.isfinite(float(value["value"])):
                    raise ReferencesError(
                        f"{file}: {where}: {group}.{task}.value is {value['value']!r}, "
                        "not a finite number from 0 to 1"
                    )
        if entry["source"] not in doc["sources"]:
            raise ReferencesError(
                f"{file}: {where}: unknown source {entry['source']!r} "
                f"(known: {', '.join(sorted(doc['sources']))})"
            )
        if entry["model"] not in doc["models"]:
            raise ReferencesError(
                f"{file}: {where}: model {entry['model']!r} is not described under models:"
            )
        for key in (*entry.get("summaries", {}), *entry.get("benchmarks", [])):
            if key not in bench_keys:
                raise ReferencesError(
                    f"{file}: {where}: unknown benchmark {key!r} "
                    f"(known: {', '.join(sorted(bench_keys))})"
                )
        ident = (entry["model"], entry["source"], entry.get("label"), entry.get("revision"))
        if ident in seen:
            raise ReferencesError(
                f"{file}: {where}: duplicates entries[{seen[ident]}] "
                "(same model, source, label and revision)"
            )
        seen[ident] = i


def load(file: str | Path, benchmarks: Iterable[spec.Benchmark]) -> dict:
    """Read and validate a references file (see :func:`validate`); returns the document."""
    from lam_mteb.inputs import load_yaml

    path = Path(file)
    try:
        doc = load_yaml(path, what="references file")
    except ReferencesError:
        raise
    except LamMtebError as exc:  # too large, not UTF-8, alias bomb, unreadable
        raise ReferencesError(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ReferencesError(f"{path}:{line}: not valid YAML: {problem}") from None
    validate(doc, path, benchmarks)
    return doc


def _source_text(doc: dict, entry: dict) -> str:
    source = doc["sources"][entry["source"]]
    text = source.get("short", source["title"])
    if entry.get("table"):
        text += f", {entry['table']}"
    if entry.get("revision"):
        text += f" (model rev {entry['revision'][:8]})"
    return text


def rows_from_references(doc: dict) -> list[Row]:
    """One leaderboard row per references entry."""
    rows = []
    for entry in doc["entries"]:
        facts = doc["models"][entry["model"]]
        scores = {}
        for task, s in entry.get("scores", {}).items():
            split = s["split"]
            if isinstance(split, list):
                split = (
                    f"mean of {len(split)} splits ({split[0]}…{split[-1]})"
                    if len(split) > 1
                    else split[0]
                )
            scores[task] = Cell(
                value=float(s["value"]), metric=s["metric"], split=split, file=s.get("file")
            )
        summaries = {
            k: Summary(value=float(v["value"]), note=v["note"], reported=v.get("reported"))
            for k, v in entry.get("summaries", {}).items()
        }
        note, broken = entry.get("note"), entry.get("broken")
        rows.append(
            Row(
                model=entry.get("label") or facts.get("label") or entry["model"],
                model_id=entry["model"],
                kind=_KIND_OF_STATUS[entry["status"]],
                source=_source_text(doc, entry),
                revision=entry.get("revision"),
                scores=scores,
                summaries=summaries,
                benchmarks=tuple(entry.get("benchmarks", ())),
                n_parameters=facts.get("n_parameters"),
                embed_dim=facts.get("embed_dim"),
                max_tokens=facts.get("max_tokens"),
                note=note,
                broken=f"{broken['reason']} ({broken['url']})" if broken else None,
                source_short=doc["sources"][entry["source"]].get("short"),
            )
        )
    return rows
