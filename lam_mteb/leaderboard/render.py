"""Tables -> README.md (tabulate), leaderboard.html (self-contained, sortable), CSV and a PNG
chart."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import re
from typing import TYPE_CHECKING, Any

from lam_mteb.leaderboard import spec
from lam_mteb.leaderboard.table import Table, TableRow, ranked

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

MISSING = "–"
PARTIAL = "*"
RECREATED = "†"
CLAIMED = "‡"
BROKEN = "§"

MD_MARKER = f"<!-- {spec.MARKER} -->"
CSV_MARKER = f"# {spec.MARKER}"
PNG_SOFTWARE = spec.MARKER

KIND_LABEL = {
    spec.KIND_OURS: "ours",
    spec.KIND_PUBLISHED: "published",
    spec.KIND_CLAIMED: "claimed, not reproduced",
    spec.KIND_NO_SCORES: "no published scores",
    spec.KIND_BASELINE: "baseline",
}
KIND_COLOUR = {
    spec.KIND_OURS: "#d62728",
    spec.KIND_PUBLISHED: "#1f77b4",
    spec.KIND_CLAIMED: "#9e9e9e",
    spec.KIND_NO_SCORES: "#dddddd",
    spec.KIND_BASELINE: "#2ca02c",
}


# -- formatting --------------------------------------------------------------------------------


def md_escape(text: str) -> str:
    """Make user-supplied text (model names, sources, paths) inert in a markdown table or list:
    HTML-significant characters become entities, link/code/pipe characters are backslash-escaped
    and line breaks become spaces (a newline would start a new table row)."""
    text = str(text).replace("\\", "\\\\")
    text = html.escape(text, quote=False)
    for ch in "`[]|":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.splitlines())


#: a CSV cell starting with one of these is a formula in spreadsheet programs
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """Neutralise formula injection in a text cell (OWASP: prefix a quote); numbers pass through."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


_CSV_NUMBERS = {"score", "mean"}  # repr() of floats: a leading "-" is a sign, not a formula


def _csv_row(row: dict) -> dict:
    return {k: v if k in _CSV_NUMBERS else csv_safe(v) for k, v in row.items()}


def fmt_score(value: float | None) -> str:
    return MISSING if value is None else f"{value:.4f}"


def fmt_params(n: int | None) -> str:
    if not n:
        return MISSING
    if n >= 1e9:
        return f"{n / 1e9:.3g}B"
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    return f"{n / 1e3:.3g}k"


def fmt_int(n: int | float | None) -> str:
    if isinstance(n, float) and math.isinf(n):
        return "∞"
    return MISSING if not n else str(int(n))


def cell_text(tr: TableRow, task: str) -> str:
    cell = tr.cells.get(task)
    if cell is None:
        return MISSING
    return (
        fmt_score(cell.value)
        + (PARTIAL if cell.partial_note else "")
        + (RECREATED if cell.recreated else "")
    )


def mean_text(tr: TableRow) -> str:
    """The mean of a complete row (else the aggregate its source states, else –), marked."""
    if tr.mean is None:
        return MISSING if tr.summary is None else fmt_score(tr.summary.value) + CLAIMED
    marks = (RECREATED if tr.mean_recreated else "") + (BROKEN if tr.row.broken else "")
    return fmt_score(tr.mean) + marks


def column_header(table: Table, task: str) -> str:
    name = spec.abbreviation(table.bench, task)
    return f"{name} (not in mean)" if task in table.extras else name


def detail_columns(table: Table) -> list[tuple[str, str, str]]:
    """The benchmark's detail metrics (task, metric, header) for tasks the table shows."""
    return [
        (task, metric, f"{spec.abbreviation(table.bench, task)} {label}")
        for task, metric, label in table.bench.detail_metrics
        if task in table.columns
    ]


def detail_text(tr: TableRow, task: str, metric: str) -> str:
    cell = tr.cells.get(task)
    return fmt_score(cell.details.get(metric) if cell is not None else None)


def table_columns(table: Table) -> list[str]:
    return [
        "Rank",
        "Model",
        "Kind",
        *[column_header(table, t) for t in table.tasks],
        "Mean",
        *[column_header(table, t) for t in table.extras],
        *[h for _, _, h in detail_columns(table)],
        "Params",
        "Dim",
        "Max tokens",
        "Source",
    ]


def row_values(table: Table, tr: TableRow, *, markdown: bool) -> list[str]:
    row = tr.row
    ours = row.kind == spec.KIND_OURS
    model = md_escape(row.model) if markdown else row.model
    kind = KIND_LABEL[row.kind]
    if markdown and ours:
        model, kind = f"**{model}**", f"**{kind}**"
    source = md_escape(row.source) if markdown else row.source
    return [
        MISSING if tr.rank is None else str(tr.rank),
        model,
        kind,
        *[cell_text(tr, t) for t in table.tasks],
        mean_text(tr),
        *[cell_text(tr, t) for t in table.extras],
        *[detail_text(tr, t, m) for t, m, _ in detail_columns(table)],
        fmt_params(row.n_parameters),
        fmt_int(row.embed_dim),
        fmt_int(row.max_tokens),
        source,
    ]


def _who(tr: TableRow) -> str:
    """A row's name in a note: the model, with its source unless it is ours."""
    ours = tr.row.kind == spec.KIND_OURS
    return tr.row.model if ours else f"{tr.row.model} [{tr.row.source_short or tr.row.source}]"


def recreation_sentence(table: Table) -> str | None:
    """A table's first sentence (tables with our rows): which tasks ran here on local
    re-creations of their data, how each was made (the benchmark's ``recreations``) and checked:
    our score beside a published one of the same model revision on that task."""
    if not any(tr.row.kind == spec.KIND_OURS for tr in table.rows):
        return None
    tasks = [t for t in table.columns if any(t in tr.recreated_tasks for tr in table.rows)]
    if not tasks:
        return "No result here ran on a local re-creation of its task's data."
    parts = []
    for task in tasks:
        checks = [
            f"{ours.row.model} {fmt_score(mine.value)} here vs {fmt_score(theirs.value)} "
            f"published for the same model revision ({pub.row.model}, {pub.row.source})"
            for ours in table.rows
            if ours.row.kind == spec.KIND_OURS
            and ours.row.revision
            and (mine := ours.cells.get(task))
            and mine.recreated
            and not mine.partial_note
            for pub in table.rows
            if pub.row.kind == spec.KIND_PUBLISHED
            and not pub.row.broken
            and pub.row.revision == ours.row.revision
            and (theirs := pub.cells.get(task))
        ]
        how = table.bench.recreations.get(task, "a local re-creation")
        checked = f"; checked: {', '.join(checks)}" if checks else ""
        parts.append(f"{spec.abbreviation(table.bench, task)} = {how}{checked}")
    return f"Ran here on local re-creations of their data: {'; '.join(parts)}."


def footnotes(table: Table) -> list[str]:
    notes = []
    unranked = [tr for tr in table.rows if tr.row.kind in spec.RANKED_KINDS and not tr.complete]
    if unranked:
        by_tasks: dict[str, list[str]] = {}  # rows with the same tasks are named together
        for tr in unranked:
            has = [
                spec.abbreviation(table.bench, t) + (PARTIAL if cell.partial_note else "")
                for t in table.columns
                if (cell := tr.cells[t]) is not None
            ]
            by_tasks.setdefault(", ".join(has) or "none", []).append(_who(tr))
        parts = [f"{', '.join(rows)}: {has}" for has, rows in by_tasks.items()]
        notes.append(
            f"Not ranked, no mean (rows without all {len(table.tasks)} ranked tasks on all their "
            f"evaluation splits), with the tasks they have: {'; '.join(parts)}."
        )
    split_parts = sorted(
        {
            f"{spec.abbreviation(table.bench, t)} of {tr.row.model}: {cell.partial_note}"
            for tr in table.rows
            for t, cell in tr.cells.items()
            if cell is not None and cell.partial_note
        }
    )
    if split_parts:
        notes.append(
            f"{PARTIAL} on a task score: the mean over only some of the task's evaluation "
            f"splits, not comparable with complete scores ({'; '.join(split_parts)})."
        )
    recreated = [(tr, t) for tr in table.rows for t in tr.recreated_tasks]
    if recreated:
        # one clause per task and marker, naming its rows
        by_note: dict[tuple[str, str], set[str]] = {}
        for tr, t in recreated:
            cell = tr.cells[t]
            if cell is not None:
                key = (spec.abbreviation(table.bench, t), str(cell.recreation_note))
                by_note.setdefault(key, set()).add(tr.row.model)
        parts = [
            f"{task} of {', '.join(sorted(models))}: {note}"
            for (task, note), models in sorted(by_note.items())
        ]
        notes.append(
            f"{RECREATED} score on a local re-creation of the task's data (how each was made and "
            f"checked: the table's first sentence), labelled from ({'; '.join(parts)})."
        )
    for tr in table.rows:
        if tr.mean is None and tr.summary is not None:
            reported = f" (reported as {tr.summary.reported})" if tr.summary.reported else ""
            notes.append(
                f"{CLAIMED} {tr.row.model} [{tr.row.source}]: an aggregate the source states "
                f"without per-task numbers{reported}; {tr.summary.note}."
            )
    for tr in table.rows:
        if tr.row.broken:
            notes.append(
                f"{BROKEN} {_who(tr)}: the upstream run is documented as broken, not ranked: "
                f"{tr.row.broken}."
            )
    for tr in table.rows:
        if tr.row.note and tr.row.kind != spec.KIND_OURS and tr.row.note != KIND_LABEL[tr.row.kind]:
            notes.append(f"{tr.row.model} [{tr.row.source}]: {tr.row.note}.")
    return notes


def legend(table: Table) -> str:
    metrics = []
    for task in table.columns:
        abbr = spec.abbreviation(table.bench, task)
        label = abbr if abbr == task else f"{abbr} = {task}"
        metrics.append(label)
    for task, metric, header in detail_columns(table):
        metrics.append(f"{header} = {metric} of {task} (same split(s), not in the mean)")
    return "Columns: " + "; ".join(metrics) + "."


# -- markdown ----------------------------------------------------------------------------------


_MD_INTRO = (
    "Scores are mteb main scores as fractions (0–1), higher is better: each task's main "
    "metric averaged over its evaluation splits (only the test split where a task also "
    "evaluates a dev/validation split for tuning). **Kind** says where a row comes from: "
    "**ours** = a run of this project (source names its result files), *published* = a "
    "published number with its source, *claimed, not reproduced* = stated by a public source "
    "without a result file, never re-run here (not ranked), *no published scores* = listed for "
    "completeness, *baseline* = a reference predictor the task scored in our runs (ranked with "
    "the models). "
    f"{MISSING} = no score. Like for like: only rows with every task of a table (on all its "
    "evaluation splits) get a mean and a rank; the others are listed below them, unranked, "
    "with the tasks they have. Rank = Borda rank over the table's tasks, computed as mteb's "
    "leaderboard does (per task, rows earn n − rank points, ties share the average rank; "
    "summed points ranked with ties sharing the lowest rank); ours and published rows are "
    "ranked together, each row counting as one model."
)


def _markdown_head(command: str, inputs: list[str], versions: str) -> list[str]:
    """Title, the command that regenerates the page, its inputs and how to read the tables."""
    longest = max((len(m) for m in re.findall(r"`+", command)), default=0)
    fence = "`" * max(3, longest + 1)  # a path with ``` in it cannot close the code block
    return [
        MD_MARKER,
        "",
        "# lam-mteb leaderboard",
        "",
        "Regenerate with:",
        "",
        f"{fence}sh",
        command,
        fence,
        "",
        "Inputs: " + md_escape("; ".join(inputs)) + ".",
        "",
        versions,
        "",
        _MD_INTRO,
        "",
    ]


def _markdown_table(table: Table) -> list[str]:
    """One benchmark's section: title, description, the table, its legend and footnotes."""
    from tabulate import tabulate

    out = [f"## {table.bench.title}", ""]
    if first := recreation_sentence(table):
        out += [md_escape(first), ""]
    if table.bench.description:
        out += [table.bench.description, ""]
    rows = [row_values(table, tr, markdown=True) for tr in table.rows]
    out += [
        tabulate(rows, headers=table_columns(table), tablefmt="github", disable_numparse=True),
        "",
    ]
    out += [legend(table), ""]
    out += [f"- {md_escape(note)}" for note in footnotes(table)]
    return [*out, ""]


def render_markdown(
    tables: list[Table],
    *,
    command: str,
    inputs: list[str],
    problems: list[str],
    versions: str,
    chart: str | None,
) -> str:
    out = _markdown_head(command, inputs, versions)
    if chart:
        out += [f"![mean score per benchmark]({chart})", ""]
    for table in tables:
        out += _markdown_table(table)
    if not tables:
        out += ["No results and no references to show.", ""]
    if problems:
        out += ["## Problems while reading the inputs", ""]
        out += [f"- {md_escape(p)}" for p in problems]
        out += [""]
    return "\n".join(out).rstrip() + "\n"


# -- csv ---------------------------------------------------------------------------------------

CSV_FIELDS = (
    "benchmark rank model kind source revision task in_mean score metric split recreated mean "
    "n_tasks_present n_tasks n_parameters embed_dim max_tokens file"
).split()


def render_csv(tables: list[Table]) -> str:
    buf = io.StringIO()
    buf.write(CSV_MARKER + "\n")
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for table in tables:
        for tr in table.rows:
            base = {
                "benchmark": table.bench.key,
                "rank": tr.rank if tr.rank is not None else "",
                "model": tr.row.model,
                "kind": tr.row.kind,
                "source": tr.row.source,
                "revision": tr.row.revision or "",
                "mean": "" if tr.mean is None else repr(tr.mean),
                "n_tasks_present": tr.n_present,
                "n_tasks": tr.n_tasks,
                "n_parameters": tr.row.n_parameters or "",
                "embed_dim": tr.row.embed_dim or "",
                "max_tokens": tr.row.max_tokens or "",
            }
            for columns in _csv_task_columns(table, tr):
                writer.writerow(_csv_row({**base, **columns}))
    return buf.getvalue()


def _csv_task_columns(table: Table, tr: TableRow) -> list[dict]:
    """The task columns of a row's CSV lines: one line per task score, one for an aggregate its
    source states, else one line without a task (a row listed without scores)."""
    lines = [
        {
            "task": task,
            "in_mean": str(task in table.tasks).lower(),
            "score": repr(cell.value),
            "metric": cell.metric or "",
            "split": cell.split or "",
            "recreated": str(cell.recreated).lower(),
            "file": cell.file or "",
        }
        for task in table.columns
        if (cell := tr.cells.get(task)) is not None
    ]
    if tr.summary is not None:
        task = f"(stated {table.bench.key} aggregate)"
        score = repr(tr.summary.value)
        lines.append({"task": task, "in_mean": "false", "score": score, "recreated": "false"})
    return lines or [{"task": "", "in_mean": "", "score": "", "recreated": ""}]


# -- png ---------------------------------------------------------------------------------------


def _bar_label(tr: TableRow) -> str:
    label = tr.row.model
    if tr.row.kind != spec.KIND_OURS:
        label += f"  [{tr.row.source_short or tr.row.source}]"
    if len(label) > 70:
        label = label[:67] + "…"
    return label


def _bar_value(tr: TableRow) -> float:
    """A bar's length: the row's mean, else the aggregate its source states (panels hold only
    rows with one of them)."""
    if tr.mean is not None:
        return tr.mean
    assert tr.summary is not None
    return tr.summary.value


def _draw_panel(ax: Axes, table: Table, bars: list) -> None:
    """One benchmark's bars (best at the top), labelled with the row names and mean texts."""
    bars = list(reversed(bars))  # best at the top
    values = [_bar_value(tr) for tr in bars]
    colours = [KIND_COLOUR[tr.row.kind] for tr in bars]
    hatches = ["" if ranked(tr) else "//" for tr in bars]
    ys = range(len(bars))
    for y, v, c, h in zip(ys, values, colours, hatches, strict=True):
        ax.barh(y, v, color=c, hatch=h, edgecolor="white" if not h else "black", linewidth=0.6)
    ax.set_yticks(list(ys))
    labels = ax.set_yticklabels([_bar_label(tr) for tr in bars], fontsize=9)
    for label, tr in zip(labels, bars, strict=True):
        if tr.row.kind == spec.KIND_OURS:
            label.set_fontweight("bold")
    for y, v, tr in zip(ys, values, bars, strict=True):
        text = mean_text(tr)
        ax.text(v + 0.01, y, text, va="center", fontsize=8.5)
    ax.set_xlim(0, min(1.0, max(values) * 1.18 + 0.02) if values else 1.0)
    n = len(table.tasks)
    ax.set_title(
        f"{table.bench.title} — mean of all {n} task{'s' if n != 1 else ''}, rows in rank order",
        fontsize=11,
        loc="left",
    )
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend_handles(panels: list) -> list[Artist]:
    """Row kinds (baseline only when a panel shows one), then the hatch and marker meanings."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Artist] = [
        Patch(facecolor=KIND_COLOUR[k], label=KIND_LABEL[k])
        for k in (spec.KIND_OURS, spec.KIND_BASELINE, spec.KIND_PUBLISHED, spec.KIND_CLAIMED)
        if k != spec.KIND_BASELINE or any(tr.row.kind == k for _, bars in panels for tr in bars)
    ]
    handles.append(
        Patch(
            facecolor="white",
            edgecolor="black",
            hatch="//",
            label=f"not ranked: {CLAIMED} aggregate stated without per-task numbers, "
            f"{BROKEN} broken upstream run, claimed",
        )
    )
    handles.append(
        Line2D(
            [], [], linestyle="none", label=f"{RECREATED} includes scores on re-created task data"
        )
    )
    return handles


def render_png(tables: list[Table]) -> bytes | None:
    """Horizontal bars of each complete row's mean per benchmark (and aggregates sources state);
    None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = []
    for table in tables:
        bars = [tr for tr in table.rows if tr.mean is not None or tr.summary is not None]
        if bars:
            panels.append((table, bars))
    if not panels:
        return None
    heights = [max(1.6, 0.42 * len(bars) + 1.0) for _, bars in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(11, sum(heights) + 0.8),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (table, bars) in zip(axes[:, 0], panels, strict=True):
        _draw_panel(ax, table, bars)
    axes[-1, 0].set_xlabel("mean main score (0–1)")
    handles = _legend_handles(panels)
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": PNG_SOFTWARE})
    plt.close(fig)
    return buf.getvalue()


# -- html --------------------------------------------------------------------------------------

#: the page's template (package data: lam_mteb/templates/), rendered with autoescape on
HTML_TEMPLATE = "leaderboard.html.j2"

_ROW_CLASS = {
    spec.KIND_OURS: "ours",
    spec.KIND_PUBLISHED: "published",
    spec.KIND_CLAIMED: "claimed",
    spec.KIND_NO_SCORES: "none",
    spec.KIND_BASELINE: "baseline",
}


def _num(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"  # what the sort script's parseFloat reads
    return repr(float(value)) if isinstance(value, float) else str(value)


def _cell(sort_value: float | int | str | None, text: str) -> dict[str, str]:
    """A table cell for the template: its sort key (``data-v``) and its text."""
    v = sort_value if isinstance(sort_value, str) else _num(sort_value)
    return {"v": v, "text": text}


def _html_row(table: Table, tr: TableRow) -> dict[str, Any]:
    row = tr.row

    def score(task: str) -> dict[str, str]:
        cell = tr.cells.get(task)
        return _cell(cell.value if cell else None, cell_text(tr, task))

    def detail(task: str, metric: str) -> dict[str, str]:
        cell = tr.cells.get(task)
        return _cell(cell.details.get(metric) if cell else None, detail_text(tr, task, metric))

    mean_v = tr.mean if tr.mean is not None else (tr.summary.value if tr.summary else None)
    return {
        "cls": _ROW_CLASS[row.kind],
        "rank": _cell(tr.rank, MISSING if tr.rank is None else str(tr.rank)),
        "model": _cell(row.model, row.model),
        "kind": row.kind,
        "kind_label": KIND_LABEL[row.kind],
        "tasks": [score(t) for t in table.tasks],
        "mean": _cell(mean_v, mean_text(tr)),
        "extras": [score(t) for t in table.extras],
        "details": [detail(t, m) for t, m, _ in detail_columns(table)],
        "params": _cell(row.n_parameters, fmt_params(row.n_parameters)),
        "dim": _cell(row.embed_dim, fmt_int(row.embed_dim)),
        "max_tokens": _cell(row.max_tokens, fmt_int(row.max_tokens)),
        "source": _cell(row.source, row.source),
    }


def _html_table(table: Table) -> dict[str, Any]:
    """What the template shows of one benchmark: headers, rows, legend and footnotes."""
    text_cols = {"Model", "Kind", "Source"}
    return {
        "key": table.bench.key,
        "title": table.bench.title,
        "description": table.bench.description,
        "heads": [{"cls": "t" if h in text_cols else "n", "text": h} for h in table_columns(table)],
        "rows": [_html_row(table, tr) for tr in table.rows],
        "first": recreation_sentence(table) or "",
        "legend": legend(table),
        "notes": footnotes(table),
    }


def render_html(
    tables: list[Table],
    *,
    command: str,
    inputs: list[str],
    problems: list[str],
    versions: str,
    png: bytes | None,
) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lam_mteb", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(HTML_TEMPLATE).render(
        marker=spec.MARKER,
        command=command,
        inputs=inputs,
        versions=versions,
        png=base64.b64encode(png).decode("ascii") if png else "",
        tables=[_html_table(t) for t in tables],
        problems=problems,
        MISSING=MISSING,
        PARTIAL=PARTIAL,
        RECREATED=RECREATED,
        CLAIMED=CLAIMED,
        BROKEN=BROKEN,
    )
