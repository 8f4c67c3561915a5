"""Read mteb results folders with mteb's own ``ResultCache`` / ``TaskResult`` /
``BenchmarkResults``.

A results folder is what ``mteb run --output-folder DIR`` writes: ``DIR/results/<org>__<model>/
<revision>/<Task>.json`` plus ``model_meta.json``.  ``DIR`` may also point at the ``results`` folder
itself, or at any folder laid out as ``<org>__<model>/<revision>/<Task>.json``.

A file mteb cannot parse is reported by path in one line and skipped; nothing is ever written
into a results folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lam_mteb.errors import LamMtebError
from lam_mteb.inputs import load_json
from lam_mteb.leaderboard import spec
from lam_mteb.leaderboard.model import Cell, Row

if TYPE_CHECKING:
    from lam_mteb.registry import DatasetEntry

logger = logging.getLogger("lam_mteb.leaderboard")

#: keys a result file (top level or any subset's scores) may carry to say its task data was a
#: local re-creation; a true value (or a dict) marks it, an explicit false unmarks it
RECREATION_KEYS = ("lam_mteb_recreation", "lam_mteb_recreated")
#: mteb main scores are fractions (accuracies, nDCG, recall) or correlations: anything outside is
#: corrupt
SCORE_RANGE = (-1.0, 1.0)


@dataclass
class LoadReport:
    problems: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.problems.append(message)


def _display_path(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def layout_root(folder: Path) -> Path:
    """The folder that holds ``<org>__<model>/<revision>/<Task>.json``: ``DIR/results`` when DIR
    is an mteb ``--output-folder``, else DIR itself."""
    return folder / "results" if (folder / "results").is_dir() else folder


def _cache_paths(root: Path) -> list[Path]:
    """Result files under ``root`` (= ``<cache>/results``), found by mteb's ResultCache when
    possible."""
    from mteb import ResultCache

    if root.name == "results":
        # ResultCache(cache_path) looks in cache_path/"results"; it mkdirs cache_path, which exists
        cache = ResultCache(cache_path=root.parent)
        paths = cache.get_cache_paths(
            require_model_meta=False, include_remote=False, load_experiments="match_name"
        )
        return sorted(set(paths))
    # a folder with another name: mirror ResultCache's layout (model/revision/task.json,
    # experiments)
    paths = [p for p in root.glob("*/*/*.json") if p.name != "model_meta.json"]
    paths += [p for p in root.glob("*/*/experiments/*/*.json") if p.name != "model_meta.json"]
    return sorted(set(paths))


def _read_model_meta(folder: Path, report: LoadReport) -> dict:
    path = folder / "model_meta.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as exc:
        report.add(f"skipped unreadable model_meta.json {_display_path(path)}: {_one_line(exc)}")
        return {}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 200 else first[:200] + "…"


def _marker_value(obj: Any) -> bool | dict | None:
    """The recreation marker in a JSON object, if any (True/dict = re-created, False = not)."""
    if not isinstance(obj, dict):
        return None
    for key in RECREATION_KEYS:
        if key in obj:
            value = obj[key]
            if isinstance(value, dict):
                return value if value.get("recreation", True) else False
            return bool(value)
    data = obj.get("lam_mteb_data")
    if isinstance(data, dict) and "recreation" in data:
        return bool(data["recreation"])
    return None


def recreation_marker(raw: dict) -> tuple[bool | None, str | None]:
    """Whether a raw result JSON says its data was a local re-creation (None: it does not say),
    and where it says so."""
    found = _marker_value(raw)
    if found is not None:
        return bool(found), "a lam_mteb_recreation key in the result file"
    revision = str(raw.get("dataset_revision") or "")
    if revision.startswith(("lam_mteb", "lam-mteb")):
        return True, f"the result file's dataset_revision {revision!r}"
    for split_scores in (raw.get("scores") or {}).values():
        if isinstance(split_scores, list):
            for subset in split_scores:
                found = _marker_value(subset)
                if found is not None:
                    return bool(found), "a lam_mteb_recreation key in the result file's scores"
    return None, None


def registry_recreated_tasks(
    task_names: Iterable[str], datasets: Mapping[str, DatasetEntry]
) -> dict[str, str]:
    """Task name -> plugin, for those of ``task_names`` whose mteb dataset a plugin registers in
    ``datasets`` (the registry's) as a local re-creation (``register_datasets(...,
    recreation=True)``).  Empty when the tasks cannot be read."""
    recreated = {path: entry.plugin for path, entry in datasets.items() if entry.recreation}
    if not recreated:
        return {}
    try:
        import mteb
    except ImportError as exc:  # the leaderboard must work without mteb's task registry
        logger.debug("could not read the tasks' datasets: %s", exc)
        return {}
    out = {}
    for name in sorted(set(task_names)):
        try:
            path = (mteb.get_task(name).metadata.dataset or {}).get("path")
        except Exception:
            continue
        if path in recreated:
            out[name] = recreated[path]
    return out


def task_metadata(task_name: str) -> Any:
    """mteb's metadata of a task, or None when mteb does not know it."""
    try:
        import mteb

        return mteb.get_task(task_name).metadata
    except Exception:
        return None


def _eval_splits(task_name: str) -> list[str] | None:
    metadata = task_metadata(task_name)
    return None if metadata is None else list(metadata.eval_splits)


#: splits a task evaluates for tuning; where a task also evaluates "test", only "test" is reported
TUNING_SPLITS = frozenset({"dev", "validation", "val"})


def report_splits(splits: list[str] | None) -> list[str] | None:
    """The eval splits whose mean is the reported score: ``["test"]`` when the others are tuning
    splits."""
    if splits and "test" in splits and len(splits) > 1 and set(splits) - {"test"} <= TUNING_SPLITS:
        return ["test"]
    return splits


def _subset_entries(raw: dict, splits: list[str]) -> list[dict]:
    """The per-subset score dicts of ``splits`` in a raw mteb result file."""
    out = []
    for split in splits:
        entries = (raw.get("scores") or {}).get(split)
        if isinstance(entries, list):
            out += [e for e in entries if isinstance(e, dict)]
    return out


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _mean_metrics(dicts: list[dict]) -> dict[str, float]:
    """Metric -> mean over ``dicts`` of every finite numeric top-level value that all of them
    have."""
    if not dicts:
        return {}
    out = {}
    for key in dicts[0]:
        values = [v for d in dicts if (v := _numeric(d.get(key))) is not None]
        if len(values) == len(dicts):
            out[key] = sum(values) / len(values)
    return out


def split_details(raw: dict, splits: list[str]) -> dict[str, float]:
    """Every numeric metric of the reported split(s) (mean over splits and subsets)."""
    return _mean_metrics(_subset_entries(raw, splits))


def reported_baselines(raw: dict, splits: list[str]) -> dict[str, dict[str, float]]:
    """Baselines a task scored beside the model: ``{name: {metric: value}}``.

    Convention (any task may use it): a subset's scores hold ``predictors`` = ``{name: {metric:
    value}}`` and ``baselines`` = the names among them that are reference predictors rather than
    the model's own.  Values are averaged over the reported splits and subsets; a baseline missing
    from one of them is left out.
    """
    entries = _subset_entries(raw, splits)
    if not entries:
        return {}
    names = None
    for entry in entries:
        listed = entry.get("baselines")
        preds = entry.get("predictors")
        if not isinstance(listed, list) or not isinstance(preds, dict):
            return {}
        have = [n for n in listed if isinstance(n, str) and isinstance(preds.get(n), dict)]
        names = have if names is None else [n for n in names if n in have]
    return {n: _mean_metrics([e["predictors"][n] for e in entries]) for n in names or []}


def baseline_rows(found: list[tuple[str, str, dict[str, float], str, str, str]]) -> list[Row]:
    """One row per (task, baseline, scores): runs that report identical scores share a row.

    ``found`` holds (task, baseline name, metrics, main metric, model name, results folder).  When
    one baseline has different scores in different runs (e.g. another encoder's vectors), each
    version is its own row, named after the runs that reported it.
    """
    groups: dict[tuple[str, str], dict[tuple, list]] = {}
    for task, name, metrics, main, model, folder in found:
        if main not in metrics:
            continue
        signature = tuple(
            sorted((k, round(v, 6)) for k, v in metrics.items() if "latency" not in k)
        )
        groups.setdefault((task, name), {}).setdefault(signature, []).append(
            (metrics, main, model, folder)
        )
    rows = []
    for (task, name), versions in sorted(groups.items()):
        for runs in versions.values():
            metrics, main = runs[0][0], runs[0][1]
            models = sorted({m for _, _, m, _ in runs})
            folders = sorted({f for _, _, _, f in runs})
            display = name.replace("_", " ")
            if len(versions) > 1:
                display += f" (runs of {', '.join(models)})"
            cell = Cell(
                value=metrics[main],
                metric=main,
                split=None,
                file=None,
                details={k: v for k, v in metrics.items() if k != main},
            )
            rows.append(
                Row(
                    model=display,
                    model_id=None,
                    kind=spec.KIND_BASELINE,
                    source=(
                        f"baseline scored by {task} in the runs of {', '.join(models)} "
                        f"({', '.join(folders)})"
                    ),
                    source_short="baseline",
                    scores={task: cell},
                    path=None,
                )
            )
    return rows


@dataclass
class LoadedResults:
    rows: list[Row]
    report: LoadReport


def load_results(
    folders: Iterable[str | Path],
    *,
    recreated_tasks: Iterable[str] = (),
    datasets: Mapping[str, DatasetEntry] | None = None,
) -> LoadedResults:
    """Our rows from mteb results folders (one row per model, revision and experiment);
    ``datasets`` (the registry's dataset builders) say which tasks ran on re-created data."""
    report = LoadReport()
    found = _result_files(folders)
    labels = _RecreationLabels(
        forced=set(recreated_tasks),
        from_registry=registry_recreated_tasks(
            {p.stem for _, paths in found for p in paths}, datasets or {}
        ),
    )
    rows: list[Row] = []
    baselines_found: list[tuple[str, str, dict[str, float], str, str, str]] = []
    for folder, paths in found:
        if not paths:
            report.add(
                f"no result files under {_display_path(folder)} "
                "(expected results/<org>__<model>/<revision>/<Task>.json)"
            )
            continue
        groups: dict[Path, list[Path]] = {}
        for path in paths:
            groups.setdefault(path.parent, []).append(path)
        for rev_dir, files in sorted(groups.items()):
            run = _load_run(folder, rev_dir, files, labels, report)
            baselines_found += run.baselines
            if run.row is not None:
                rows.append(run.row)
    rows += baseline_rows(baselines_found)
    return LoadedResults(rows, report)


def _result_files(folders: Iterable[str | Path]) -> list[tuple[Path, list[Path]]]:
    """Each results folder with the result files under it; a folder that does not exist is one
    error."""
    found = []
    for folder_arg in folders:
        folder = Path(folder_arg)
        if not folder.is_dir():
            raise LamMtebError(
                f"results folder {folder} does not exist (pass the --output-folder of `mteb run`)"
            )
        found.append((folder, _cache_paths(layout_root(folder))))
    return found


@dataclass
class _RecreationLabels:
    forced: set[str]  # tasks listed with --recreated
    from_registry: dict[str, str]  # task -> plugin that registers its data as a re-creation

    def label(self, task: str, raw: Any) -> tuple[bool, str | None]:
        """Whether a result of ``task`` was computed on re-created data, and why we say so."""
        marker, where = recreation_marker(raw)
        if task in self.forced:
            return True, "listed with --recreated"
        if marker is True:
            return True, f"marked by {where}"
        if marker is None and task in self.from_registry:
            return True, (
                f"plugin {self.from_registry[task]!r} registers this task's data as a local "
                "re-creation"
            )
        return bool(marker), None


@dataclass
class _Run:
    """What one ``<model>/<revision>[/experiments/<name>]`` folder contributes."""

    row: Row | None  # None when no file could be read
    baselines: list[tuple[str, str, dict[str, float], str, str, str]]


def _load_run(
    folder: Path, rev_dir: Path, files: list[Path], labels: _RecreationLabels, report: LoadReport
) -> _Run:
    meta = _read_model_meta(rev_dir, report)
    in_experiment = rev_dir.parent.name == "experiments"
    model_dir = rev_dir.parents[2] if in_experiment else rev_dir.parent
    revision_dir = rev_dir.parent.parent if in_experiment else rev_dir
    model_name = meta.get("name") or model_dir.name.replace("__", "/")
    revision = meta.get("revision") or revision_dir.name
    experiment = rev_dir.name if in_experiment else None
    cells: dict[str, Cell] = {}
    baselines = []
    for path in sorted(files):
        read = _read_result(path, report)
        if read is None:
            continue
        result, raw, cell = read
        cell.recreated, cell.recreation_note = labels.label(result.task_name, raw)
        cells[result.task_name] = cell
        if cell.metric:
            where = _display_path(folder)
            for name, metrics in reported_baselines(raw, _used_splits(result)).items():
                baselines.append((result.task_name, name, metrics, cell.metric, model_name, where))
    if not cells:
        return _Run(None, baselines)
    row = Row(
        model=model_name if experiment is None else f"{model_name} ({experiment})",
        model_id=model_name,
        kind=spec.KIND_OURS,
        source=f"{_display_path(rev_dir)}/{{Task}}.json",
        source_short="ours",
        revision=revision,
        scores=cells,
        n_parameters=_int_or_none(meta.get("n_parameters")),
        embed_dim=_int_or_none(meta.get("embed_dim")),
        max_tokens=_max_tokens(meta.get("max_tokens")),
        path=_display_path(rev_dir),
    )
    return _Run(row, baselines)


def _used_splits(result: Any) -> list[str]:
    """The splits a result's main score is the mean of: the task's reported eval splits the file
    has, else every split in the file."""
    splits = report_splits(_eval_splits(result.task_name))
    present = [s for s in (splits or []) if s in result.scores]
    return present or list(result.scores)


def _read_result(path: Path, report: LoadReport) -> tuple[Any, Any, Cell] | None:
    """One result file -> (mteb TaskResult, its raw JSON, its cell), or None (reported) when it
    is corrupt: unreadable, without the task's eval splits or with an impossible main score."""
    from mteb import TaskResult

    try:
        raw = load_json(path, what="result file")  # bounded size and nesting, first
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = TaskResult.from_disk(path)
        metadata = task_metadata(result.task_name)
        splits = report_splits(None if metadata is None else list(metadata.eval_splits))
        if splits and not any(s in result.scores for s in splits):
            raise ValueError(
                f"none of the task's eval splits {splits} in the file (has {sorted(result.scores)})"
            )
        use = _used_splits(result)
        partial_note = None
        if splits and len(use) < len(splits):
            partial_note = f"only {len(use)} of {len(splits)} eval splits"
            report.add(
                f"{_display_path(path)}: {partial_note} of {result.task_name}; "
                "score is their mean, marked partial (the row is not ranked)"
            )
        value = float(result.get_score(splits=use))
        if not math.isfinite(value) or not SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
            raise ValueError(
                f"main score {value!r} is not a finite number in "
                f"[{SCORE_RANGE[0]}, {SCORE_RANGE[1]}]"
            )
    except Exception as exc:
        report.add(f"skipped corrupt result file {_display_path(path)}: {_one_line(exc)}")
        return None
    cell = Cell(
        value=value,
        metric=None if metadata is None else str(metadata.main_score),
        split=use[0] if len(use) == 1 else f"mean of {len(use)} splits",
        file=_display_path(path),
        partial_note=partial_note,
        details=split_details(raw, use),
    )
    return result, raw, cell


def _max_tokens(value: Any) -> int | float | None:
    """mteb stores ``inf`` for encoders without a length limit; keep it (shown as ∞)."""
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return math.inf
    return _int_or_none(value)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return int(value)
    return None
