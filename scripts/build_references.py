"""Build ``leaderboard/references.yaml`` from the reference files (no hand-typed published numbers).

    python scripts/build_references.py --data-dir ../shared/data --out leaderboard/references.yaml

Reads ``<data dir>/reference_scores/``:

- ``mteb_results/<org>__<model>/<revision>/<Task>.json`` with mteb's own ``TaskResult`` (main score
  averaged over the task's ``eval_splits``, exactly as mteb's leaderboard does; the results
  repository commit comes from ``SUMMARY.md``);
- ``longembed_repo/paper_table2.txt`` (the LongEmbed paper's Table 2, in %).

Model facts (parameters, embedding size, max tokens) come from the installed mteb's ``ModelMeta``.
What no file holds is written below by hand, each with its provenance: the sources' titles and
the M2-BERT row (no published scores).  A public table cites public sources only: every source has
a public URL, and a score nobody published (e.g. one stated only in private project notes) is not
listed.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import yaml

REF_DIR = "reference_scores"
MTEB_DIR = f"{REF_DIR}/mteb_results"
PAPER_FILE = f"{REF_DIR}/longembed_repo/paper_table2.txt"
SUMMARY_FILE = f"{REF_DIR}/SUMMARY.md"

#: the reference models' mteb results, in table order
MTEB_MODELS = (
    "BAAI/bge-m3",
    "intfloat/e5-mistral-7b-instruct",
    "sentence-transformers/all-MiniLM-L6-v2",
)
TASKS = (
    "STSBenchmark",
    "SciFact",
    "NFCorpus",
    "LEMBPasskeyRetrieval",
    "LEMBNeedleRetrieval",
    "LEMBNarrativeQARetrieval",
    "LEMBQMSumRetrieval",
    "LEMBSummScreenFDRetrieval",
    "LEMBWikimQARetrieval",
)

#: LongEmbed paper, Table 2: row name (citation removed) -> (model id, label or None)
PAPER_ROWS = {
    "E5-Mistral": ("intfloat/e5-mistral-7b-instruct", None),
    "BGE-M3": ("BAAI/bge-m3", None),
    "Jina-V2": ("jinaai/jina-embeddings-v2-base-en", None),
    "Nomic-V1": ("nomic-ai/nomic-embed-text-v1", None),
    "E5-Mistral + NTK (32k)": (
        "intfloat/e5-mistral-7b-instruct",
        "intfloat/e5-mistral-7b-instruct + NTK (32k)",
    ),
}
PAPER_COLUMNS = (
    "LEMBPasskeyRetrieval",
    "LEMBNeedleRetrieval",
    "LEMBNarrativeQARetrieval",
    "LEMBQMSumRetrieval",
    "LEMBSummScreenFDRetrieval",
    "LEMBWikimQARetrieval",
)
PAPER_METRIC = {
    "LEMBPasskeyRetrieval": "acc_at_1",
    "LEMBNeedleRetrieval": "acc_at_1",
}  # else ndcg_at_10
_PAPER_LINE = re.compile(
    r"^(?P<name>.+?)\s+(?P<param>\d+(?:\.\d+)?[MB]|-)\s+"
    r"(?P<nums>\d+\.\d(?:\s+\d+\.\d){6})\s*$"
)

HAND_WRITTEN_MODELS = {
    "togethercomputer/m2-bert-80M-32k-retrieval": {
        "label": "M2-BERT-32k",
        "n_parameters": 80_000_000,
        "embed_dim": 768,
        "max_tokens": 32768,
        "facts_source": "model name (80M, 32k) and the Hugging Face model card "
        "togethercomputer/m2-bert-80M-32k-retrieval (768-d); not in mteb's model "
        "registry, not checked offline",
    },
}

HAND_WRITTEN_ENTRIES = [
    {
        "model": "togethercomputer/m2-bert-80M-32k-retrieval",
        "label": "M2-BERT-32k",
        "source": "longembed-paper",
        "status": "no-scores",
        "benchmarks": ["long-context"],
        "note": "no published scores: the LongEmbed paper excludes M2-BERT because its training "
        "data overlaps LongEmbed's test samples, and the MTEB results repository copy has "
        "no result for it",
    },
]


def _sources(results_commit: str) -> dict:
    return {
        "mteb-results": {
            "title": "MTEB results repository (embeddings-benchmark/results)",
            "short": f"MTEB results @{results_commit[:7]}",
            "url": "https://github.com/embeddings-benchmark/results",
            "commit": results_commit,
            "local_copy": f"{MTEB_DIR}/<org>__<model>/<revision>/<Task>.json (under the data dir)",
            "note": "main score = the task's main_score averaged over its eval splits, as mteb's "
            "leaderboard computes it (Passkey/Needle: nDCG@1 over 8 length splits)",
        },
        "longembed-paper": {
            "title": "Zhu et al. 2024, LongEmbed: Extending Embedding Models for Long Context "
            "Retrieval (arXiv:2404.12096), Table 2",
            "short": "LongEmbed paper",
            "url": "https://arxiv.org/abs/2404.12096",
            "local_copy": f"{PAPER_FILE} (under the data dir)",
            "note": "numbers in %, stored /100; Passkey/Needle = Acc@1 averaged over 8 context "
            "lengths, the rest nDCG@10; evaluated with the paper's own settings, which "
            "differ from the MTEB results repository's (compare the two sources' rows)",
        },
    }


def _model_facts(model_id: str, paper_param: str | None) -> dict:
    import mteb

    meta = mteb.get_model_meta(model_id)
    facts = {
        "label": model_id,
        "n_parameters": int(meta.n_parameters) if meta.n_parameters else None,
        "embed_dim": int(meta.embed_dim) if isinstance(meta.embed_dim, int) else None,
        "max_tokens": int(meta.max_tokens) if meta.max_tokens else None,
        "facts_source": (
            f"mteb {mteb.__version__} ModelMeta for {model_id} (rev {meta.revision[:8]})"
        ),
    }
    if paper_param:
        facts["facts_source"] += f"; the LongEmbed paper's Table 2 lists {paper_param} parameters"
    return facts


def mteb_score(path: Path) -> tuple[str, float, list[str], str | None]:
    """(task name, main score over the task's eval splits, those splits, mteb version) of a result
    file."""
    import mteb
    from mteb import TaskResult

    result = TaskResult.from_disk(path)
    eval_splits = list(mteb.get_task(result.task_name).metadata.eval_splits)
    missing = [s for s in eval_splits if s not in result.scores]
    if missing:
        raise ValueError(f"{path}: missing eval splits {missing}")
    return (
        result.task_name,
        float(result.get_score(splits=eval_splits)),
        eval_splits,
        result.mteb_version,
    )


def parse_paper_table(text: str) -> dict[str, tuple[str, list[str]]]:
    """Row name (citation removed) -> (Param. text, 7 numbers as printed) from Table 2's text."""
    rows = {}
    for line in text.splitlines():
        m = _PAPER_LINE.match(line.strip())
        if not m:
            continue
        name = re.sub(r"\s*\([^()]*et al\.[^()]*\)", "", m["name"]).strip()
        rows[name] = (m["param"], m["nums"].split())
    return rows


def results_commit(summary_text: str) -> str:
    m = re.search(r"embeddings-benchmark/results @ ([0-9a-f]{40})", summary_text)
    if not m:
        raise ValueError(f"{SUMMARY_FILE}: no 'embeddings-benchmark/results @ <commit>' line")
    return m.group(1)


def build(data_dir: Path) -> dict:
    """The references document: mteb-results entries, the LongEmbed paper's Table 2 rows, and the
    hand-written entries, each with its provenance."""
    data_dir = Path(data_dir)
    commit = results_commit((data_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    paper = parse_paper_table((data_dir / PAPER_FILE).read_text(encoding="utf-8"))
    missing_rows = [name for name in PAPER_ROWS if name not in paper]
    if missing_rows:
        raise ValueError(f"{PAPER_FILE}: rows not found: {missing_rows}")
    paper_param = {
        PAPER_ROWS[name][0]: paper[name][0] for name in PAPER_ROWS if PAPER_ROWS[name][1] is None
    }
    models = {m: _model_facts(m, paper_param.get(m)) for m in MTEB_MODELS}
    entries = [_mteb_entry(data_dir, m) for m in MTEB_MODELS]
    for name, (model_id, label) in PAPER_ROWS.items():
        if model_id not in models:
            models[model_id] = _model_facts(model_id, paper[name][0])
        entries.append(_paper_entry(model_id, label, paper[name][1]))
    models.update(copy.deepcopy(HAND_WRITTEN_MODELS))
    entries.extend(copy.deepcopy(HAND_WRITTEN_ENTRIES))
    return {
        "version": 1,
        "description": "Published scores for the leaderboard, each with its provenance. Values are "
        "fractions in [0, 1] (mteb's main_score scale); 'reported' is the source's "
        "own text. Every source is public (it has a url).",
        "generated_by": "python scripts/build_references.py --data-dir <data dir> "
        "--out leaderboard/references.yaml",
        "sources": _sources(commit),
        "models": models,
        "entries": entries,
    }


def _mteb_entry(data_dir: Path, model_id: str) -> dict:
    """One model's scores from its (single) revision folder of the mteb results repository."""
    import mteb

    revisions = sorted((data_dir / MTEB_DIR / model_id.replace("/", "__")).iterdir())
    if len(revisions) != 1:
        raise ValueError(
            f"{MTEB_DIR}/{model_id}: expected one revision folder, found {len(revisions)}"
        )
    rev_dir = revisions[0]
    scores = {}
    for task in TASKS:
        path = rev_dir / f"{task}.json"
        name, value, splits, version = mteb_score(path)
        assert name == task, (path, name)
        scores[task] = {
            "value": value,
            "metric": mteb.get_task(task).metadata.main_score,
            "split": splits[0] if len(splits) == 1 else splits,
            "file": str(path.relative_to(data_dir)),
            "mteb_version": version,
        }
    return {
        "model": model_id,
        "source": "mteb-results",
        "status": "published",
        "revision": rev_dir.name,
        "scores": scores,
    }


def _paper_entry(model_id: str, label: str | None, nums: list[str]) -> dict:
    """One row of the LongEmbed paper's Table 2: six task columns (percent) and the Avg."""
    import mteb

    scores = {}
    for task, text in zip(PAPER_COLUMNS, nums[:6], strict=True):
        splits = list(mteb.get_task(task).metadata.eval_splits)
        scores[task] = {
            "value": round(float(text) / 100, 6),
            "reported": text,
            "metric": PAPER_METRIC.get(task, "ndcg_at_10"),
            "split": splits[0] if len(splits) == 1 else splits,
        }
    entry: dict = {"model": model_id}
    if label:
        entry["label"] = label
    entry.update(
        {
            "source": "longembed-paper",
            "status": "published",
            "table": "Table 2",
            "revision": None,
            "scores": scores,
            "reported_mean": {
                "value": round(float(nums[6]) / 100, 6),
                "reported": nums[6],
                "note": "the paper's Avg. column (mean of the six tasks)",
            },
        }
    )
    return entry


HEADER = """\
# Reference scores for `lam-mteb leaderboard`, with provenance.
# GENERATED from the reference files by scripts/build_references.py; do not edit by hand:
#   python scripts/build_references.py --data-dir <data dir> --out leaderboard/references.yaml
# tests/test_leaderboard_references.py checks every published number against the files
# (when LAM_MTEB_DATA_DIR is set) and validates this file against
# lam_mteb/leaderboard/references.schema.json.
"""


def dump(doc: dict) -> str:
    return HEADER + yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/build_references.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding reference_scores/ (default: $LAM_MTEB_DATA_DIR)",
    )
    parser.add_argument("--out", type=Path, required=True, help="references.yaml to write")
    args = parser.parse_args(argv)
    from lam_mteb.leaderboard import references
    from lam_mteb.paths import data_dir

    root = args.data_dir or data_dir()
    if root is None or not (root / REF_DIR).is_dir():
        sys.stderr.write(
            f"error: no {REF_DIR}/ under {root}; pass --data-dir or set LAM_MTEB_DATA_DIR\n"
        )
        return 2
    doc = build(root)
    references.validate(doc, args.out)
    args.out.write_text(dump(doc), encoding="utf-8")
    print(f"wrote {args.out} ({len(doc['entries'])} entries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
