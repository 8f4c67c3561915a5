"""Sequence data for next-vector prediction: documents -> sentence-aware chunks -> splits.

Pipeline (all deterministic, no randomness except the seeded split):

1. ``read_documents(folder)`` walks ``folder`` recursively and turns every plain-text file into
   one or more *documents*:
   - a WikiText file (lines `` = Title = ``) becomes one document per article;
   - a Project Gutenberg book (``*** START OF`` marker) loses its licence header/footer and becomes
     one document per chapter (``chapters=True``, the default) or one per book;
   - any other text file is one document.
   Files named LICENSE*, README*, PROVENANCE*, COPYING*, NOTICE* are not documents.
2. ``split_sentences`` / ``chunk_document`` cut a document into consecutive chunks of about
   ``target_words`` words without breaking sentences (a single sentence longer than
   ``2 * target_words`` words is cut at word boundaries).
3. ``split_documents`` assigns whole documents to train / dev / test (so no document is in two
   splits), stratified by source (the first folder under the root), deterministic given a seed.
4. ``build_sequence_data`` ties it together and skips (and counts) documents with fewer than
   ``context + 1`` chunks, which cannot yield a single (context, next) pair.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import lam_mteb

DATA_VERSION = "2"  # bump when the chunking/splitting rules change (part of the data hash)
TEXT_SUFFIXES = {".txt", ".raw", ".text", ".md", ""}
NOT_DOCUMENTS = re.compile(r"^(license|licence|readme|provenance|copying|notice|authors)\b", re.I)
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
SPLITS = ("train", "dev", "test")


@dataclass
class Document:
    doc_id: str  # unique, stable: "<relative path>" or "<relative path>#<part>"
    text: str
    source: str  # stratification group: first folder under the root (or the file name)
    title: str = ""


@dataclass
class Chunk:
    chunk_id: str  # "<doc_id>@<position>"
    doc_id: str
    position: int
    text: str


@dataclass
class SequenceData:
    """Chunks per split plus the bookkeeping the task and the trainer report."""

    chunks: dict[str, list[Chunk]]  # split -> chunks, documents kept whole and in order
    documents: dict[str, list[str]]  # split -> doc ids (only documents that were kept)
    skipped_short: dict[str, int]  # split -> documents with < context + 1 chunks
    context: int
    target_words: int
    seed: int
    data_hash: str  # hash of the file contents + chunking parameters
    stats: dict = field(default_factory=dict)

    def sequences(self, split: str) -> list[tuple[list[int], int]]:
        """(context chunk indices, target chunk index) into ``self.chunks[split]``."""
        return make_sequences(self.chunks[split], self.context)


# --------------------------------------------------------------------------- reading documents

_WIKI_TITLE = re.compile(r"^ = ([^=].*?) = *$")
_WIKI_HEADING = re.compile(r"^ *(= )+.*?( =)+ *$")
_STOP = {"the", "and", "of", "a", "an", "in", "on", "for", "to", "at", "by", "with"}
_PG_START = re.compile(r"^\*\*\*\s*START OF (THIS|THE) PROJECT GUTENBERG", re.I)
_PG_END = re.compile(
    r"^(\*\*\*\s*END OF (THIS|THE) PROJECT GUTENBERG|End of (the )?Project Gutenberg)", re.I
)
_CHAPTER = re.compile(
    r"^\s*(chapter|book|part)\s+([0-9]+|[ivxlcdm]+)\b.*$|^\s*(epilogue|prologue)\.?\s*$", re.I
)


def _words(s: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[^\W\d_]+", s)]


def _detok_wikitext(text: str) -> str:
    """Undo WikiText's tokenisation (`` @-@ ``, spaces before punctuation) for natural text."""
    text = text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    text = text.replace("<formula>", " ")
    text = re.sub(r" ([.,;:!?%)\]])", r"\1", text)
    text = re.sub(r"([(\[]) ", r"\1", text)
    text = re.sub(r" ('s|'re|'ve|'ll|'d|n't|'m)\b", r"\1", text)
    return text


def _is_wikitext(lines: list[str]) -> bool:
    return sum(1 for ln in lines[:5000] if _WIKI_TITLE.match(ln)) >= 2


def _split_wikitext(lines: list[str], rel: str, source: str) -> list[Document]:
    """One document per top-level `` = Title = `` heading.

    A heading counts as an article title only when the next line mentions one of the title's
    words: WikiText-2's test file has formula fragments such as `` = 1 henry and capacitance C = ``
    that look like titles but sit inside an article.  Section headings (`` = = x = = ``) and
    ``<formula>`` placeholders are dropped from the text.
    """
    starts: list[tuple[int, str]] = []
    for i, ln in enumerate(lines):
        m = _WIKI_TITLE.match(ln)
        if not m:
            continue
        title_words = [w for w in _words(m.group(1)) if w not in _STOP]
        nxt = set(_words(" ".join(lines[i + 1 : i + 2])[:300]))
        if not title_words or any(w in nxt for w in title_words):
            starts.append((i, m.group(1).strip()))
    docs = []
    seen: dict[str, int] = {}
    for n, (i, title) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        paras = [
            _detok_wikitext(ln.strip())
            for ln in lines[i + 1 : end]
            if ln.strip() and not _WIKI_HEADING.match(ln)
        ]
        key = title
        if key in seen:  # duplicate titles stay distinct documents
            seen[key] += 1
            key = f"{title} ({seen[title]})"
        else:
            seen[key] = 0
        docs.append(
            Document(f"{rel}#{key}", "\n".join(p for p in paras if p.strip()), source, title)
        )
    return docs


def _paragraphs(lines: list[str]) -> list[str]:
    """Blank-line separated paragraphs with hard-wrapped lines joined."""
    paras, cur = [], []
    for ln in lines:
        if ln.strip():
            cur.append(ln.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return paras


def _heading_block(body: list[str], i: int) -> int:
    """Number of lines of the chapter heading starting at line i (0 = not a heading)."""
    if not _CHAPTER.match(body[i]) or (i > 0 and body[i - 1].strip()):
        return 0
    j = i
    while j < len(body) and body[j].strip():
        j += 1
    return j - i if j - i <= 2 else 0  # a wrapped title has <= 2 lines; a paragraph more


def _sections(body: list[str]) -> list[tuple[str, list[str]]]:
    """(heading, lines) of every section, the text before the first heading as front matter."""
    sections: list[tuple[str, list[str]]] = [("front matter", [])]
    i = 0
    while i < len(body):
        n = _heading_block(body, i)
        if n:
            sections.append((" ".join(" ".join(body[i : i + n]).split()), []))
            i += n
        else:
            sections[-1][1].append(body[i])
            i += 1
    return sections


def _chapters(sections: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """The real chapters: table-of-contents entries (< 20 words) dropped, and everything before
    the first numbered chapter joined into the front matter."""
    real = [
        n == 0 or len(" ".join(_paragraphs(sec)).split()) >= 20
        for n, (_, sec) in enumerate(sections)
    ]
    merged = [sec for n, sec in enumerate(sections) if real[n]]  # drop table-of-contents entries
    # a TOC's last entry (e.g. "Epilogue") followed by front matter is not a chapter: the text
    # before the first numbered chapter is front matter
    first_numbered = next(
        (
            i
            for i, (t, _) in enumerate(merged)
            if i > 0 and re.search(r"\d|\b[ivxlcdm]+\b", t, re.I)
        ),
        None,
    )
    if first_numbered and first_numbered > 1:
        front = [ln for _, sec in merged[:first_numbered] for ln in sec]
        merged = [("front matter", front)] + merged[first_numbered:]
    return merged


def _split_gutenberg(lines: list[str], rel: str, source: str, chapters: bool) -> list[Document]:
    """Strip the Project Gutenberg header/footer; one document per chapter (or per book).

    Chapter headings are lines like ``CHAPTER 12. Biographical.``, ``Chapter 3``, ``Epilogue``
    after a blank line, forming a block of at most 2 lines (a wrapped title); Moby Dick's
    "BOOK I. (Folio), CHAPTER I. ..." lines inside chapter 32 start long paragraphs and are not
    headings.  A heading whose section has
    fewer than 20 words of text is a table-of-contents line and is dropped; the text before the
    first real chapter (title page, front matter) is a document of its own.  Document ids use the
    heading text (``<file>#CHAPTER 12. Biographical.``), so they do not shift when the rules
    change.
    """
    start = next((i + 1 for i, ln in enumerate(lines) if _PG_START.match(ln)), 0)
    end = next((i for i, ln in enumerate(lines) if i >= start and _PG_END.match(ln)), len(lines))
    body = lines[start:end]
    if not chapters:
        kept = [ln for ln in body if not _CHAPTER.match(ln)]  # headings are not prose
        return [Document(rel, "\n".join(_paragraphs(kept)), source, Path(rel).stem)]
    docs: list[Document] = []
    seen: dict[str, int] = {}
    for title, sec in _chapters(_sections(body)):
        text = "\n".join(_paragraphs(sec))
        key = title
        seen[title] = seen.get(title, 0) + 1
        if seen[title] > 1:
            key = f"{title} ({seen[title]})"
        docs.append(Document(f"{rel}#{key}", text, source, title))
    return docs


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))


def document_files(folder: Path) -> list[Path]:
    """Plain-text files under ``folder`` (recursive, sorted), minus licence/readme files."""
    folder = Path(folder)
    files = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix.lower() not in TEXT_SUFFIXES or NOT_DOCUMENTS.match(p.name):
            continue
        files.append(p)
    return files


def read_documents(folder: str | Path, *, chapters: bool = True) -> list[Document]:
    """Read every document under ``folder``; raises LamMtebError when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise lam_mteb.DataNotFound(
            f"LVM data folder {folder} does not exist; "
            "point it at a folder of plain-text documents "
            "(e.g. LAM_MTEB_DATA_DIR=<data dir> with <data dir>/longtext)"
        )
    docs: list[Document] = []
    for path in document_files(folder):
        rel = path.relative_to(folder).as_posix()
        source = rel.split("/", 1)[0] if "/" in rel else rel
        lines = _read_text(path).split("\n")
        if _is_wikitext(lines):
            docs.extend(_split_wikitext(lines, rel, source))
        elif any(_PG_START.match(ln) for ln in lines[:400]):
            docs.extend(_split_gutenberg(lines, rel, source, chapters))
        else:
            docs.append(Document(rel, "\n".join(_paragraphs(lines)), source, path.stem))
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise lam_mteb.LamMtebError(
            f"no text documents found in {folder} (looked for non-empty *.txt/*.raw/*.md files, "
            "recursively); put plain-text documents there or choose another folder"
        )
    return docs


# --------------------------------------------------------------------------- sentences, chunks

_ABBREV = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "prof",
    "sr",
    "jr",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "no",
    "vol",
    "fig",
    "gen",
    "col",
    "lt",
    "capt",
    "sgt",
    "rev",
    "hon",
    "mt",
    "ft",
    "inc",
    "ltd",
    "co",
    "corp",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "approx",
    "cf",
    "al",
    "op",
    "ch",
    "pp",
}
# a sentence ends at . ! ? (optionally followed by closing quotes/brackets) + space + an opener
_BOUNDARY = re.compile(r"([.!?][\"'”’)\]]*)\s+(?=[\"'“‘(\[]*[A-Z0-9])")
# ... or with the space missing ("accelerating.We") after a lower-case word
_GLUED = re.compile(r"(?<=[a-z][.!?])(?=[A-Z][a-z])")


def split_sentences(text: str) -> list[str]:
    """Rule-based English sentence splitter; paragraph breaks ("\\n") always end a sentence."""
    out: list[str] = []
    for para in text.split("\n"):
        para = " ".join(_GLUED.sub(" ", para).split())
        if not para:
            continue
        start = 0
        for m in _BOUNDARY.finditer(para):
            before = para[start : m.start()].split()
            last = before[-1].rstrip(".").lower() if before else ""
            if m.group(1).startswith(".") and (
                last in _ABBREV or (len(last) == 1 and last.isalpha())
            ):
                continue  # "Mr. Darcy", "J. K. Rowling", "No. 20"
            out.append(para[start : m.end(1)].strip())
            start = m.end()
        tail = para[start:].strip()
        if tail:
            out.append(tail)
    return out


def chunk_sentences(sentences: list[str], target_words: int = 64) -> list[str]:
    """Group consecutive sentences into chunks of about ``target_words`` words.

    A chunk is closed before a sentence that would take it past ``target_words`` once it holds at
    least ``target_words // 2`` words; a sentence longer than ``2 * target_words`` words is cut
    into ``target_words``-word pieces; a final piece shorter than ``target_words // 4`` words is
    merged into the previous chunk.  So chunks hold ~target/2 .. 2*target words (most near target).
    """
    max_words = 2 * target_words
    pieces: list[list[str]] = []
    for s in sentences:
        w = s.split()
        if len(w) > max_words:
            pieces.extend(w[i : i + target_words] for i in range(0, len(w), target_words))
        elif w:
            pieces.append(w)
    chunks: list[list[str]] = []
    cur: list[str] = []
    for w in pieces:
        if cur and len(cur) + len(w) > target_words and len(cur) >= target_words // 2:
            chunks.append(cur)
            cur = []
        cur = cur + w
        if len(cur) >= max_words:
            chunks.append(cur)
            cur = []
    if cur:
        if (
            chunks
            and len(cur) < max(1, target_words // 4)
            and len(chunks[-1]) + len(cur) <= max_words
        ):
            chunks[-1] = chunks[-1] + cur
        else:
            chunks.append(cur)
    return [" ".join(c) for c in chunks]


def chunk_document(doc: Document, target_words: int = 64) -> list[Chunk]:
    texts = chunk_sentences(split_sentences(doc.text), target_words)
    return [Chunk(f"{doc.doc_id}@{i}", doc.doc_id, i, t) for i, t in enumerate(texts)]


# --------------------------------------------------------------------------- splits, sequences


def _rank_key(seed: int, doc_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{doc_id}".encode()).hexdigest()


def split_documents(
    doc_ids_by_source: dict[str, list[str]],
    seed: int = 42,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> dict[str, list[str]]:
    """Assign whole documents to train/dev/test, per source, deterministic given ``seed``.

    Within each source the documents are ordered by sha256(seed, doc_id) and cut at the
    cumulative fractions (rounded); the order does not depend on the input order, and adding a
    document moves at most the documents next to a cut.  Sources with 1-2 documents put them in
    train first, then test.
    """
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise lam_mteb.LamMtebError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for source in sorted(doc_ids_by_source):
        ids = sorted(set(doc_ids_by_source[source]), key=lambda d: _rank_key(seed, d))
        n = len(ids)
        n_train = round(n * fractions[0])
        n_dev = round(n * (fractions[0] + fractions[1])) - n_train
        if n <= 2:  # too few to stratify: train first, then test
            n_train, n_dev = 1, 0
        out["train"] += ids[:n_train]
        out["dev"] += ids[n_train : n_train + n_dev]
        out["test"] += ids[n_train + n_dev :]
    return out


def make_sequences(chunks: list[Chunk], context: int) -> list[tuple[list[int], int]]:
    """All (context indices, target index) windows inside each document, in order."""
    seqs = []
    start = 0
    while start < len(chunks):
        end = start
        while end < len(chunks) and chunks[end].doc_id == chunks[start].doc_id:
            end += 1
        for t in range(start + context, end):
            seqs.append((list(range(t - context, t)), t))
        start = end
    return seqs


def _files_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in document_files(folder):
        h.update(p.relative_to(folder).as_posix().encode() + b"\x00")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def build_sequence_data(
    folder: str | Path,
    *,
    context: int = 5,
    target_words: int = 64,
    seed: int = 42,
    chapters: bool = True,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> SequenceData:
    """Read, chunk and split a folder of documents (see the module docstring)."""
    folder = Path(folder)
    docs = read_documents(folder, chapters=chapters)
    chunked = {d.doc_id: chunk_document(d, target_words) for d in docs}
    by_source: dict[str, list[str]] = {}
    for d in docs:
        by_source.setdefault(d.source, []).append(d.doc_id)
    assignment = split_documents(by_source, seed, fractions)
    chunks: dict[str, list[Chunk]] = {}
    kept: dict[str, list[str]] = {}
    skipped: dict[str, int] = {}
    for split in SPLITS:
        ids = sorted(assignment[split])  # stable, human-readable order
        chunks[split], kept[split], skipped[split] = [], [], 0
        for doc_id in ids:
            cs = chunked[doc_id]
            if len(cs) < context + 1:
                skipped[split] += 1
                continue
            kept[split].append(doc_id)
            chunks[split].extend(cs)
    params = {
        "version": DATA_VERSION,
        "context": context,
        "target_words": target_words,
        "seed": seed,
        "chapters": chapters,
        "fractions": list(fractions),
    }
    data_hash = hashlib.sha256(
        (_files_hash(folder) + json.dumps(params, sort_keys=True)).encode()
    ).hexdigest()[:16]
    stats = {
        "n_documents_read": len(docs),
        "sources": {s: len(v) for s, v in sorted(by_source.items())},
        **{f"{s}_documents": len(kept[s]) for s in SPLITS},
        **{f"{s}_chunks": len(chunks[s]) for s in SPLITS},
        **{f"{s}_sequences": len(make_sequences(chunks[s], context)) for s in SPLITS},
        **{f"{s}_skipped_short_documents": skipped[s] for s in SPLITS},
        "skipped_short_documents": sum(skipped.values()),
        "params": params,
    }
    return SequenceData(chunks, kept, skipped, context, target_words, seed, data_hash, stats)


def longtext_folder(who: str, alternative: str = "") -> Path:
    """``$LAM_MTEB_DATA_DIR/longtext``, or one ``DataNotFound`` line saying what ``who`` needs."""
    import lam_mteb

    root = lam_mteb.data_dir()
    if root is None:
        raise lam_mteb.DataNotFound(
            f"{who} needs LAM_MTEB_DATA_DIR: set it to a data directory whose longtext/ folder "
            f"holds plain-text documents (e.g. LAM_MTEB_DATA_DIR=../shared/data){alternative}"
        )
    folder = root / "longtext"
    if not folder.is_dir():
        raise lam_mteb.DataNotFound(
            f"{who} looked for {folder}: put a folder of plain-text documents there "
            f"(articles, books, essays; searched recursively){alternative}"
        )
    return folder
