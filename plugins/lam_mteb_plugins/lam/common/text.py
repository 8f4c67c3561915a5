"""Tokenisation for LAM: MiniLM's WordPiece tokenizer, without truncation, and a streaming form.

A document of any length becomes ``[CLS] tokens... [SEP]``; ``iter_chunks`` cuts that stream into
chunks of ``chunk_size`` tokens.  Long texts are tokenised piece by piece (cut at whitespace, where
BERT's pre-tokenizer splits anyway), so a multi-megabyte string never exists as one token list.
"""

from __future__ import annotations

from collections.abc import Iterator

from lam_mteb_plugins.lam.common.model import BASE_MODEL, base_model_path

PIECE_CHARS = 16_384  # characters tokenised at a time when streaming


class LamTokenizer:
    def __init__(self, base_model: str = BASE_MODEL) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(base_model_path(base_model) / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.cls_id = self._token_id("[CLS]")
        self.sep_id = self._token_id("[SEP]")
        self.pad_id = self._token_id("[PAD]")

    def _token_id(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        assert i is not None, f"MiniLM's WordPiece vocabulary has no {token} token"
        return i

    @staticmethod
    def clean(text: object) -> str:
        """Anything to a str (None -> ""); lone surrogates replaced so the tokenizer never fails."""
        if text is None:
            return ""
        if not isinstance(text, str):
            text = str(text)
        return text.encode("utf-8", "replace").decode("utf-8")

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """[CLS] ids [SEP] for each text (no truncation)."""
        return [e.ids for e in self._tok.encode_batch([self.clean(t) for t in texts])]

    def iter_ids(self, text: str, piece_chars: int = PIECE_CHARS) -> Iterator[list[int]]:
        """Token ids of ``[CLS] text [SEP]`` in pieces; equal to ``encode_batch([text])[0]``."""
        text = self.clean(text)
        yield [self.cls_id]
        start, n = 0, len(text)
        while start < n:
            end = min(start + piece_chars, n)
            if end < n:  # cut at the last whitespace of the piece (a word boundary for BERT)
                cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
                if cut > start:
                    end = cut
            ids = self._tok.encode(text[start:end], add_special_tokens=False).ids
            if ids:
                yield ids
            start = end
        yield [self.sep_id]

    def iter_chunks(self, text: str, chunk_size: int) -> Iterator[list[int]]:
        """``[CLS] text [SEP]`` cut into consecutive chunks of ``chunk_size`` tokens."""
        buf: list[int] = []
        for ids in self.iter_ids(text):
            buf.extend(ids)
            while len(buf) >= chunk_size:
                yield buf[:chunk_size]
                buf = buf[chunk_size:]
        if buf:
            yield buf


def share_identical(
    active: list[int], chunks: list[list[int]], group: list[int]
) -> tuple[list[int], list[list[int]], list[int]]:
    """Rows of a lock-step streaming batch that can share one forward pass.

    Documents ``active[i]`` whose next chunk ``chunks[i]`` is identical *and* whose history so far
    was shared (same ``group``: the row they were last computed with) have identical states, so
    one row computes them all (exact; LongEmbed's passkey/needle documents share their filler up
    to the inserted fact).  Returns (representative documents, their chunks, for each active
    document the index of its representative)."""
    reps: list[int] = []
    uniq: list[list[int]] = []
    rep_of: list[int] = []
    first: dict[tuple[int, tuple[int, ...]], int] = {}
    for r, c in zip(active, chunks, strict=True):
        key = (group[r], tuple(c))
        if key not in first:
            first[key] = len(reps)
            reps.append(r)
            uniq.append(c)
        rep_of.append(first[key])
    return reps, uniq, rep_of
