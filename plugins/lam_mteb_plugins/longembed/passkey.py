"""LEMBPasskeyRetrieval, re-created offline (a deterministic generator after the LongEmbed paper).

For each context length L in 256 ... 32 768 (MiniLM word pieces, no special tokens):

* 100 candidate documents.  Each is the filler "The grass is green. The sky is blue. The sun is
  yellow. Here we go. There and back again." repeated sentence by sentence, with ONE pass-key
  sentence "{Name}'s pass key is {key}. Remember it. {key} is the pass key for {Name}." inserted
  at a uniformly random sentence boundary.  Every document has its own name ("First Last", no
  first name or surname used twice within a length) and its own 5-digit key.  The filler stops at
  the last whole sentence that keeps the document within L tokens, so a document has L - 6 ... L
  tokens.
* 50 queries "what is the pass key for {Name}?" for 50 of the documents chosen at random; the
  other 50 documents are distractors (they hold pass keys for names nobody asks about).
* Documents are stored in a shuffled order, so that a model which cannot tell documents apart
  (identical truncated inputs -> tied scores) gains nothing from the corpus order.

Everything comes from ``random.Random(f"{seed}/passkey/{L}")``: the same seed gives the same
bytes.  The published names, keys and positions are not available offline, so this is a local
re-creation of the task, not a copy of its data.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from lam_mteb_plugins.longembed._common import (
    LENGTHS,
    assemble_split,
    count_tokens,
    split_name,
    split_stats,
)

DEFAULT_SEED = 2404_12096  # arXiv id of the LongEmbed paper

FILLER = (
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
)
KEY_TEMPLATE = "{name}'s pass key is {key}. Remember it. {key} is the pass key for {name}."
QUERY_TEMPLATE = "what is the pass key for {name}?"
N_DOCS = 100
N_QUERIES = 50

# 148 common English first names and 119 surnames (ASCII, all distinct); a document's name is
# "First Last", first names and surnames each used at most once per length (as in the paper's
# examples, "Sky Morrow", "Cesar McLean").
FIRST_NAMES = tuple(
    """
Aaron Abigail Adam Adrian Alan Albert Alice Amanda Amelia Amy Andrew Angela Anna Anthony Arthur
Audrey Barbara Benjamin Bernard Betty Beverly Brandon Brenda Brian Bruce Caleb Carl Carol
Caroline Catherine Charles Charlotte Christina Christopher Claire Clara Daniel David Deborah
Dennis Diana Donald Dorothy Douglas Edward Eleanor Elizabeth Ellen Emily Emma Eric Ethan Evelyn
Frances Frank Gabriel George Gerald Grace Gregory Hannah Harold Harry Helen Henry Isabel Jack
Jacob James Janet Jason Jean Jeffrey Jennifer Jeremy Jessica Joan John Jonathan Joseph Joshua
Joyce Judith Julia Justin Karen Katherine Keith Kenneth Kevin Laura Lawrence Leonard Linda Louis
Lucy Margaret Maria Marie Mark Martha Martin Mary Matthew Megan Melissa Michael Nancy Natalie
Nathan Nicholas Nicole Olivia Oscar Patricia Patrick Paul Peter Philip Rachel Ralph Raymond
Rebecca Richard Robert Roger Ronald Rose Russell Ruth Samuel Sandra Sarah Scott Sharon Simon
Sophia Stephen Steven Susan Teresa Thomas Timothy Victoria Vincent Walter Wayne William
""".split()
)
SURNAMES = tuple(
    """
Abbott Alfaro Archer Baker Barnes Bennett Blake Bowen Bradley Brooks Burke Caldwell Carson
Chandler Clarke Cole Collins Cooper Crawford Dalton Dawson Dixon Doyle Duncan Ellis Emerson
Farrell Fisher Fleming Fletcher Foster Garner Gibson Gordon Graves Griffin Hale Hardy Harper
Hayes Holland Horton Hudson Hughes Jensen Keller Kennedy Lambert Lawson Logan Lowe Lynch Mack
Malone Marsh Mason McLean Mercer Miles Morrow Murphy Nash Norris Owens Palmer Parker Pearson
Perry Porter Quinn Ramsey Reed Reeves Riley Russo Sanders Santos Sawyer Shaw Sheldon Simmons
Spencer Stanley Steele Stone Sullivan Sutton Tanner Terry Thornton Tucker Turner Vaughn Wade
Walsh Ward Warner Watts Weaver Webb Wells Wheeler Whitaker Wilder Wolfe Woods Wright Wyatt
Yates York Young Zamora Bishop Carver Donovan Everett Frost Hammond Ingram
""".split()
)


def _filler_counts() -> list[int]:
    return count_tokens(list(FILLER))


def generate_length(length: int, seed: int = DEFAULT_SEED) -> dict:
    """One split: ``{"corpus": [...], "queries": [...], "qrels": [...]}`` rows for length L.

    corpus rows: ``{"_id", "text", "n_tokens", "name", "key", "key_position"}`` (the last four
    are bookkeeping for tests and documentation; the writer keeps only what mteb reads),
    queries rows: ``{"_id", "text", "doc_id"}``, qrels rows ``{"query-id", "corpus-id", "score"}``.
    """
    rng = random.Random(f"{seed}/passkey/{length}")
    names = [
        f"{first} {last}"
        for first, last in zip(
            rng.sample(FIRST_NAMES, N_DOCS), rng.sample(SURNAMES, N_DOCS), strict=True
        )
    ]
    keys = rng.sample(range(10000, 100000), N_DOCS)
    fill_counts = _filler_counts()
    key_sents = [KEY_TEMPLATE.format(name=n, key=k) for n, k in zip(names, keys, strict=True)]
    key_counts = count_tokens(key_sents)

    docs = []
    for name, key, sent, n_key in zip(names, keys, key_sents, key_counts, strict=True):
        budget = length - n_key
        sentences, used, i = [], 0, 0
        while used + fill_counts[i % len(FILLER)] <= budget:
            sentences.append(FILLER[i % len(FILLER)])
            used += fill_counts[i % len(FILLER)]
            i += 1
        pos = rng.randint(0, len(sentences))  # sentence boundary where the key goes
        tokens_before = sum(fill_counts[j % len(FILLER)] for j in range(pos))
        sentences.insert(pos, sent)
        docs.append(
            {
                "text": " ".join(sentences),
                "n_tokens": used + n_key,
                "name": name,
                "key": str(key),
                "key_position": tokens_before,
            }
        )

    return assemble_split(
        "passkey", length, docs, N_QUERIES, rng, lambda doc: QUERY_TEMPLATE.format(name=doc["name"])
    )


def generate(lengths: Iterable[int] = LENGTHS, seed: int = DEFAULT_SEED) -> dict[int, dict]:
    """All splits: ``{length: generate_length(length, seed)}``."""
    return {length: generate_length(length, seed) for length in lengths}


def mteb_passkey_configs(data: dict[int, dict]) -> dict:
    """Layout of ``mteb/LEMBPasskeyRetrieval``: configs corpus / queries / default (qrels),
    one split ``test_<L>`` per length (what mteb's RetrievalDatasetLoader reads)."""
    corpus, queries, qrels = {}, {}, {}
    for length, split in sorted(data.items()):
        name = split_name(length)
        corpus[name] = [{"_id": d["_id"], "title": "", "text": d["text"]} for d in split["corpus"]]
        queries[name] = [{"_id": q["_id"], "text": q["text"]} for q in split["queries"]]
        qrels[name] = list(split["qrels"])
    return {"corpus": corpus, "queries": queries, "default": qrels}


def longembed_config(data: dict[int, dict]) -> dict:
    """Layout of a ``dwzhu/LongEmbed`` config (as read by mteb's LEMBNeedle/Passkey tasks):
    splits queries (qid, text), corpus (doc_id, text), qrels (qid, doc_id), all with
    ``context_length``.  A local JSON dataset needs one schema for all splits of a config, so every
    row carries qid, doc_id, text and context_length ("" where a split has no such field)."""
    out: dict[str, list[dict]] = {"queries": [], "corpus": [], "qrels": []}
    for length, split in sorted(data.items()):
        out["queries"] += [
            union_row(qid=q["_id"], text=q["text"], context_length=length) for q in split["queries"]
        ]
        out["corpus"] += [
            union_row(doc_id=d["_id"], text=d["text"], context_length=length)
            for d in split["corpus"]
        ]
        out["qrels"] += [
            union_row(qid=r["query-id"], doc_id=r["corpus-id"], context_length=length)
            for r in split["qrels"]
        ]
    return out


def union_row(*, qid: str = "", doc_id: str = "", text: str = "", **extra: Any) -> dict:
    """One row of a dwzhu/LongEmbed-style config: the same columns in every split."""
    return {"qid": qid, "doc_id": doc_id, "text": text, **extra}


def summary(data: dict[int, dict], seed: int = DEFAULT_SEED) -> dict:
    """What the marker file records about the generated data."""
    return {
        "generator": "lam_mteb_plugins.longembed.passkey",
        "seed": seed,
        "token_counter": "all-MiniLM-L6-v2 WordPiece, no special tokens",
        "splits": split_stats(data),
    }
