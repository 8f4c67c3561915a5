"""``lam-mteb`` command line: models | tasks | plugins | run | data | leaderboard, plus plugin commands."""

from __future__ import annotations

import argparse
import importlib
import difflib
import json
import logging
import os
import sys
import time
from pathlib import Path

from tabulate import tabulate

from lam_mteb import __version__, card, check, plugins
from lam_mteb.errors import LamMtebError
from lam_mteb.paths import check_writable_folder


def _registry(strict: bool = True):
    from lam_mteb.registry import get_registry

    return get_registry(strict=strict)


def _print_table(rows, headers, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([dict(zip(headers, r)) for r in rows], indent=2, default=str))
    else:
        print(tabulate(rows, headers=headers, tablefmt="github" if fmt == "markdown" else "simple"))


# -- models / tasks / plugins ------------------------------------------------------------------

def cmd_models(args) -> int:
    reg = _registry()
    rows = []
    for cfg in reg.models.values():
        rows.append([cfg.name, cfg.kind.name, cfg.kind.plugin, cfg.embed_dim or "?",
                     cfg.metadata.get("max_tokens") or "?", cfg.full_name, cfg.revision, cfg.source])
    _print_table(rows, ["name", "kind", "plugin", "embed dim", "max tokens", "mteb name", "revision", "source"], args.format)
    return 0


def cmd_tasks(args) -> int:
    from lam_mteb import data

    reg = _registry()
    rows = [[t.name, t.cls.metadata.type, t.cls.metadata.main_score, ",".join(t.cls.metadata.eval_splits), t.plugin]
            for t in reg.tasks.values()]
    print("Tasks registered by plugins:")
    _print_table(rows, ["task", "type", "main score", "splits", "plugin"], args.format)
    gt = importlib.import_module("mteb.get_tasks")  # `mteb.get_tasks` the attribute is a function

    users: dict[str, list[str]] = {}
    for name, cls in gt._TASKS_REGISTRY.items():
        users.setdefault(cls.metadata.dataset.get("path", ""), []).append(name)
    root = data.data_dir()
    rows = []
    for path, (builder, desc, recreation, version, plugin) in sorted(data.builders().items()):
        status = "-"
        if root is not None:
            res = data.resolve(path, root, quiet=True)
            status = "available" if res.path else "missing"
        rows.append([path, ", ".join(sorted(users.get(path, []))[:4]) or "-", plugin,
                     "re-creation" if recreation else "copy", status, desc])
    print(f"\nOffline datasets (data dir: {root or 'LAM_MTEB_DATA_DIR not set'}):")
    _print_table(rows, ["dataset", "mteb tasks", "plugin", "data", "status", "raw layout"], args.format)
    return 0


def cmd_plugins(args) -> int:
    rows = [[p.name, p.source, p.version or "-", ", ".join(p.hooks) or "-", p.error or "ok"]
            for p in plugins.plugin_infos()]
    _print_table(rows, ["plugin", "source", "version", "hooks", "status"], args.format)
    return 0


# -- run ------------------------------------------------------------------------------------------

def _resolve_model(name: str) -> str:
    from mteb.models.model_implementations import MODEL_REGISTRY

    reg = _registry()
    try:
        return reg.model(name).name
    except LamMtebError:
        pass
    if name in MODEL_REGISTRY:
        return name
    ours = list(reg.models) + [c.full_name for c in reg.models.values()]
    close = difflib.get_close_matches(name, ours, n=3, cutoff=0.5) or difflib.get_close_matches(
        name, list(MODEL_REGISTRY), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise LamMtebError(f"unknown model {name!r}{hint} (`lam-mteb models` lists lam-mteb's models)")


def _resolve_tasks(names: list[str]):
    import mteb
    gt = importlib.import_module("mteb.get_tasks")  # `mteb.get_tasks` the attribute is a function

    for name in names:
        if name not in gt._TASKS_REGISTRY:
            close = difflib.get_close_matches(name, list(gt._TASKS_REGISTRY), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise LamMtebError(f"unknown task {name!r}{hint} (`mteb available-tasks` / `lam-mteb tasks` list them)")
    return mteb.get_tasks(tasks=names)


def _check_eval_splits(tasks, splits: list[str]) -> None:
    for task in tasks:
        unknown = sorted(set(splits) - set(task.metadata.eval_splits))
        if unknown:
            raise LamMtebError(f"--eval-splits {' '.join(unknown)}: {task.metadata.name} has no such split "
                               f"(its eval splits: {', '.join(task.metadata.eval_splits)})")


def cmd_run(args) -> int:
    if args.data_dir:
        if not Path(args.data_dir).is_dir():
            raise LamMtebError(f"--data-dir {args.data_dir} is not a directory")
        os.environ["LAM_MTEB_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.verify_data:
        os.environ["LAM_MTEB_VERIFY_DATA"] = "1"
    check_writable_folder(args.output_folder, "--output-folder")
    import mteb
    from mteb.cache import ResultCache

    from lam_mteb import bridge

    bridge.install()
    if args.device:
        bridge.check_device(args.device)
    models = [_resolve_model(m) for m in args.model]
    tasks = _resolve_tasks(args.tasks)
    if args.eval_splits:
        _check_eval_splits(tasks, args.eval_splits)
        tasks = mteb.get_tasks(tasks=args.tasks, eval_splits=args.eval_splits)
    logging.getLogger("mteb").setLevel(logging.WARNING if args.verbosity < 2 else logging.INFO)
    cache = ResultCache(args.output_folder)
    encode_kwargs = {"batch_size": args.batch_size} if args.batch_size else {}
    summary = []
    for model_name in models:
        t0 = time.perf_counter()
        model = mteb.get_model(model_name, device=args.device)
        results = mteb.evaluate(model, tasks, cache=cache, overwrite_strategy=args.overwrite_strategy,
                                encode_kwargs=encode_kwargs, show_progress_bar=True)
        elapsed = time.perf_counter() - t0
        meta = model.mteb_model_meta
        for task_result in results.task_results:
            for split, scores in task_result.scores.items():
                for subset in scores:
                    summary.append([meta.name, meta.revision[:12] if meta.revision else "-", task_result.task_name,
                                    split, subset.get("main_score"), f"{elapsed:.0f}s"])
    print()
    print(tabulate(summary, headers=["model", "revision", "task", "split", "main score", "wall"], floatfmt=".4f"))
    print(f"\nresults in {Path(args.output_folder).resolve() / 'results'} (mteb layout; load with mteb.ResultCache)")
    return 0


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="run models on tasks (a thin convenience over `mteb run`, with a summary table)")
    p.add_argument("-m", "--model", nargs="+", required=True, help="model name(s): lam-mteb or mteb models")
    p.add_argument("-t", "--tasks", nargs="+", required=True, help="task name(s)")
    p.add_argument("--output-folder", "--output_folder", default="results", help="results folder (default: results)")
    p.add_argument("--data-dir", help="offline data directory (default: $LAM_MTEB_DATA_DIR)")
    p.add_argument("--eval-splits", "--eval_splits", nargs="+", default=None)
    p.add_argument("--batch-size", "--batch_size", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--overwrite-strategy", default="only-missing", choices=["always", "never", "only-missing", "only-cache"])
    p.add_argument("--verify-data", action="store_true",
                   help="re-hash every local data file instead of trusting the (size, mtime) shortcut")
    p.add_argument("-v", "--verbosity", type=int, default=1)
    p.set_defaults(func=cmd_run)


# -- data -----------------------------------------------------------------------------------------

def cmd_data_import(args) -> int:
    from lam_mteb import data

    source = Path(args.source or os.environ.get("LAM_MTEB_DATA_DIR", "")).expanduser()
    if not str(source) or not source.is_dir():
        raise LamMtebError("give the raw data folder with --source DIR (or set LAM_MTEB_DATA_DIR)")
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    names = args.datasets or sorted(data.builders())
    failed = 0
    for name in names:
        try:
            target = data.import_dataset(name, source, out, force=args.force)
            print(f"{name}: written to {target}")
        except LamMtebError as exc:
            failed += 1
            print(f"{name}: skipped: {exc}", file=sys.stderr)
    return 1 if failed and args.datasets else 0


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="offline data: import raw files into the data-dir layout")
    dsub = p.add_subparsers(dest="data_command", required=True)
    imp = dsub.add_parser("import", help="build local copies of mteb datasets from raw files")
    imp.add_argument("datasets", nargs="*", help="mteb dataset paths (default: every dataset with a builder)")
    imp.add_argument("--source", help="raw data folder (default: $LAM_MTEB_DATA_DIR)")
    imp.add_argument("--out", required=True, help="data directory to write <dataset path>/ folders into")
    imp.add_argument("--force", action="store_true", help="rebuild a dataset folder that already exists")
    imp.set_defaults(func=cmd_data_import)


# -- leaderboard ----------------------------------------------------------------------------------

def _add_leaderboard(sub) -> None:
    p = sub.add_parser("leaderboard", help="tables + plot of our results beside published references")
    try:
        from lam_mteb import leaderboard

        add_arguments, run = leaderboard.add_arguments, leaderboard.run
    except (ImportError, AttributeError) as exc:  # pragma: no cover - a broken install
        message = f"the leaderboard module is unavailable ({exc}); reinstall lam-mteb"

        def unavailable(args):
            raise LamMtebError(message)

        p.set_defaults(func=unavailable)
        return
    add_arguments(p)
    p.set_defaults(func=run)


# -- main -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lam-mteb", description="A pluggable MTEB: models, tasks and leaderboards from plugins.")
    parser.add_argument("--version", action="version", version=f"lam-mteb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, func, help_ in [("models", cmd_models, "list registered models"),
                              ("tasks", cmd_tasks, "list plugin tasks and offline datasets"),
                              ("plugins", cmd_plugins, "list loaded plugins")]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--format", choices=["table", "markdown", "json"], default="table")
        p.set_defaults(func=func)
    _add_run(sub)
    _add_data(sub)
    _add_leaderboard(sub)
    check.add_parser(sub)
    card.add_parser(sub)
    pm = plugins.load_plugins()
    for impl in reversed(pm.hook.register_commands.get_hookimpls()):
        name = plugins.plugin_name_of(impl.plugin)
        try:
            impl.function(sub)
        except plugins.PLUGIN_FAILURES as exc:
            plugins.report(f"plugin {name!r} failed in register_commands: {type(exc).__name__}: {exc}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except LamMtebError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
