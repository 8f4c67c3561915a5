"""The `chunked` kind (plugin lam_mteb_plugins.baselines) with a toy encoder and a toy WordPiece
tokenizer."""

from __future__ import annotations

import itertools
import json
import random
import zlib

import mteb
import numpy as np
import pytest

import lam_mteb
from lam_mteb import plugins, registry
from lam_mteb.errors import LamMtebError
from lam_mteb_plugins.baselines import chunked
from tests.conftest import WORDS

SUFFIXES = ("##s", "##ing", "##er")


def toy_tokenizer():
    """WordPiece over WORDS + three suffixes, BERT pre-tokenizer, [CLS] ... [SEP]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {
        t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS, *SUFFIXES, "."])
    }
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tok


class ToyTokEncoder:
    """Mean of seeded random token vectors (+ the [CLS] vector): a toy model with a real
    tokenizer."""

    def __init__(self, max_seq_length: int = 10, dim: int = 128):
        self.tokenizer = toy_tokenizer()
        self.max_seq_length = max_seq_length
        self.table = (
            np.random.default_rng(0)
            .normal(size=(self.tokenizer.get_vocab_size(), dim))
            .astype(np.float32)
        )
        self.texts: list[str] = []

    def encode(self, texts, *, batch_size=32, show_progress_bar=False, **kwargs):
        self.texts.extend(texts)
        out = []
        for text in texts:
            ids = self.tokenizer.encode(text).ids  # [CLS] ... [SEP]
            assert len(ids) <= self.max_seq_length, "the toy model would truncate"
            out.append(self.table[ids].mean(0))
        return np.stack(out)


class ToyTokPlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_encoders(register):
        register(
            "toy-tok", ToyTokEncoder, params={"max_seq_length": 10}, embed_dim=128, max_tokens=10
        )


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    path = tmp_path / "chunk.yaml"
    path.write_text(
        "models:\n"
        "  - name: toy-chunk-mean\n    kind: chunked\n    params: {encoder: toy-tok, pool: mean}\n"
        "  - name: toy-chunk-max\n    kind: chunked\n    params: {encoder: toy-tok, pool: max}\n"
    )
    monkeypatch.setenv("LAM_MTEB_REGISTRY", str(path))
    chunked._CACHES.clear()
    plugins.host.register_plugin(ToyTokPlugin, name="toy-tok-plugin")
    plugins.host.bridge.install(force=True)
    yield path
    plugins.host.unregister_plugin("toy-tok-plugin")
    monkeypatch.delenv("LAM_MTEB_REGISTRY")
    plugins.host.bridge.install(force=True)
    chunked._CACHES.clear()


def random_text(n_words: int, seed: int = 0, vocab=WORDS) -> str:
    rng = random.Random(seed)
    words = []
    for _ in range(n_words):
        w = rng.choice(vocab)
        r = rng.random()
        words.append(
            w + ("s" if r < 0.2 else "ing" if r < 0.3 else "")
        )  # some words are two pieces
        if rng.random() < 0.1:
            words[-1] += "."  # punctuation is its own word for BERT's pre-tokenizer
    return " ".join(words)


def make(overlap=0, pool="mean", window=10, cache=None):
    return chunked.ChunkedEncoder(
        ToyTokEncoder(),
        name="toy-tok",
        window=window,
        overlap=overlap,
        pool=pool,
        cache=cache or chunked.WindowCache(0),
    )


def content_ids(tok, text):
    return tok.encode(text, add_special_tokens=False).ids


# -- windows -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_windows_cover_every_token_exactly_once(seed):
    enc = make()
    assert enc.content == 8 and enc.n_special == 2
    text = random_text(60, seed)
    windows = list(enc.windows(text))
    assert len(windows) > 3
    joined = []
    for wtext, n in windows:
        ids = content_ids(enc.tokenizer, wtext)
        assert len(ids) == n <= enc.content  # the window's text tokenises to exactly its tokens
        assert not enc.tokenizer.id_to_token(ids[0]).startswith("##")  # never starts inside a word
        joined += ids
    assert joined == content_ids(enc.tokenizer, text)


@pytest.mark.parametrize("overlap", [1, 3, 5])
def test_overlap_repeats_exactly_that_many_tokens(overlap):
    enc = make(overlap=overlap)
    text = " ".join(
        random.Random(1).choice(WORDS) for _ in range(50)
    )  # one token per word: exact overlap
    windows = [content_ids(enc.tokenizer, w) for w, _ in enc.windows(text)]
    full = content_ids(enc.tokenizer, text)
    assert windows[0] == full[:8]
    pos = 0
    for prev, cur in itertools.pairwise(windows):
        assert (
            cur[:overlap] == prev[-overlap:]
        )  # shares exactly `overlap` tokens with the previous one
        assert len(prev) == 8
        pos += len(prev) - overlap
        assert cur == full[pos : pos + len(cur)]
    assert pos + len(windows[-1]) == len(full)  # ... and the windows end at the last token


def test_overlap_with_multi_piece_words_stays_within_the_bound():
    enc = make(overlap=3)
    text = random_text(80, 3)
    full = content_ids(enc.tokenizer, text)
    windows = [content_ids(enc.tokenizer, w) for w, _ in enc.windows(text)]
    assert windows[0] == full[: len(windows[0])]
    for prev, cur in itertools.pairwise(windows):
        shared = next(
            k for k in range(min(len(prev), len(cur), 3), -1, -1) if k == 0 or prev[-k:] == cur[:k]
        )
        assert shared <= 3 and len(cur) <= 8
    assert windows[-1] == full[-len(windows[-1]) :]


def test_streaming_tokenisation_equals_whole_text():
    enc = make()
    text = random_text(400, 5)
    words = list(chunked.iter_words(text, enc.tokenizer, piece_chars=50))
    pieces = [text[s:e] for _, _, offs in words for s, e in offs]
    whole = enc.tokenizer.encode(text, add_special_tokens=False)
    assert pieces == [text[s:e] for s, e in whole.offsets]


def test_word_longer_than_a_window_is_cut_between_its_pieces():
    enc = make()
    text = (
        "the cat " + "cat" + "er" * 11
    )  # one "word" of 12 pieces (cat ##er ##er ...) > 8 per window
    windows = list(enc.windows(text))
    assert [n for _, n in windows] == [
        2,
        8,
        4,
    ]  # the words before it, then the word in window-sized cuts
    assert sum(n for _, n in windows) == len(content_ids(enc.tokenizer, text))


# -- pooling -------------------------------------------------------------------------------------


def test_short_text_is_exactly_the_inner_vector():
    for pool in ("mean", "max"):
        enc = make(pool=pool)
        texts = ["the cat runs", "a big dogs .", "  green  house  "]
        want = enc.inner.encode(texts)
        assert np.array_equal(enc.encode(texts), want)
        multi = enc.encode(texts, prompt_type="document")
        if pool == "max":
            assert all(np.array_equal(m, w[None, :]) for m, w in zip(multi, want, strict=True))
        # the inner model saw the original strings, unchanged
        assert enc.inner.texts[-3:] == texts


def test_empty_text_gives_a_finite_vector():
    for pool in ("mean", "max"):
        enc = make(pool=pool)
        out = enc.encode(["", "   "], prompt_type="document")
        arr = np.concatenate(out) if isinstance(out, list) else out
        assert arr.shape == (2, 128) and np.isfinite(arr).all()


def test_mean_is_the_token_weighted_mean_of_window_vectors():
    enc = make(overlap=2)
    texts = [random_text(70, 11), random_text(33, 12), "cat dog"]
    got = enc.encode(texts, batch_size=3)
    for text, vec in zip(texts, got, strict=True):
        wins = list(enc.windows(text))
        vecs = enc.inner.encode([w for w, _ in wins])
        n = np.array([k for _, k in wins], dtype=np.float64)
        want = (vecs * n[:, None]).sum(0) / n.sum()
        np.testing.assert_allclose(vec, want, rtol=1e-5, atol=1e-6)


def test_maxsim_is_the_best_window_similarity():
    enc = make(pool="max")
    docs = [random_text(60, s) for s in range(4)]
    queries = ["cat dog red", "the old river", random_text(20, 9)]  # the last one has 3 windows
    D = enc.encode(docs, prompt_type="document")
    Q = enc.encode(queries, prompt_type="query")
    assert [len(d) for d in D] == [len(list(enc.windows(t))) for t in docs]
    scores = np.asarray(enc.similarity(Q, D))

    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    for i, q in enumerate(Q):
        for j, d in enumerate(D):
            # each query window's best document window, summed over the query's windows (ColBERT)
            want = sum(max(cos(qw, dw) for dw in d) for qw in q)
            assert scores[i, j] == pytest.approx(want, abs=1e-5)
    assert len(Q[0]) == 1  # a one-window query: exactly the maximum window cosine
    pair = np.asarray(enc.similarity_pairwise(Q, D[:3]))
    assert pair == pytest.approx(np.diag(scores[:, :3]), abs=1e-6)
    # blocks: the same scores when documents are scored a few at a time
    small = chunked.maxsim([np.asarray(q) for q in Q], [np.asarray(d) for d in D], block=40)
    np.testing.assert_allclose(small, scores, atol=1e-6)


def test_maxsim_handles_negative_similarities():
    q = [np.array([[1.0, 0.0]], np.float32)]
    d = [np.array([[-1.0, 0.1], [-0.5, -1.0]], np.float32), np.array([[0.0, 1.0]], np.float32)]
    s = chunked.maxsim(q, d)
    assert s[0, 0] == pytest.approx(
        max(-1 / np.hypot(1, 0.1), -0.5 / np.hypot(0.5, 1))
    )  # negative, not 0
    assert s[0, 1] == pytest.approx(0.0, abs=1e-7)


def test_window_cache_reuses_repeated_windows():
    cache = chunked.WindowCache(1000)
    enc = make(cache=cache)
    filler = " ".join(["the cat runs on the road ."] * 10)
    texts = [filler + " red", filler + " blue"]
    n_windows = sum(len(list(enc.windows(t))) for t in texts)
    enc.encode(texts)
    assert len(enc.inner.texts) < n_windows  # repeated windows are encoded once
    seen = len(enc.inner.texts)
    enc.encode([filler + " green"])
    assert cache.hits > 0 and len(enc.inner.texts) - seen < len(
        list(enc.windows(filler + " green"))
    )
    np.testing.assert_allclose(
        make().encode([filler + " red"]), enc.encode([filler + " red"]), atol=1e-6
    )


# -- registry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, words",
    [
        ("{encoder: no-such-model}", ["unknown model 'no-such-model'"]),
        ("{encoder: toy-tok, window: 11}", ["window 11 is larger than 'toy-tok'", "limit of 10"]),
        ("{encoder: minilm, window: 300}", ["window 300 is larger than 'minilm'", "256"]),
        ("{encoder: toy-tok, overlap: -1}", ["overlap must be", ">= 0", "-1"]),
        ("{encoder: toy-tok, overlap: 10}", ["overlap 10 must be smaller than the window"]),
        ("{encoder: toy-tok, pool: sum}", ["pool must be one of mean, max"]),
    ],
)
def test_chunked_config_errors_name_file_and_line(toy_plugin, tmp_path, params, words):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "models:\n  - name: ok\n    kind: toy-tok\n  - name: bad\n    kind: chunked\n    params: "
        f"{params}\n"
    )
    with pytest.raises(LamMtebError) as err:
        registry.load_registry_file(path, plugins.get_registry())
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}:4: model 'bad'"), message
    for w in words:
        assert w in message, message


def test_chunked_metadata_and_revision_follow_the_inner_model(toy_plugin):
    reg = plugins.get_registry()
    mean, mx = reg.model("toy-chunk-mean"), reg.model("toy-chunk-max")
    assert mean.metadata["embed_dim"] == 128 and mean.metadata["max_tokens"] == float("inf")
    assert (
        mean.metadata["similarity_fn_name"] == "cosine"
        and mx.metadata["similarity_fn_name"] == "MaxSim"
    )
    assert mean.revision != mx.revision
    meta = mteb.get_model_meta("toy-chunk-max")
    assert meta.embed_dim == 128 and meta.model_type == ["late-interaction"]
    assert meta.adapted_from == "lam-mteb/toy-tok"


# -- an encoder without a tokenizer: windows of words --------------------------------------------


class OnlyEncode:
    """A plain plugin encoder: ``encode(texts)`` and nothing else (no tokenizer, no limit)."""

    texts: list[str] = []

    def encode(self, texts, **kwargs):
        OnlyEncode.texts.extend(texts)
        table = np.random.default_rng(1).normal(size=(64, 16)).astype(np.float32)
        return np.stack(
            [table[[zlib.crc32(w.encode()) % 64 for w in t.split()] or [0]].mean(0) for t in texts]
        )


class OnlyEncodePlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_encoders(register):
        register("only-encode", OnlyEncode, embed_dim=16, max_tokens=float("inf"))


@pytest.fixture
def only_encode(tmp_path, monkeypatch):
    path = tmp_path / "words.yaml"
    path.write_text(
        "models:\n  - name: words-chunk-mean\n    kind: chunked\n"
        "    params: {encoder: only-encode, window: 4, overlap: 1}\n"
    )
    monkeypatch.setenv("LAM_MTEB_REGISTRY", str(path))
    chunked._CACHES.clear()
    plugins.host.register_plugin(OnlyEncodePlugin, name="only-encode-plugin")
    plugins.host.bridge.install(force=True)
    yield path
    plugins.host.unregister_plugin("only-encode-plugin")
    monkeypatch.delenv("LAM_MTEB_REGISTRY")
    plugins.host.bridge.install(force=True)
    chunked._CACHES.clear()


def test_encoder_without_tokenizer_is_cut_into_windows_of_words():
    enc = chunked.ChunkedEncoder(OnlyEncode(), name="only-encode", window=4)
    assert enc.tokenizer is None and enc.n_special == 0 and enc.content == 4
    text = "one two  three\tfour five six\nseven eight nine"
    assert list(enc.windows(text)) == [
        ("one two  three\tfour", 4),  # a slice of the original string, whitespace kept inside
        ("five six\nseven eight", 4),
        ("nine", 1),
    ]
    overlapping = chunked.ChunkedEncoder(OnlyEncode(), name="only-encode", window=4, overlap=2)
    assert [w for w, _ in overlapping.windows("a b c d e f g")] == ["a b c d", "c d e f", "e f g"]
    # a text of at most `window` words goes to the inner encoder unchanged
    short = "  a  b c d "
    assert list(enc.windows(short)) == [(short, 4)]
    OnlyEncode.texts = []
    assert np.array_equal(enc.encode([short]), OnlyEncode().encode([short]))
    assert OnlyEncode.texts[0] == short


def test_word_windows_mean_is_word_weighted():
    enc = chunked.ChunkedEncoder(OnlyEncode(), name="only-encode", window=3)
    text = "w1 w2 w3 w4 w5 w6 w7"
    wins = list(enc.windows(text))
    assert [n for _, n in wins] == [3, 3, 1]
    vecs = OnlyEncode().encode([w for w, _ in wins])
    want = (vecs * np.array([3.0, 3.0, 1.0])[:, None]).sum(0) / 7
    np.testing.assert_allclose(enc.encode([text])[0], want, rtol=1e-5, atol=1e-6)


def test_word_windows_need_a_window_without_a_limit():
    with pytest.raises(LamMtebError, match=r"has no max_seq_length; give `window` \(words"):
        chunked.ChunkedEncoder(OnlyEncode(), name="only-encode")


def test_a_plain_encode_plugin_is_chunked_through_mteb(only_encode):
    config = plugins.get_registry().model("words-chunk-mean")
    assert config.metadata["embed_dim"] == 16
    model = mteb.get_model("words-chunk-mean")
    assert model.mteb_model_meta.embed_dim == 16
    text = " ".join(f"w{i}" for i in range(10))
    OnlyEncode.texts = []
    out = model.encoder.encode([text])
    assert out.shape == (1, 16)
    assert OnlyEncode.texts == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]


# -- through mteb --------------------------------------------------------------------------------


def write_long_beir(folder, n_docs=12, n_queries=6):
    """Long documents (several toy windows); query i's answer sits in the middle of document i."""
    rng = random.Random(5)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs, queries = [], []
    for i in range(n_docs):
        key = " ".join(rng.sample(WORDS[20:], 3))  # words the filler never uses
        filler = WORDS[:20]
        docs.append(
            {
                "_id": f"d{i}",
                "title": "",
                "text": " ".join(
                    [random_text(30, 100 + i, filler), key, random_text(30, 200 + i, filler)]
                ),
            }
        )
        queries.append(key)
    with open(folder / "corpus.jsonl", "w") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    with open(folder / "queries.jsonl", "w") as fh:
        fh.writelines(
            json.dumps({"_id": str(q), "text": queries[q]}) + "\n" for q in range(n_queries)
        )
    with open(folder / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        fh.writelines(f"{q}\td{q}\t1\n" for q in range(n_queries))


def test_chunk_max_runs_retrieval_through_stock_mteb(toy_plugin, tmp_path, monkeypatch):
    write_long_beir(tmp_path / "data" / "scifact")
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tmp_path / "data"))
    scores = {}
    for name in ("toy-chunk-max", "toy-chunk-mean"):
        model = mteb.get_model(name)
        res = mteb.evaluate(model, [mteb.get_task("SciFact")], cache=None, show_progress_bar=False)
        scores[name] = res.task_results[0].get_score()
    # the key sits in one window of its document: the best window finds it
    assert scores["toy-chunk-max"] >= 0.8, scores
    assert scores["toy-chunk-max"] > scores["toy-chunk-mean"], scores
