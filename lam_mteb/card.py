"""``lam-mteb card MODEL --results DIR``: a Hugging Face model card with the model's mteb results.

The card's YAML front matter holds a ``model-index`` built with ``huggingface_hub``'s
``ModelCardData`` / ``EvalResult``; the entries themselves come from mteb's own conversion
(``TaskResult.get_hf_eval_results``: task type, dataset, split, subset, main metric), with the
dataset revision taken from each result file.  mteb 2.26's ``generate_model_card`` no longer
writes a ``model-index`` (Hugging Face moved to ``.eval_results``), hence this command.

Results computed on a locally re-created dataset (lam-mteb's ``dataset_revision`` marker, a
``lam_mteb_recreation`` key, or a plugin that registers the task's data as a re-creation) are
never put in the ``model-index``: the card lists them in a separate, labelled table.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lam_mteb.atomic import atomic_write
from lam_mteb.errors import LamMtebError, one_line
from lam_mteb.leaderboard.results import (
    layout_root,
    recreation_marker,
    registry_recreated_tasks,
    task_metadata,
)

if TYPE_CHECKING:
    from lam_mteb.plugins import PluginHost
    from lam_mteb.registry import DatasetEntry

#: the card's template (package data: lam_mteb/templates/): front matter, description, facts,
#: usage and results
TEMPLATE = "model_card.md.j2"


@dataclass
class FoundResults:
    """Result files of one model revision, split into published-data and re-created-data results."""

    folder: Path
    revision: str
    published: list[Any] = field(default_factory=list)  # mteb TaskResult
    recreated: list[tuple[Any, str]] = field(default_factory=list)  # (TaskResult, why)
    skipped: list[str] = field(default_factory=list)


def _result_files(results_dir: Path, model_path: str, revision: str, explicit: bool) -> list[Path]:
    """The task result files of one model revision; one clear error when there are none."""
    if not results_dir.is_dir():
        raise LamMtebError(
            f"--results {results_dir} is not a directory (give the --output-folder of `mteb run`)"
        )
    model_dir = layout_root(results_dir) / model_path
    rev_dir = model_dir / revision
    files = sorted(p for p in rev_dir.glob("*.json") if p.name != "model_meta.json")
    if files:
        return files
    others = sorted(p.name for p in model_dir.iterdir() if p.is_dir()) if model_dir.is_dir() else []
    if others:
        which = "the revision given with --revision" if explicit else "the model's current revision"
        raise LamMtebError(
            f"no result files in {rev_dir} ({which}); {model_dir} holds revision(s) "
            f"{', '.join(others)}: pass --revision REV to describe one of them, or rerun mteb"
        )
    raise LamMtebError(
        f"no results for this model in {results_dir} (looked for {rev_dir}/<Task>.json); run "
        f"`mteb run -m <model> -t <tasks> --output-folder {results_dir}` first"
    )


def _read_results(files: list[Path], skipped: list[str]) -> list[tuple[Any, dict]]:
    """(TaskResult, raw JSON) of every readable file; the others are named in ``skipped``."""
    import json

    from mteb import TaskResult

    loaded = []
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = TaskResult.from_disk(path)
            raw = json.loads(path.read_text(encoding="utf-8"))
        except Exception as exc:
            skipped.append(f"{path}: unreadable result file ({one_line(exc)})")
            continue
        loaded.append((result, raw))
    return loaded


def find_results(
    results_dir: Path,
    model_path: str,
    revision: str,
    *,
    explicit: bool,
    datasets: Mapping[str, DatasetEntry],
) -> FoundResults:
    """Read ``<root>/<model_path>/<revision>/*.json``; one clear error when nothing is there.
    ``datasets`` (the registry's builders) say which tasks ran on re-created data."""
    files = _result_files(results_dir, model_path, revision, explicit)
    found = FoundResults(folder=files[0].parent, revision=revision)
    loaded = _read_results(files, found.skipped)
    from_registry = registry_recreated_tasks([r.task_name for r, _ in loaded], datasets)
    for result, raw in loaded:
        marker, where = recreation_marker(raw)
        if marker is None and result.task_name in from_registry:
            marker, where = (
                True,
                f"plugin {from_registry[result.task_name]!r} registers its data as a re-creation",
            )
        if marker:
            found.recreated.append((result, where or "marked as re-created"))
        else:
            found.published.append(result)
    return found


def eval_results(results: list[Any], skipped: list[str]) -> list[Any]:
    """huggingface_hub EvalResults of mteb TaskResults (mteb's own conversion, true revisions)."""
    out = []
    for result in results:
        try:
            with warnings.catch_warnings():
                # deprecated in mteb 2.26 (for .eval_results), still exact
                warnings.simplefilter("ignore")
                entries = result.get_hf_eval_results()
        except Exception as exc:
            skipped.append(f"{result.task_name}: not converted ({one_line(exc)})")
            continue
        for entry in entries:
            entry.dataset_revision = result.dataset_revision or entry.dataset_revision
            out.append(entry)
    return out


def _fmt_count(value: Any) -> str:
    if value is None:
        return "not declared"
    if isinstance(value, float) and math.isinf(value):
        return "∞ (streams any length)"
    return f"{int(value):,}"


def _score_rows(results: list[Any]) -> list[list[Any]]:
    """One row per task, split and subset: task, split, subset, metric, score, mteb version."""
    rows = []
    for result in sorted(results, key=lambda r: r.task_name):
        known = task_metadata(result.task_name) is not None
        metric = result.task.metadata.main_score if known else "main_score"
        for split, subsets in sorted(result.scores.items()):
            for subset in subsets:
                rows.append(
                    [
                        result.task_name,
                        split,
                        subset.get("hf_subset", "default"),
                        metric,
                        f"{subset['main_score']:.4f}",
                        result.mteb_version or "?",
                    ]
                )
    return rows


def _plugin_distribution(host: PluginHost, plugin: str) -> str | None:
    for info in host.infos():
        if info.name == plugin and info.source.startswith("entry point "):
            dist = info.source.removeprefix("entry point ")
            return dist if dist not in ("lam-mteb", "?") else None
    return None


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def render_card(
    card_data: str,
    config: Any,
    meta: Any,
    found: FoundResults,
    results_dir: Path,
    dist: str | None,
) -> str:
    """The card's text: ``TEMPLATE`` filled with the model's facts and results; ``dist``: the
    distribution that installs the model's plugin."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lam_mteb", "templates"),
        autoescape=False,  # markdown, as the Hugging Face Hub reads it
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters["table"] = _table
    env.filters["count_text"] = _fmt_count
    return env.get_template(TEMPLATE).render(
        card_data=card_data,
        config=config,
        meta=meta,
        dist=dist,
        install="pip install lam-mteb" + (f" {dist}" if dist else ""),
        # absolute paths are this machine's, not the model's: left out of the card
        encoder_params=[
            (k, v)
            for k, v in sorted(config.params.items())
            if not isinstance(v, str) or not os.path.isabs(v)
        ],
        published=_score_rows(found.published),
        recreated=_score_rows([r for r, _ in found.recreated]),
        recreated_why=[(r.task_name, why) for r, why in found.recreated],
        results_dir=results_dir,
        folder=found.folder.name,
        revision=found.revision,
    )


def build_card(
    host: PluginHost, name: str, results_dir: Path, revision: str | None = None
) -> tuple[Any, list[str]]:
    """(huggingface_hub ModelCard, problems) for the registered model ``name`` of ``host``."""
    import mteb
    from huggingface_hub import ModelCard, ModelCardData

    registry = host.registry()
    config = registry.model(name)
    host.bridge.install()
    meta = mteb.get_model_meta(config.full_name)
    found = find_results(
        results_dir,
        meta.model_name_as_path(),
        revision or config.revision,
        explicit=revision is not None,
        datasets=registry.datasets,
    )
    problems = list(found.skipped)
    entries = eval_results(found.published, problems)
    languages = sorted({lang.split("-")[0] for lang in (meta.languages or [])}) or None
    data = ModelCardData(
        model_name=meta.name,
        eval_results=entries or None,
        license=meta.license,
        language=languages,
        base_model=meta.adapted_from,
        pipeline_tag="sentence-similarity",
        tags=[
            "mteb",
            "lam-mteb",
            "sentence-similarity",
            "feature-extraction",
            f"lam-mteb-kind:{config.kind.name}",
        ],
    )
    dist = _plugin_distribution(host, config.kind.plugin)
    card = ModelCard(render_card(data.to_yaml(), config, meta, found, results_dir, dist))
    return card, problems


def write_new(path: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``path`` via a temporary file; never replace a file without ``force``."""
    if path.exists() and not force:
        raise LamMtebError(f"{path} exists; pass --force to overwrite it (or choose another --out)")
    if path.is_dir():
        raise LamMtebError(
            f"--out {path} is a directory; give a file name such as {path / 'README.md'}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)


def add_parser(subparsers: Any, host: PluginHost) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "card", help="write a Hugging Face model card with the model's mteb results"
    )
    p.add_argument("model", help="registered model name (`lam-mteb models` lists them)")
    p.add_argument(
        "--results",
        required=True,
        type=Path,
        help="mteb results folder (the --output-folder of `mteb run`)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="file to write (default: print to stdout)"
    )
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument(
        "--revision",
        default=None,
        help="model revision whose results to use (default: the model's current revision)",
    )
    p.set_defaults(func=functools.partial(cmd_card, host))
    return p


def cmd_card(host: PluginHost, args: argparse.Namespace) -> int:
    if args.out is not None and args.out.exists() and not args.force:
        raise LamMtebError(
            f"{args.out} exists; pass --force to overwrite it (or choose another --out)"
        )
    card, problems = build_card(host, args.model, args.results, args.revision)
    for problem in problems:
        print(f"lam-mteb card: skipped {problem}", file=sys.stderr)
    text = str(card)
    if args.out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    write_new(args.out, text if text.endswith("\n") else text + "\n", args.force)
    n = len(card.data.eval_results or [])
    print(f"wrote {args.out} (model-index: {n} result(s))", file=sys.stderr)
    return 0
