"""``lam-mteb leaderboard``: our mteb results beside published reference scores.

    lam-mteb leaderboard --results DIR [--results DIR ...] --out DIR [--references FILE]

Reads mteb results folders (``mteb run --output-folder DIR``) with mteb's own ``ResultCache`` /
``TaskResult`` / ``BenchmarkResults``, plus ``leaderboard/references.yaml``, and writes into
``--out``: ``README.md`` (markdown tables), ``leaderboard.html`` (one self-contained sortable
page), ``leaderboard.csv`` and ``leaderboard.png``.  The inputs are never modified; a file in
``--out`` that this command did not generate is never overwritten; a corrupt result file is
reported by path in one line and skipped.

The CLI wires :func:`add_arguments` and :func:`run` (handing it the registry, whose plugins
register the benchmarks); ``python -m lam_mteb.leaderboard`` runs it standalone.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from lam_mteb.errors import LamMtebError

if TYPE_CHECKING:
    from lam_mteb.registry import Registry

__all__ = ["add_arguments", "run", "main", "generate"]

HELP = "tables of our mteb results beside published scores (markdown, HTML, CSV, PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the leaderboard options to ``parser`` (a sub-parser of ``lam-mteb``)."""
    parser.add_argument(
        "--results",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="an mteb results folder (the --output-folder of `mteb run`, or its "
        "results/ sub-folder); repeat for several",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder for README.md, leaderboard.html, leaderboard.csv, leaderboard.png",
    )
    parser.add_argument(
        "--references",
        type=Path,
        default=None,
        metavar="FILE",
        help="published scores with provenance (default: lam-mteb's leaderboard/references.yaml)",
    )
    parser.add_argument("--no-references", action="store_true", help="show only the --results")
    parser.add_argument(
        "--recreated",
        action="append",
        default=[],
        metavar="TASK",
        help="label TASK's results as computed on locally re-created data (results "
        "files and plugins' dataset registrations are also consulted)",
    )
    parser.add_argument(
        "--produced-by",
        action="append",
        default=[],
        metavar="COMMAND",
        help="a command that produced the results, shown above the regenerate command "
        "(default for lam-mteb's own results/: its scripts/reproduce.sh)",
    )


def command_line(args: argparse.Namespace) -> str:
    parts = ["lam-mteb", "leaderboard"]
    for folder in args.results:
        parts += ["--results", str(folder)]
    if args.references is not None:
        parts += ["--references", str(args.references)]
    if args.no_references:
        parts.append("--no-references")
    for task in args.recreated:
        parts += ["--recreated", task]
    for cmd in args.produced_by:
        parts += ["--produced-by", cmd]
    parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(p) for p in parts)


def _references_file(args: argparse.Namespace, stderr: TextIO) -> str | Path | None:
    """--references, else the default references.yaml (None with --no-references or none)."""
    from lam_mteb.leaderboard import references

    if args.no_references:
        return None
    ref_file = args.references or references.default_references_file()
    if ref_file is None:
        stderr.write("lam-mteb leaderboard: no references.yaml found; showing the --results only\n")
    return ref_file


def _read_inputs(
    args: argparse.Namespace, ref_file: str | Path | None, stderr: TextIO, registry: Registry
) -> tuple[list, list[str], list[str]]:
    """(rows of our runs and the references, one line per input, problems while reading)."""
    from lam_mteb.leaderboard import references, spec
    from lam_mteb.leaderboard.results import _display_path, load_results

    ref_rows = []
    input_text = []
    loaded = load_results(args.results, recreated_tasks=args.recreated, datasets=registry.datasets)
    for folder in map(_display_path, map(Path, args.results)):
        n = sum(bool(r.path and Path(r.path).is_relative_to(folder)) for r in loaded.rows)
        input_text.append(f"results {folder} ({n} model run(s))")
    if ref_file:
        doc = references.load(ref_file, spec.benchmarks(registry))
        ref_rows = references.rows_from_references(doc)
        # the shipped file is named the same wherever the command runs (reproducible outputs)
        shown = (
            _display_path(Path(ref_file))
            if args.references
            else "lam-mteb's " + "/".join(Path(ref_file).parts[-2:])
        )
        input_text.append(f"references {shown} ({len(doc['entries'])} entries)")
    for problem in loaded.report.problems:
        stderr.write(f"lam-mteb leaderboard: {problem}\n")
    return loaded.rows + ref_rows, input_text, loaded.report.problems


def reproduce_script(folders: list[Path]) -> list[str]:
    """lam-mteb's own committed ``results/`` are produced by its ``scripts/reproduce.sh``: named
    (beside the folder as given) when ``folders`` is the results folder of a lam-mteb source
    checkout (whether lam-mteb runs from that checkout or from an installed copy)."""
    if len(folders) != 1 or folders[0].resolve().name != "results":
        return []
    checkout = folders[0].resolve().parent
    pyproject = checkout / "pyproject.toml"
    ours = (checkout / "scripts" / "reproduce.sh").is_file() and pyproject.is_file()
    if ours and re.search(r'^name\s*=\s*"lam-mteb"', pyproject.read_text(encoding="utf-8"), re.M):
        return [str(folders[0].parent / "scripts" / "reproduce.sh")]
    return []


def _render_files(tables: list, about: dict[str, Any]) -> dict[str, bytes | None]:
    """The README, HTML page, CSV and chart of the tables, by output file name."""
    from lam_mteb.leaderboard import output, render

    png = render.render_png(tables)
    md = render.render_markdown(tables, chart=output.PNG if png else None, **about)
    page = render.render_html(tables, png=png, **about)
    return {
        output.README: md.encode("utf-8"),
        output.HTML: page.encode("utf-8"),
        output.CSV: render.render_csv(tables).encode("utf-8"),
        output.PNG: png,
    }


def generate(
    args: argparse.Namespace, registry: Registry, *, stderr: TextIO | None = None
) -> list[Path]:
    """Build and write the outputs; raises LamMtebError on bad input. Returns the written paths."""
    from lam_mteb import __version__ as lam_mteb_version
    from lam_mteb import mteb_compat
    from lam_mteb.leaderboard import output, spec
    from lam_mteb.leaderboard.table import build_tables

    stderr = stderr or sys.stderr
    ref_file = _references_file(args, stderr)
    inputs = [Path(p) for p in args.results] + ([Path(ref_file)] if ref_file else [])
    for folder in args.results:
        if not Path(folder).is_dir():
            raise LamMtebError(
                f"results folder {folder} does not exist (pass the --output-folder of `mteb run`)"
            )
    output.check_out_dir(Path(args.out), inputs)
    rows, input_text, problems = _read_inputs(args, ref_file, stderr, registry)
    tables = build_tables(rows, spec.benchmarks(registry))
    produced_by = args.produced_by or reproduce_script([Path(p) for p in args.results])
    command = "\n".join([*produced_by, command_line(args)])
    about: dict[str, Any] = {
        "command": command,
        "inputs": input_text,
        "problems": problems,
        "versions": f"lam-mteb {lam_mteb_version}, mteb {mteb_compat.mteb_version()}.",
    }
    return output.write_outputs(Path(args.out), _render_files(tables, about))


def run(args: argparse.Namespace, registry: Registry) -> int:
    """The ``lam-mteb leaderboard`` sub-command; returns the exit code."""
    try:
        written = generate(args, registry)
    except LamMtebError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lam-mteb leaderboard", description=HELP)
    add_arguments(parser)
    from lam_mteb.plugins import host  # an entry point: the process's plugin host

    return run(parser.parse_args(argv), host.registry())
