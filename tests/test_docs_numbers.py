"""Every score-like number in README.md and docs/*.md has a committed file behind it.

**What is checked.**  A *score-like number* is a decimal fraction written with at least two
decimals, with or without its leading zero and with an optional sign: ``0.8203``, ``0.826``,
``.83``, ``0.02``, ``−0.0071`` (the regex ``NUMBER``).  Other shapes are not scores and are not
checked here: ``1.028×``, ``1.00``, ``694 MB``, ``50 816 bytes``, ``0.5`` (one decimal: weights
and settings), versions (``2.26.20``).

**When a number is accepted.**  When a value in a committed file rounds to it at the number's own
precision (``0.827`` ← 0.826684, ``.83`` ← 0.8326; a negative number needs a negative value).
The files (``file_values``): every result file ``results/**/*.json`` (mteb's layout), the dev-set
rows ``research/*.json`` / ``research/*.jsonl``, the speed and memory runs ``benchmarks/*.json``,
the shipped checkpoints' ``config.json`` (written by the training command with its dev/test
numbers), ``leaderboard/leaderboard.csv`` and ``leaderboard/references.yaml``; and, when the
shared data folder is present (``../shared/data``, ``LAM_MTEB_SHARED_DATA``, as
tests/conftest.py finds it), the published reference result files that references.yaml points
at (per-split numbers that references.yaml does not copy).  Without that folder the numbers
that only those files could back are reported by a skip, not a failure.

**Beside a model's name.**  A number that belongs to a registered model — in a table row whose
first cell starts with the model's name in backticks, in a table column headed by a model's name,
or right after the name in backticks in a sentence (only words between them: "`lam-hybrid` QMSum
0.7566", not "`a` / `b`: 0.1 / 0.2") —
is accepted only from that model's own result files at its *current* revision
(``results/results/lam-mteb__<name>/<revision>/<Task>.json``, the revision the registry gives
it now), so a number of an earlier model or of LAM v1 cannot stand under a current name.

A number with an explicit sign (``+0.139``, ``−0.0275``) may also be a *difference*: it is
accepted when two accepted numbers of the same paragraph differ by it (at its precision).

The files hold thousands of values, so a number that matches none of them is certainly not from a
file, while one that matches may still be quoted under the wrong name: the rule for numbers
beside a model's name is the sharper check, and the generated tables are the sharpest.

**Not checked, by rule** (each is a setting, a bound or a measurement of another kind, not a
score; ``skipped_spans`` and ``is_setting``):

- inline code and fenced code blocks (commands, parameters, formulas: "`temperature: 0.05`");
- the generated tables between ``<!-- results-table: NAME -->`` markers
  (tests/test_results_tables.py compares them with the files);
- a number right after a comparison, tolerance or approximation sign (``≥ 0.45``, ``< 0.01``,
  ``± 0.002``, ``≈ 0.06``, ``~0.01``): a goal, bound or rounded remark, not a measured score;
- a number right after a parameter's name (``τ 0.05``, ``k1 0.9``, ``b 0.3``, ``w = 0.25``,
  ``λ 0.75``, ``weight 0.25``, ``p = 0.25``, ``lr``, ``wd``, ``dropout``): a setting;
- a number right before ``·`` (a coefficient of a formula: ``0.25 · cos(q, mean)``) or before a
  unit (``0.3 ms``, ``0.5 MB``, ``12 %``): a setting, a time or a size.

No number is exempted by hand: a number of the docs that no file backs is fixed in the docs.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

MINUS = "−-"  # U+2212 (typeset) and ASCII
NUMBER = re.compile(
    r"(?<![\w.,/\-−+])"  # not inside a word, a version, a path or a larger number
    r"(?P<sign>[+−]|-(?=0?\.\d))?"
    r"(?P<num>0?\.\d{2,})"
    r"(?![\d.]\d|\w)"  # not a version (0.10.2) or part of an identifier
)
# a number right after one of these (and optional spaces, "=" or ":") is a setting or a bound
SETTING_BEFORE = re.compile(
    r"(?:[≥≤<>±≈~]|\bwithin|τ|λ|β|\bk1|\bb|\bw|\bp|\blr|\bwd|dropout|decay|weight|"
    r"temperature|\btau)\s*[=:]?\s*$"
)
# a number right before one of these is a coefficient, a time or a size
UNIT_AFTER = re.compile(r"^\s*(?:·|ms\b|s\b|MB\b|GB\b|KB\b|kB\b|%|M\b|min\b)")


def _inside(spans: list[tuple[int, int]]) -> Callable[[int], bool]:
    return lambda pos: any(a <= pos < b for a, b in spans)


def skipped_spans(text: str) -> list[tuple[int, int]]:
    """Fenced code blocks, generated results tables and inline code: (start, end) offsets."""
    spans = [m.span() for m in re.finditer(r"^```.*?^```", text, re.S | re.M)]
    spans += [
        m.span()
        for m in re.finditer(r"<!-- results-table: [^>]*-->.*?<!-- /results-table -->", text, re.S)
    ]
    inside = _inside(spans)
    spans += [m.span() for m in re.finditer(r"`[^`\n]+`", text) if not inside(m.start())]
    return spans


def _line(text: str, pos: int) -> tuple[int, str]:
    """(offset of the line's start, the line) holding ``pos``."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, text[start : None if end < 0 else end]


def is_setting(text: str, start: int, end: int) -> bool:
    line_start, line = _line(text, start)
    before, after = line[: start - line_start], line[end - line_start :]
    return bool(SETTING_BEFORE.search(before) or UNIT_AFTER.search(after))


class Found(NamedTuple):
    line: int
    written: str
    value: float
    decimals: int
    paragraph: int
    offset: int


def doc_numbers(text: str) -> Iterator[Found]:
    """Every checked number of a markdown text."""
    inside = _inside(skipped_spans(text))
    paragraph_starts = [0] + [m.end() for m in re.finditer(r"\n\s*\n", text)]
    for m in NUMBER.finditer(text):
        if inside(m.start()) or is_setting(text, m.start(), m.end()):
            continue
        num, sign = m.group("num"), m.group("sign") or ""
        yield Found(
            line=text.count("\n", 0, m.start()) + 1,
            written=m.group(0),
            value=-float(num) if sign and sign in MINUS else float(num),
            decimals=len(num.split(".")[1]),
            paragraph=sum(1 for p in paragraph_starts if p <= m.start()),
            offset=m.start(),
        )


def _cells(line: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of a markdown table row's cells, offsets within the line."""
    bars = [i for i, c in enumerate(line) if c == "|"]
    return [(a + 1, b, line[a + 1 : b].strip()) for a, b in zip(bars, bars[1:], strict=False)]


def owner(text: str, offset: int, models: set[str]) -> str | None:
    """The registered model a number is written beside (module docstring), or None."""
    line_start, line = _line(text, offset)
    pos = offset - line_start
    if line.lstrip().startswith("|"):
        cells = _cells(line)
        first = re.match(r"\*{0,2}`([^`]+)`", cells[0][2]) if cells else None
        if first and first.group(1) in models:
            return first.group(1)
        above = text[: max(line_start - 1, 0)].split("\n")
        header = line
        while above and above[-1].lstrip().startswith("|"):  # up to the table's first row
            header = above.pop()
        head = _cells(header)
        column = next((i for i, (a, b, _) in enumerate(cells) if a <= pos < b), None)
        if header is line or column is None or column >= len(head):
            return None
        name = head[column][2].strip("`* ")
        return name if name in models else None
    spans = list(re.finditer(r"`([^`]+)`", line[:pos]))
    last = spans[-1] if spans else None
    if last and last.group(1) in models and not re.search(r"/\s*$", line[: last.start()]):
        gap = line[last.end() : pos]
        if len(gap) <= 40 and not re.search(r"[\d/;`]|\bvs\b", gap):
            return last.group(1)
    return None


def _floats(obj: object) -> Iterator[float]:
    if isinstance(obj, bool):
        return
    if isinstance(obj, int | float):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _floats(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _floats(v)
    elif isinstance(obj, str):
        try:
            yield float(obj)
        except ValueError:
            return


def file_values(root: Path = REPO) -> set[float]:
    """Every number in the committed files the docs may quote (module docstring)."""
    values: set[float] = set()
    paths = [
        *root.glob("results/**/*.json"),
        *root.glob("research/*.json"),
        *root.glob("benchmarks/*.json"),
        *root.glob("plugins/lam_mteb_plugins/**/config.json"),
    ]
    for path in paths:
        values.update(_floats(json.loads(path.read_text(encoding="utf-8"))))
    for path in [*root.glob("research/*.jsonl"), *root.glob("results/**/*.jsonl")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                values.update(_floats(json.loads(line)))
    with (root / "leaderboard" / "leaderboard.csv").open(encoding="utf-8") as f:
        for row in csv.reader(line for line in f if not line.startswith("#")):
            values.update(_floats(row))
    values.update(_floats(yaml.safe_load((root / "leaderboard" / "references.yaml").read_text())))
    return values


def model_values(root: Path = REPO) -> dict[str, set[float]]:
    """Each registered model's numbers: its result files at the revision it has now."""
    from lam_mteb import plugins

    out: dict[str, set[float]] = {}
    for name, cfg in plugins.get_registry().models.items():
        folder = root / "results" / "results" / f"{cfg.org}__{cfg.name}" / cfg.revision
        out[name] = set()
        for path in folder.glob("*.json"):
            if path.name == "model_meta.json":
                continue
            result = json.loads(path.read_text(encoding="utf-8"))
            out[name].update(_floats(result))
            # a task's score over several splits (Passkey/Needle: eight lengths) is their mean
            mains = [s["main_score"] for split in result.get("scores", {}).values() for s in split]
            if mains:
                out[name].add(sum(mains) / len(mains))
    return out


def reference_files(root: Path = REPO) -> list[str]:
    """The published result files references.yaml points at (relative to the data folder)."""
    refs = yaml.safe_load((root / "leaderboard" / "references.yaml").read_text())
    return sorted(
        {
            score["file"]
            for entry in refs["entries"]
            for score in (entry.get("scores") or {}).values()
            if isinstance(score, dict) and str(score.get("file", "")).endswith(".json")
        }
    )


def reference_values(data: Path) -> set[float]:
    values: set[float] = set()
    for rel in reference_files():
        values.update(_floats(json.loads((data / rel).read_text(encoding="utf-8"))))
    return values


def matches(value: float, decimals: int, values: set[float]) -> bool:
    """Some value rounds to ``value`` at ``decimals`` places (the sign included)."""
    return round(value, decimals) in {round(v, decimals) for v in values}


def unbacked(
    values: set[float], per_model: dict[str, set[float]], docs: list[Path] | None = None
) -> list[str]:
    """'file:line: number' for every checked number of the docs that no file value backs."""
    rounded = {d: {round(v, d) for v in values} for d in range(2, 10)}
    out = []
    for path in docs or DOCS:
        text = path.read_text(encoding="utf-8")
        found = list(doc_numbers(text))
        owners = [owner(text, f.offset, set(per_model)) for f in found]
        ok = [
            matches(f.value, f.decimals, per_model[o])
            if o
            else round(f.value, f.decimals) in rounded[min(f.decimals, 9)]
            for f, o in zip(found, owners, strict=True)
        ]
        for f, o, good in zip(found, owners, ok, strict=True):
            if good:
                continue
            if f.written[0] in "+−-":  # a difference of two backed numbers of the paragraph?
                peers = [
                    abs(g.value)
                    for g, k in zip(found, ok, strict=True)
                    if k and g.paragraph == f.paragraph
                ]
                slack = 1.01 * 10 ** (-f.decimals)
                if any(abs(abs(a - b) - abs(f.value)) <= slack for a in peers for b in peers):
                    continue
            name = path.name if docs else path.relative_to(REPO)
            out.append(f"{name}:{f.line}: {f.written}" + (f" (beside `{o}`)" if o else ""))
    return out


# ----------------------------------------------------------------------------- the check


def test_every_score_in_the_docs_has_a_committed_file_behind_it():
    per_model, values = model_values(), file_values()
    missing = unbacked(values, per_model)
    # a number beside a model's name is checked against that model's result files only, which
    # the repository holds; the others may be published numbers of the shared data folder
    if SHARED_DATA.is_dir():
        missing = unbacked(values | reference_values(SHARED_DATA), per_model)
    elif any("(beside `" not in m for m in missing):
        assert all("(beside `" not in m for m in missing), "\n".join(missing)
        pytest.skip(
            f"{len(missing)} number(s) of the docs match no committed file; the published "
            f"reference files that could back them are in {SHARED_DATA}, which is absent "
            f"(set LAM_MTEB_SHARED_DATA): {', '.join(missing[:10])}"
        )
    assert not missing, (
        "numbers in the docs that no committed result, research, benchmark, checkpoint or "
        "reference file backs (fix the doc: quote the file's value, or drop the number):\n"
        + "\n".join(missing)
    )


def test_the_reference_files_exist_when_the_data_folder_does():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data folder {SHARED_DATA} is absent (set LAM_MTEB_SHARED_DATA)")
    files = reference_files()
    assert files and all((SHARED_DATA / f).is_file() for f in files)


# ----------------------------------------------------------------------------- the rules


def _checked(text: str) -> list[str]:
    return [f.written for f in doc_numbers(text)]


def test_the_pattern_finds_scores_in_every_written_form():
    text = "STS-B 0.8203, SciFact .83 and 0.02 per query; margin −0.0071, gain +0.139 (0.826)."
    assert _checked(text) == ["0.8203", ".83", "0.02", "−0.0071", "+0.139", "0.826"]


def test_other_number_shapes_are_not_scores():
    text = "1.028× faster, 1.00 accuracy, 694 MB, 0.5 weight, mteb 2.26.20, v0.10.2, 50 816 bytes"
    assert _checked(text) == []


def test_code_generated_tables_settings_and_bounds_are_not_checked():
    text = (
        "`temperature: 0.05` and\n```\nread = 0.25 * x\n```\n"
        "<!-- results-table: t -->\n| 0.7691 |\n<!-- /results-table -->\n"
        "τ 0.05, k1 0.9, b 0.3, w = 0.25, λ 0.75, goal ≥ 0.45, within ± 0.002, ≈ 0.06, ~0.01, "
        "0.25 · cos(q, m), 0.3 ms, 0.5 MB, 12.5 %; but 0.7332 is a score"
    )
    assert _checked(text) == ["0.7332"]


def test_a_number_is_backed_by_a_value_that_rounds_to_it():
    values = {0.826684, 0.8326, -0.0007}
    assert matches(0.827, 3, values) and matches(0.83, 2, values)
    assert matches(-0.0007, 4, values) and not matches(0.0007, 4, values)
    assert not matches(0.826, 3, values) and not matches(0.8268, 4, values)


def test_a_signed_number_may_be_the_difference_of_two_backed_numbers(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("state 0.5049 vs mean 0.3661 (+0.139); made up 0.4242 (+0.5)\n\nother +0.139\n")
    assert unbacked({0.50491, 0.36608}, {}, [doc]) == ["d.md:1: 0.4242", "d.md:3: +0.139"]


def test_a_number_beside_a_model_name_must_come_from_that_model(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text(
        "`new` QMSum 0.6897 and `old` 0.2542; `new` / `old`: 0.2542\n\n"
        "| model | score |\n|---|---|\n| `new` (v2) | 0.2542 |\n| other | 0.2542 |\n\n"
        "| task | new | old |\n|---|---|---|\n| QMSum | 0.2542 | 0.2542 |\n"
    )
    per_model = {"new": {0.68969}, "old": set()}
    assert unbacked({0.68969, 0.25421}, per_model, [doc]) == [
        "d.md:1: 0.2542 (beside `old`)",
        "d.md:5: 0.2542 (beside `new`)",
        "d.md:10: 0.2542 (beside `new`)",
        "d.md:10: 0.2542 (beside `old`)",
    ]


def test_the_file_values_hold_the_committed_results():
    values, per_model = file_values(), model_values()
    # minilm's STS-B score in its committed mteb result file, and a dev-set row of research/
    assert matches(0.8203, 4, values) and matches(0.7614, 4, values)
    assert matches(0.8203, 4, per_model["minilm"]) and matches(0.7691, 4, per_model["lam-state"])
