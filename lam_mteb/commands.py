"""The core's ``lam-mteb`` sub-commands: models | tasks | plugins | run | encode | check | card |
data | leaderboard.

:class:`CoreCommands` is a plugin: the plugin host registers it with the plugin manager (as
``lam-mteb``, before any other plugin) and the CLI builds its parser through the same
``register_commands`` hook for it and for every plugin.  It is imported whenever plugins load
(``import mteb`` does), so what the commands need is imported when they run.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lam_mteb import mteb_compat
from lam_mteb.errors import LamMtebError
from lam_mteb.hookspecs import hookimpl
from lam_mteb.inputs import did_you_mean
from lam_mteb.paths import check_writable_folder

if TYPE_CHECKING:
    from mteb import Benchmark
    from mteb.abstasks import AbsTask

    from lam_mteb import runner
    from lam_mteb.contract import ArgumentGroup, SubParsers
    from lam_mteb.plugins import PluginHost


class CoreCommands:
    """The core's sub-commands, as a plugin of one plugin host."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    @hookimpl
    def register_commands(self, subparsers: SubParsers) -> None:
        from lam_mteb import card, check, encode

        host = self.host
        for name, func, help_ in [
            ("models", cmd_models, "list registered models"),
            ("tasks", cmd_tasks, "list plugin tasks and offline datasets"),
            ("plugins", cmd_plugins, "list loaded plugins"),
        ]:
            p = subparsers.add_parser(name, help=help_)
            p.add_argument("--format", choices=["table", "markdown", "json"], default="table")
            p.set_defaults(func=functools.partial(func, host))
        _add_run(subparsers, host)
        encode.add_parser(subparsers, host)
        _add_data(subparsers, host)
        _add_leaderboard(subparsers, host)
        check.add_parser(subparsers, host)
        card.add_parser(subparsers, host)


def _print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: str) -> None:
    from tabulate import tabulate

    if fmt == "json":
        print(json.dumps([dict(zip(headers, r, strict=True)) for r in rows], indent=2, default=str))
    else:
        print(tabulate(rows, headers=headers, tablefmt="github" if fmt == "markdown" else "simple"))


# -- models / tasks / plugins ------------------------------------------------------------------


def cmd_models(host: PluginHost, args: argparse.Namespace) -> int:
    reg = host.registry(strict=True)
    rows = [
        [c.name, c.kind.name, c.kind.plugin, c.embed_dim or "?"]
        + [c.metadata.get("max_tokens") or "?", c.full_name, c.revision, c.source]
        for c in reg.models.values()
    ]
    _print_table(
        rows,
        ["name", "kind", "plugin", "embed dim", "max tokens", "mteb name", "revision", "source"],
        args.format,
    )
    return 0


def cmd_tasks(host: PluginHost, args: argparse.Namespace) -> int:
    from lam_mteb import data

    reg = host.registry(strict=True)
    rows = [
        [
            t.name,
            t.cls.metadata.type,
            t.cls.metadata.main_score,
            ",".join(t.cls.metadata.eval_splits),
            t.plugin,
        ]
        for t in reg.tasks.values()
    ]
    print("Tasks registered by plugins:")
    _print_table(rows, ["task", "type", "main score", "splits", "plugin"], args.format)
    users: dict[str, list[str]] = {}
    for name, cls in mteb_compat.task_classes().items():
        users.setdefault(cls.metadata.dataset.get("path", ""), []).append(name)
    root = data.data_dir()
    rows = []
    for path, entry in sorted(host.data.builders().items()):
        status = "-"
        if root is not None:
            res = host.data.resolve(path, root, quiet=True)
            status = "available" if res.path else "missing"
        rows.append(
            [
                path,
                ", ".join(sorted(users.get(path, []))[:4]) or "-",
                entry.plugin,
                "re-creation" if entry.recreation else "copy",
                status,
                entry.description,
            ]
        )
    print(f"\nOffline datasets (data dir: {root or 'LAM_MTEB_DATA_DIR not set'}):")
    _print_table(
        rows, ["dataset", "mteb tasks", "plugin", "data", "status", "raw layout"], args.format
    )
    return 0


def cmd_plugins(host: PluginHost, args: argparse.Namespace) -> int:
    rows = [
        [p.name, p.source, p.version or "-", ", ".join(p.hooks) or "-", p.error or "ok"]
        for p in host.infos()
    ]
    _print_table(rows, ["plugin", "source", "version", "hooks", "status"], args.format)
    return 0


# -- run -----------------------------------------------------------------------------------------


def _resolve_model(host: PluginHost, name: str) -> str:
    reg = host.registry(strict=True)
    try:
        return reg.model(name).name
    except LamMtebError:
        pass
    if host.bridge.has_model(name):
        return name
    ours = list(reg.models) + [c.full_name for c in reg.models.values()]
    hint = did_you_mean(name, ours, fallback=mteb_compat.model_names())
    raise LamMtebError(f"unknown model {name!r}{hint} (`lam-mteb models` lists lam-mteb's models)")


def _resolve_tasks(names: list[str]) -> Sequence[AbsTask]:
    import mteb

    known = mteb_compat.task_classes()
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known, cutoff=0.6)
            raise LamMtebError(
                f"unknown task {name!r}{hint} (`mteb available-tasks` / `lam-mteb tasks` list them)"
            )
    return mteb.get_tasks(tasks=names)


def _check_eval_splits(tasks: Iterable[AbsTask], splits: list[str]) -> None:
    for task in tasks:
        unknown = sorted(set(splits) - set(task.metadata.eval_splits))
        if unknown:
            raise LamMtebError(
                f"--eval-splits {' '.join(unknown)}: {task.metadata.name} has no such split "
                f"(its eval splits: {', '.join(task.metadata.eval_splits)})"
            )


def _resolve_benchmark(name: str) -> Benchmark:
    import mteb

    try:
        return mteb.get_benchmark(name)
    except Exception:  # noqa: BLE001 - mteb raises KeyError or ValueError by version
        hint = did_you_mean(name, [b.name for b in mteb.get_benchmarks()])
        raise LamMtebError(
            f"unknown benchmark {name!r}{hint} (`mteb available-benchmarks` lists them)"
        ) from None


def cmd_run(host: PluginHost, args: argparse.Namespace) -> int:
    from lam_mteb import bridge, runner

    _check_run_args(args)
    if args.executor == "ray":
        runner.import_ray()  # one line on how to install it, before any work
    shard = runner.parse_shard(args.shard) if args.shard else None
    host.bridge.install()
    for device in args.device or []:
        bridge.check_device(device)
    pairs = runner.expand(_run_models(host, args.model), _run_tasks(args))
    if shard:
        pairs = runner.shard(pairs, *shard)
        print(f"shard {shard[0]}/{shard[1]}: {len(pairs)} pair(s) of this grid", file=sys.stderr)
    logging.getLogger("mteb").setLevel(logging.WARNING if args.verbosity < 2 else logging.INFO)
    t0 = time.perf_counter()
    outcomes = runner.run_grid(pairs, _grid_config(args))
    _print_run_summary(args, outcomes, time.perf_counter() - t0)
    return _run_exit_code(outcomes)


def _check_run_args(args: argparse.Namespace) -> None:
    """Bad flags of ``lam-mteb run`` fail here, before any work; --data-dir and --verify-data
    reach the workers through the environment."""
    if args.data_dir:
        if not Path(args.data_dir).is_dir():
            raise LamMtebError(f"--data-dir {args.data_dir} is not a directory")
        os.environ["LAM_MTEB_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.verify_data:
        os.environ["LAM_MTEB_VERIFY_DATA"] = "1"
    check_writable_folder(args.output_folder, "--output-folder")
    if not args.tasks and not args.benchmark:
        raise LamMtebError("give tasks with -t/--tasks and/or mteb benchmarks with --benchmark")
    if args.jobs < 1:
        raise LamMtebError("--jobs must be at least 1")


def _run_models(host: PluginHost, names: list[str]) -> list[str]:
    """mteb's full names of the models (every lam-mteb and mteb model's meta has one)."""
    import mteb

    resolved = [_resolve_model(host, m) for m in names]
    return list(dict.fromkeys(mteb.get_model_meta(m).name or m for m in resolved))


def _run_tasks(args: argparse.Namespace) -> list[AbsTask]:
    """The mteb task objects of -t/--tasks (with --eval-splits) and --benchmark."""
    import mteb

    tasks: list[AbsTask] = []
    if args.tasks:
        tasks.extend(_resolve_tasks(args.tasks))
        if args.eval_splits:
            _check_eval_splits(tasks, args.eval_splits)
            tasks = list(mteb.get_tasks(tasks=args.tasks, eval_splits=args.eval_splits))
    for name in args.benchmark or []:
        tasks.extend(_resolve_benchmark(name).tasks)
    return tasks


def _grid_config(args: argparse.Namespace) -> runner.GridConfig:
    from lam_mteb import encode, runner

    # several devices: one model, a multi-process pool over them (encoders that accept it)
    device, encode_kwargs = encode.device_and_kwargs(args)
    if args.batch_size:
        encode_kwargs["batch_size"] = args.batch_size
    return runner.GridConfig(
        output_folder=Path(args.output_folder),
        executor=args.executor,
        jobs=args.jobs,
        cpus_per_job=args.cpus_per_job,
        gpus_per_job=args.gpus_per_job,
        address=args.address,
        device=device,
        encode_kwargs=encode_kwargs,
        overwrite_strategy=args.overwrite_strategy,
        verbosity=args.verbosity,
    )


def _print_run_summary(args: argparse.Namespace, outcomes: list, wall: float) -> None:
    from tabulate import tabulate

    from lam_mteb import runner

    print()
    print(
        tabulate(
            runner.summary_rows(outcomes),
            headers=runner.SUMMARY_HEADERS,
            floatfmt=("", "", "", ".4f", ".1f", ""),
            missingval="-",
        )
    )
    counts = {
        s: sum(o.status == s for o in outcomes)
        for s in ("done", "cached", "exists", "failed", "missing")
    }
    jobs = f", {args.jobs} jobs" if args.executor == "local" else ""
    print(
        f"\n{len(outcomes)} pair(s): "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f"; wall {wall:.1f}s ({args.executor}{jobs})"
    )
    results = Path(args.output_folder).resolve() / "results"
    print(f"results in {results} (mteb layout; load with mteb.ResultCache)")


def _run_exit_code(outcomes: list) -> int:
    """0 when every pair has a result; 2 with one ``error:`` line per pair when only bad input
    failed; 1 (failed pairs listed, to rerun) otherwise."""
    bad = [o for o in outcomes if not o.ok]
    if bad and all(o.user_error for o in bad):
        for o in bad:
            print(f"error: {o.pair.label}: {o.error}", file=sys.stderr)
        return 2
    if bad:
        print("\nfailed pairs (run the same command again to retry only these):", file=sys.stderr)
        for o in bad:
            print(
                f"  {o.pair.label}: {o.error}" + (f" (traceback: {o.log})" if o.log else ""),
                file=sys.stderr,
            )
        return 1
    return 0


def _add_run(sub: SubParsers, host: PluginHost) -> None:
    p = sub.add_parser(
        "run",
        help="run a grid of models x tasks (in-process, a local process pool, Ray, or a shard)",
    )
    _run_selection(p.add_argument_group("what to run"))
    _run_data(p.add_argument_group("data and results"))
    _run_encoding(p.add_argument_group("encoding"))
    _run_execution(p.add_argument_group("where to run"))
    p.add_argument("-v", "--verbosity", type=int, default=1)
    p.set_defaults(func=functools.partial(cmd_run, host))


def _run_selection(g: ArgumentGroup) -> None:
    g.add_argument(
        "-m", "--model", nargs="+", required=True, help="model name(s): lam-mteb or mteb models"
    )
    g.add_argument("-t", "--tasks", nargs="+", default=None, help="task name(s)")
    g.add_argument(
        "--benchmark", nargs="+", default=None, help="mteb benchmark name(s), e.g. 'MTEB(eng, v2)'"
    )
    g.add_argument(
        "--eval-splits",
        "--eval_splits",
        nargs="+",
        default=None,
        help="splits to evaluate (default: each task's own)",
    )


def _run_data(g: ArgumentGroup) -> None:
    g.add_argument(
        "--output-folder",
        "--output_folder",
        default="results",
        help="results folder (default: results)",
    )
    g.add_argument("--data-dir", help="offline data directory (default: $LAM_MTEB_DATA_DIR)")
    g.add_argument(
        "--overwrite-strategy",
        default="only-missing",
        choices=["always", "never", "only-missing", "only-cache"],
        help="mteb's: which model x task results to (re)compute (default: only-missing)",
    )
    g.add_argument(
        "--verify-data",
        action="store_true",
        help="re-hash every local data file instead of trusting the (size, mtime) shortcut",
    )


def _run_encoding(g: ArgumentGroup) -> None:
    g.add_argument(
        "--batch-size",
        "--batch_size",
        type=int,
        default=None,
        help="texts per encode batch (default: mteb's, 32)",
    )
    g.add_argument(
        "--encode-kwargs",
        default=None,
        help='JSON object passed to every encode call, e.g. \'{"device": ["cuda:0", "cuda:1"]}\'',
    )
    g.add_argument(
        "--device",
        nargs="+",
        default=None,
        help="cpu (default) or cuda; several devices: encoders that accept a device list "
        "use them all",
    )


def _run_execution(g: ArgumentGroup) -> None:
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: this machine, --jobs processes (default); ray: one Ray task per pair",
    )
    g.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="local: pairs at a time, each in its own process; 1 (default) runs them here, "
        "one after another",
    )
    g.add_argument(
        "--cpus-per-job",
        type=float,
        default=1.0,
        help="CPUs per pair (Ray resources; local: torch threads)",
    )
    g.add_argument("--gpus-per-job", type=float, default=0.0, help="GPUs per pair (Ray resources)")
    g.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)",
    )
    g.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run every N-th pair starting at I "
        "(SLURM arrays: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)",
    )


# -- data ----------------------------------------------------------------------------------------


def cmd_data_import(host: PluginHost, args: argparse.Namespace) -> int:
    source = Path(args.source or os.environ.get("LAM_MTEB_DATA_DIR", "")).expanduser()
    if not str(source) or not source.is_dir():
        raise LamMtebError("give the raw data folder with --source DIR (or set LAM_MTEB_DATA_DIR)")
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    names = args.datasets or sorted(host.data.builders())
    failed = 0
    for name in names:
        try:
            target = host.data.import_dataset(name, source, out, force=args.force)
            print(f"{name}: written to {target}")
        except LamMtebError as exc:
            failed += 1
            print(f"{name}: skipped: {exc}", file=sys.stderr)
    return 1 if failed and args.datasets else 0


def _add_data(sub: SubParsers, host: PluginHost) -> None:
    p = sub.add_parser("data", help="offline data: import raw files into the data-dir layout")
    dsub = p.add_subparsers(dest="data_command", required=True)
    imp = dsub.add_parser("import", help="build local copies of mteb datasets from raw files")
    imp.add_argument(
        "datasets", nargs="*", help="mteb dataset paths (default: every dataset with a builder)"
    )
    imp.add_argument("--source", help="raw data folder (default: $LAM_MTEB_DATA_DIR)")
    imp.add_argument(
        "--out", required=True, help="data directory to write <dataset path>/ folders into"
    )
    imp.add_argument(
        "--force", action="store_true", help="rebuild a dataset folder that already exists"
    )
    imp.set_defaults(func=functools.partial(cmd_data_import, host))


# -- leaderboard ---------------------------------------------------------------------------------


def _add_leaderboard(sub: SubParsers, host: PluginHost) -> None:
    p = sub.add_parser(
        "leaderboard", help="tables + plot of our results beside published references"
    )
    try:
        from lam_mteb import leaderboard

        add_arguments, run = leaderboard.add_arguments, leaderboard.run
    except (ImportError, AttributeError) as exc:  # pragma: no cover - a broken install
        message = f"the leaderboard module is unavailable ({exc}); reinstall lam-mteb"

        def unavailable(args: argparse.Namespace) -> NoReturn:
            raise LamMtebError(message)

        p.set_defaults(func=unavailable)
        return
    add_arguments(p)
    p.set_defaults(func=lambda args: run(args, host.registry()))
