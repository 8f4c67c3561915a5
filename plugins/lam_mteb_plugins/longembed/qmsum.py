"""LEMBQMSumRetrieval, rebuilt offline from the QMSum meetings (Yale-LILY/QMSum, MIT licence).

LongEmbed's QMSum task: documents = the full transcripts of QMSum's train + validation meetings
(162 + 35 = 197), queries = the reference answers of those meetings' general and specific
queries, relevance = the meeting an answer belongs to.  Rebuilt here from
``<data dir>/qmsum/{train,val}/*.json``:

* document ``_id`` = the meeting's file stem (e.g. ``Bdb001``); text = one line per turn,
  ``"{speaker}: {content}"`` joined with newlines, content verbatim (QMSum's markers such as
  ``{vocalsound}`` / ``{disfmarker}`` are kept, as in the SCROLLS copy LongEmbed started from).
* queries = the answers, whitespace collapsed, de-duplicated by text in file order (train, then
  val, meetings by name, general before specific queries).  QMSum has 1 529 answers, 1 527
  distinct: two answers appear verbatim under two different meetings; such a query keeps the
  first meeting as its only relevant document (mteb's loader keeps one document per query).
  1 527 queries / 197 documents is exactly the published task's size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

QMSUM_DIR = Path("qmsum")
SPLITS = ("train", "val")


def meeting_text(meeting: dict) -> str:
    return "\n".join(
        f"{turn['speaker']}: {turn['content']}" for turn in meeting["meeting_transcripts"]
    )


def meeting_files(qmsum_dir: Path, splits: Iterable[str] = SPLITS) -> list[Path]:
    files: list[Path] = []
    for split in splits:
        files += sorted((Path(qmsum_dir) / split).glob("*.json"))
    return files


def build_rows(qmsum_dir: Path, splits: Iterable[str] = SPLITS) -> dict:
    """``{"corpus": [...], "queries": [...], "qrels": [...], "duplicates": int}``.

    ``splits``: QMSum's splits to read (the task uses train + val; its test meetings stay unused,
    which makes them a held-out set for choosing settings, see research/lam_hybrid_dev.py)."""
    qmsum_dir = Path(qmsum_dir)
    files = meeting_files(qmsum_dir, splits)
    if not files:
        from lam_mteb import DataNotFound

        raise DataNotFound(
            "no QMSum meetings: looked for "
            + " and ".join(f"{qmsum_dir}/{s}/*.json" for s in splits)
            + " "
            "(Yale-LILY/QMSum data/ALL); put them under the data directory"
        )
    corpus: list[dict] = []
    queries: list[dict] = []
    qrels: list[dict] = []
    seen: dict[str, str] = {}
    duplicates = 0
    for path in files:
        meeting = json.loads(path.read_text(encoding="utf-8"))
        doc_id = path.stem
        corpus.append({"_id": doc_id, "text": meeting_text(meeting)})
        for key in ("general_query_list", "specific_query_list"):
            for item in meeting.get(key, []):
                answer = " ".join(item["answer"].split())
                if not answer:
                    continue
                if answer in seen:
                    duplicates += 1
                    continue
                qid = f"qmsum_q{len(queries):04d}"
                seen[answer] = qid
                queries.append({"_id": qid, "text": answer})
                qrels.append({"query-id": qid, "corpus-id": doc_id, "score": 1})
    return {"corpus": corpus, "queries": queries, "qrels": qrels, "duplicates": duplicates}


def longembed_config(rows: dict) -> dict:
    """Layout of the ``dwzhu/LongEmbed`` config ``qmsum``: splits queries / corpus / qrels, each
    row with the columns qid, doc_id, text (one schema for all splits, "" where unused)."""
    from lam_mteb_plugins.longembed.passkey import union_row

    return {
        "queries": [union_row(qid=q["_id"], text=q["text"]) for q in rows["queries"]],
        "corpus": [union_row(doc_id=d["_id"], text=d["text"]) for d in rows["corpus"]],
        "qrels": [union_row(qid=r["query-id"], doc_id=r["corpus-id"]) for r in rows["qrels"]],
    }


def summary(rows: dict) -> dict:
    return {
        "generator": "lam_mteb_plugins.longembed.qmsum",
        "source": "qmsum/{train,val}/*.json (Yale-LILY/QMSum data/ALL)",
        "documents": len(rows["corpus"]),
        "queries": len(rows["queries"]),
        "duplicate_answers_dropped": rows["duplicates"],
        "published": {"documents": 197, "queries": 1527},
    }
