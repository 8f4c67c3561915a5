"""LVM sequence data: document reading, sentence-aware chunking, by-document splits."""

from __future__ import annotations

import pytest

import lam_mteb
from lam_mteb_plugins.lvm import data as D
from lam_mteb_plugins.lvm.testing import write_corpus


def test_sentence_splitter_keeps_abbreviations_and_splits_glued_sentences():
    text = (
        'Mr. Darcy met J. K. Rowling at No. 20 Baker St. yesterday. "Really?" she asked. '
        "It was raining.Then it stopped!\nA new paragraph without a full stop"
    )
    assert D.split_sentences(text) == [
        "Mr. Darcy met J. K. Rowling at No. 20 Baker St. yesterday.",
        '"Really?" she asked.',
        "It was raining.",
        "Then it stopped!",
        "A new paragraph without a full stop",
    ]


def test_chunks_respect_sentences_and_target_length():
    sents = [f"Sentence number {i} has exactly seven words." for i in range(40)]  # 7 words each
    chunks = D.chunk_sentences(sents, target_words=20)
    assert " ".join(chunks) == " ".join(sents)  # nothing lost, order kept
    for c in chunks:
        assert c.endswith("words.")  # never cut inside a sentence
        assert 10 <= len(c.split()) <= 40
    assert max(len(c.split()) for c in chunks[:-1]) <= 21


def test_overlong_sentence_is_cut_at_word_boundaries():
    long = " ".join(f"w{i}" for i in range(100)) + "."
    chunks = D.chunk_sentences([long], target_words=20)
    assert all(len(c.split()) <= 40 for c in chunks) and " ".join(chunks) == long


def test_wikitext_articles_and_formula_lines(tmp_path):
    raw = (
        " = Alpha Centauri = \r\n Alpha Centauri is a star system . It is close @-@ by , "
        "at 4 @.@ 37 light years . \r\n = = History = = \r\n It was catalogued early . \r\n"
        " = 1 henry and capacitance C = \r\n 1 farad . This is a formula fragment . \r\n"
        " = Beta Pictoris = \r\n Beta Pictoris is a young star . \r\n"
    )
    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "wiki.test.raw").write_bytes(raw.encode())
    docs = D.read_documents(tmp_path)
    assert [d.title for d in docs] == ["Alpha Centauri", "Beta Pictoris"]
    assert docs[0].doc_id == "wiki/wiki.test.raw#Alpha Centauri" and docs[0].source == "wiki"
    assert "close-by, at 4.37 light years." in docs[0].text
    assert "History" not in docs[0].text and "formula fragment" in docs[0].text


def test_gutenberg_header_footer_stripped_and_chapters(tmp_path):
    body = "\n\n".join(
        f"Chapter {i}\n\n" + "\n".join(["Some words of the chapter here."] * 8) for i in range(1, 4)
    )
    toc = "Contents\n\nChapter 1\nChapter 2\nChapter 3\n\n"
    text = (
        "The Project Gutenberg EBook of Test\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK TEST ***\n\n"
        + toc
        + body
        + "\n\n*** END OF THIS PROJECT GUTENBERG EBOOK TEST ***\n\nLicence text here.\n"
    )
    (tmp_path / "book.txt").write_text(text)
    docs = D.read_documents(tmp_path)
    assert [d.title for d in docs] == ["front matter", "Chapter 1", "Chapter 2", "Chapter 3"]
    joined = " ".join(d.text for d in docs)
    assert "Gutenberg" not in joined and "Licence" not in joined
    assert docs[1].doc_id == "book.txt#Chapter 1"  # ids from headings, stable under rule changes
    whole = D.read_documents(tmp_path, chapters=False)
    assert len(whole) == 1 and "Chapter" not in whole[0].text


def test_gutenberg_wrapped_headings_and_heading_like_paragraphs(tmp_path):
    words = " ".join(["word"] * 30)
    text = (
        "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\n"
        f"CHAPTER 1. Short.\n\n{words}\n\n"
        "CHAPTER 2. A very long title that the transcriber\nwrapped onto a second line.\n\n"
        f"{words}\n\n"
        "BOOK I. (Folio), CHAPTER I. (Sperm Whale).--This whale, among the\n"
        "English of old vaguely known"
        f"\nas the Trumpa whale, and the Physeter whale.\n\n{words}\n"
    )
    (tmp_path / "x.txt").write_text(text)
    titles = [d.title for d in D.read_documents(tmp_path)]
    assert titles == [
        "CHAPTER 1. Short.",  # (an empty front matter is no document)
        "CHAPTER 2. A very long title that the transcriber wrapped onto a second line.",
    ]


def test_license_and_readme_files_are_not_documents(tmp_path):
    write_corpus(tmp_path, n_docs=2, short_docs=0)
    (tmp_path / "README.md").write_text("read me " * 100)
    assert all(
        "LICENSE" not in d.doc_id and "README" not in d.doc_id for d in D.read_documents(tmp_path)
    )


def test_empty_folder_is_one_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("   \n")
    with pytest.raises(lam_mteb.LamMtebError, match="no text documents found in"):
        D.build_sequence_data(tmp_path)
    with pytest.raises(lam_mteb.LamMtebError, match="does not exist"):
        D.build_sequence_data(tmp_path / "missing")


def test_short_documents_are_skipped_and_counted(tmp_path):
    write_corpus(tmp_path, n_docs=10, short_docs=3)
    sd = D.build_sequence_data(tmp_path, context=5, target_words=20)
    assert sd.stats["skipped_short_documents"] == 3 == sum(sd.skipped_short.values())
    assert all(
        not d.split("#")[0].split("/")[-1].startswith("short")
        for s in D.SPLITS
        for d in sd.documents[s]
    )
    for s in D.SPLITS:  # every kept document yields >= 1 (context, next) pair
        for doc in sd.documents[s]:
            assert sum(c.doc_id == doc for c in sd.chunks[s]) >= 6


def test_split_is_by_document_deterministic_and_seeded(tmp_path):
    write_corpus(tmp_path, n_docs=20, short_docs=0)
    a = D.build_sequence_data(tmp_path, target_words=20, seed=1)
    b = D.build_sequence_data(tmp_path, target_words=20, seed=1)
    c = D.build_sequence_data(tmp_path, target_words=20, seed=2)
    docs = {s: set(a.documents[s]) for s in D.SPLITS}
    assert (
        not (docs["train"] & docs["dev"])
        and not (docs["train"] & docs["test"])
        and not (docs["dev"] & docs["test"])
    )
    for s in D.SPLITS:
        assert {ch.doc_id for ch in a.chunks[s]} == docs[s]
        assert [ch.chunk_id for ch in a.chunks[s]] == [ch.chunk_id for ch in b.chunks[s]]
    assert a.data_hash == b.data_hash != c.data_hash
    assert any(set(a.documents[s]) != set(c.documents[s]) for s in D.SPLITS)


def test_split_fractions_are_stratified_by_source():
    ids = {"wiki": [f"w{i}" for i in range(10)], "books": [f"b{i}" for i in range(20)]}
    out = D.split_documents(ids, seed=0, fractions=(0.7, 0.1, 0.2))
    assert sorted(len(v) for v in out.values()) == [3, 6, 21]
    for src, prefix in (("wiki", "w"), ("books", "b")):
        n = len(ids[src])
        assert [sum(x.startswith(prefix) for x in out[s]) for s in D.SPLITS] == [
            round(0.7 * n),
            round(0.1 * n),
            n - round(0.8 * n),
        ]
    # input order does not matter
    rev = D.split_documents({k: v[::-1] for k, v in ids.items()}, seed=0)
    assert {s: sorted(v) for s, v in rev.items()} == {s: sorted(v) for s, v in out.items()}


def test_sequences_stay_inside_documents():
    chunks = [
        D.Chunk(f"{d}@{i}", d, i, "x") for d, n in (("a", 7), ("b", 5), ("c", 6)) for i in range(n)
    ]
    seqs = D.make_sequences(chunks, context=5)
    assert seqs == [([0, 1, 2, 3, 4], 5), ([1, 2, 3, 4, 5], 6), ([12, 13, 14, 15, 16], 17)]


@pytest.mark.integration
def test_real_longtext_documents_and_splits():
    from tests.conftest import shared_data_or_skip

    root = shared_data_or_skip("longtext")
    sd = D.build_sequence_data(root / "longtext")
    st = sd.stats
    assert st["sources"] == {"gutenberg": 199, "paul_graham_essays": 49, "wikitext-2-raw": 60}
    assert (st["train_documents"], st["dev_documents"], st["test_documents"]) == (207, 31, 60)
    assert st["skipped_short_documents"] == 10 and st["test_sequences"] == 2257
    titles = {
        c.doc_id.split("#", 1)[-1] for s in D.SPLITS for c in sd.chunks[s] if "wiki" in c.doc_id
    }
    assert "1 henry and capacitance C" not in titles
