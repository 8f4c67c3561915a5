"""LAM v2 (kind ``lam2``): MiniLM softmax per chunk + gated delta-rule memory; the slot state.

At initialisation (gates 0) a text of one chunk must give exactly all-MiniLM-L6-v2's vector and a
long document the mean over MiniLM windows; with non-zero gates the memory must carry information
across windows, computed the same by the chunkwise kernel and the token-by-token reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import lam_mteb
import lam_mteb_plugins.lam as lam_plugin
from lam_mteb_plugins.lam.common.model import base_model_path
from lam_mteb_plugins.lam.v2 import encoder as enc2
from lam_mteb_plugins.lam.v2.encoder import LamV2Encoder, revision_v2
from lam_mteb_plugins.lam.v2.model import LamV2Config, LamV2Model, load_v2, save_v2

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent
WORDS = [
    "river",
    "mountain",
    "city",
    "history",
    "science",
    "music",
    "people",
    "water",
    "light",
    "system",
    "theory",
    "market",
    "language",
    "garden",
    "winter",
    "summer",
    "ocean",
    "forest",
    "machine",
    "story",
    "road",
]


def _text(n_words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n_words))


@pytest.fixture(scope="module")
def init_ckpt(tmp_path_factory):
    model = LamV2Model.from_base(LamV2Config(chunk_size=32))
    folder = tmp_path_factory.mktemp("v2init")
    save_v2(model, folder)
    return folder


@pytest.fixture(scope="module")
def gated_ckpt(tmp_path_factory):
    """Non-zero gates and write strengths, so the memory matters (tests are not vacuous)."""
    torch.manual_seed(0)
    model = LamV2Model.from_base(LamV2Config(chunk_size=32))
    with torch.no_grad():
        for layer in model.layers:
            layer.attention.mem_gate.copy_(0.5 + torch.rand(12))
            layer.attention.mem_beta.weight.normal_(0, 0.05)
    folder = tmp_path_factory.mktemp("v2gated")
    save_v2(model, folder)
    return folder


def test_one_chunk_texts_are_exactly_minilm(init_ckpt):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(base_model_path()), device="cpu")
    texts = ["A man is playing a guitar.", "", "Hi", _text(200, 1), _text(40, 2)]
    enc = LamV2Encoder(weights=str(init_ckpt), chunk_size=256, batch_size=2)
    ours = enc.encode(texts)
    ref = st.encode(texts, normalize_embeddings=True)
    assert np.abs(ours - ref).max() < 1e-5


def test_long_document_at_init_is_minilm_window_mean(init_ckpt):
    """Gates 0: every window is a MiniLM input; pooling = mean over windows' tokens / of windows."""
    enc = LamV2Encoder(weights=str(init_ckpt), chunk_size=32)
    doc = _text(150, 3)
    ids = enc.tokenizer.encode_batch([doc])[0][1:-1]
    wins = [
        [enc.tokenizer.cls_id, *ids[j : j + 30], enc.tokenizer.sep_id]
        for j in range(0, len(ids), 30)
    ]
    assert len(wins) > 3
    with torch.no_grad():
        hs = [enc.model.forward_chunk(torch.tensor([w]), torch.ones(1, len(w)))[0][0] for w in wins]
    tok_mean = torch.cat(hs).mean(0)
    win_mean = torch.stack([h.mean(0) for h in hs]).mean(0)
    assert not enc.model.memory_is_read()  # gates 0: the encoder skips the (unread) memory writes
    parts = enc.encode_parts([doc])
    assert np.allclose(parts["mean"][0], tok_mean.numpy(), atol=1e-5)
    assert np.allclose(parts["window_mean"][0], win_mean.numpy(), atol=1e-5)


def test_memory_carries_context_and_fast_path_equals_reference(gated_ckpt):
    model = load_v2(gated_ckpt)
    assert model.memory_is_read()
    torch.manual_seed(1)
    x1, x2 = torch.randint(1000, 30000, (2, 2, 20))
    m1 = torch.ones(2, 20)
    m1[1, 15:] = 0  # padding writes nothing
    outs = {}
    for backend in ("auto", "reference"):
        with torch.no_grad():
            _, s = model.forward_chunk(x1, m1, write=True, backend=backend)
            h, s2 = model.forward_chunk(x2, torch.ones(2, 20), s, write=True, backend=backend)
        outs[backend] = (h, s, s2)
    for a, b in zip(outs["auto"], outs["reference"], strict=False):
        if isinstance(a, list):
            for u, v in zip(a, b, strict=False):
                assert torch.allclose(u, v, atol=2e-5)
        else:
            assert torch.allclose(a, b, atol=2e-5)
    h_nomem, _ = model.forward_chunk(x2, torch.ones(2, 20))
    assert (outs["auto"][0] - h_nomem).abs().max() > 1e-3  # the memory is read


def test_padding_never_writes_the_memory(gated_ckpt):
    model = load_v2(gated_ckpt)
    x = torch.randint(1000, 30000, (1, 12))
    with torch.no_grad():
        _, s_short = model.forward_chunk(x, torch.ones(1, 12), write=True)
        xp = torch.cat([x, torch.zeros(1, 8, dtype=torch.long)], 1)
        mp = torch.cat([torch.ones(1, 12), torch.zeros(1, 8)], 1)
        _, s_pad = model.forward_chunk(xp, mp, write=True)
    for a, b in zip(s_short, s_pad, strict=False):
        assert torch.allclose(a, b, atol=1e-5)


def test_gated_long_documents_batch_stream_and_share_prefixes_exactly(
    gated_ckpt, monkeypatch, tmp_path
):
    monkeypatch.setenv("LAM_MTEB_LAM2_CACHE", str(tmp_path / "cache"))  # must not change results
    enc = LamV2Encoder(weights=str(gated_ckpt), chunk_size=32, pooling="state")
    base = _text(120, 4)
    docs = [
        base + " alpha " + _text(30, 5),
        base + " beta " + _text(30, 6),
        _text(90, 7),
        "short one",
    ]
    together = enc.encode_parts(docs)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == len(docs)
    assert np.allclose(enc.encode_parts(docs)["slots"], together["slots"])  # read from the cache
    monkeypatch.delenv("LAM_MTEB_LAM2_CACHE")
    alone = [enc.encode_parts([d]) for d in docs]
    for k in ("mean", "window_mean", "slots", "counts"):
        assert np.allclose(together[k], np.concatenate([a[k] for a in alone]), atol=2e-5), k
    # the memory changes long documents only
    init_like = LamV2Encoder(weights=str(gated_ckpt), chunk_size=512)
    assert not np.allclose(
        together["mean"][2], init_like.encode_parts([docs[2]])["mean"][0], atol=1e-3
    )
    # texts over LONG_CHARS are tokenised as a stream: same result
    monkeypatch.setattr(enc2, "LONG_CHARS", 50)
    streamed = enc.encode_parts(docs)
    for k in ("mean", "slots", "counts"):
        assert np.allclose(streamed[k], together[k], atol=2e-5), k


@pytest.mark.parametrize("pooling", ["mean", "state", "hybrid"])
def test_bad_inputs_never_nan(gated_ckpt, pooling):
    enc = LamV2Encoder(weights=str(gated_ckpt), chunk_size=16, pooling=pooling, slots=4)
    width = 384 if pooling == "mean" else 5 * 384 + 4
    texts = [None, "", "   ", "\x00\x01", "\ud800 lone", "word " * 100]
    for prompt_type in (None, "query", "document"):
        e = enc.encode(texts, prompt_type=prompt_type)
        assert e.shape == (6, width) and np.isfinite(e).all()
        assert np.allclose(np.linalg.norm(e[:, :384], axis=1), 1, atol=1e-4)  # empty texts too
        assert np.isfinite(np.asarray(enc.similarity(e, e))).all()


def test_bad_params_and_checkpoints_are_clear_errors(tmp_path, init_ckpt):
    with pytest.raises(lam_mteb.LamMtebError, match="pooling"):
        LamV2Encoder(weights=str(init_ckpt), pooling="max")
    with pytest.raises(lam_mteb.LamMtebError, match="hybrid_weight"):
        LamV2Encoder(weights=str(init_ckpt), hybrid_weight=2)
    with pytest.raises(lam_mteb.LamMtebError, match="slots"):
        LamV2Encoder(weights=str(init_ckpt), slots=0)
    with pytest.raises(lam_mteb.LamMtebError, match="temperature"):
        LamV2Encoder(weights=str(init_ckpt), temperature=0)
    with pytest.raises(lam_mteb.LamMtebError, match="chunk_size"):
        LamV2Encoder(weights=str(init_ckpt), chunk_size=600)
    with pytest.raises(lam_mteb.LamMtebError, match="needs config.json"):
        load_v2(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(
        json.dumps({**json.loads((init_ckpt / "config.json").read_text()), "surprise": 1})
    )
    (bad / "model.safetensors").write_bytes((init_ckpt / "model.safetensors").read_bytes())
    with pytest.raises(lam_mteb.LamMtebError, match="unknown keys"):
        load_v2(bad)


def test_checkpoint_roundtrip_and_revision(tmp_path, gated_ckpt, init_ckpt):
    a, b = load_v2(gated_ckpt), load_v2(gated_ckpt)
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=False)
    assert all(torch.equal(x, y) for x, y in pairs)
    assert (gated_ckpt / "model.safetensors").stat().st_size < 1 << 20  # memory params only
    r = revision_v2({"weights": str(gated_ckpt)})
    assert r == revision_v2({"weights": str(gated_ckpt)})
    assert r != revision_v2({"weights": str(init_ckpt)})
    assert r != revision_v2({"weights": str(gated_ckpt), "pooling": "state"})
    state = revision_v2({"weights": str(gated_ckpt), "pooling": "state"})
    assert state != revision_v2({"weights": str(gated_ckpt), "pooling": "state", "slots": 8})
    # hybrid_weight changes the hybrid only
    assert state == revision_v2(
        {"weights": str(gated_ckpt), "pooling": "state", "hybrid_weight": 0.1}
    )


def test_lam2_kind_and_registry_entries():
    calls = []
    lam_plugin.register_encoders(lambda *a, **kw: calls.append((a, kw)))
    kinds = {a[0]: (a[1], kw) for a, kw in calls}
    factory, meta = kinds["lam2"]
    assert factory is enc2.LamV2Encoder
    assert meta["params"] == enc2.DEFAULTS_V2 == lam_plugin.PARAMS_V2
    assert sum(p.numel() for p in LamV2Model().parameters()) == lam_plugin.N_PARAMETERS_V2
    models = {m["name"]: m for m in yaml.safe_load((REPO / "registry.yaml").read_text())["models"]}
    assert (
        models["lam-mean"]["kind"] == "lam2" and models["lam-mean"]["params"]["pooling"] == "mean"
    )
    for name, pooling in (("lam-state-dense", "state"), ("lam-hybrid-dense", "hybrid")):
        assert models[name]["kind"] == "lam2" and models[name]["params"]["pooling"] == pooling
    # the README's main job: LAM's state + the lexical wrapper (LAM has no lexical code of its own)
    for name in ("lam-state", "lam-hybrid"):
        assert models[name]["kind"] == "lexical"
        assert models[name]["params"]["encoder"] == f"{name}-dense"
    for pooling in ("mean", "state", "hybrid"):
        assert models[f"lam-v1-{pooling}"]["kind"] == "lam"


def test_lam2_configure_derives_embed_dim_and_rejects_bad_params(tmp_path):
    from lam_mteb import plugins, registry

    reg = plugins.get_registry()
    # no embed_dim written in registry.yaml: the state layout's width is derived
    assert reg.model("lam-mean").embed_dim == 384
    K = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]
    K = {m["name"]: m for m in K}["lam-state-dense"]["params"]["slots"]
    assert reg.model("lam-state-dense").embed_dim == (K + 1) * 384 + K
    derive = enc2.configure_v2
    assert derive({"pooling": "state", "slots": 4}, None)["embed_dim"] == 5 * 384 + 4
    assert derive({"pooling": "mean", "slots": 4}, None) == {"embed_dim": 384}
    path = tmp_path / "registry.yaml"
    path.write_text(
        "models:\n  - name: my-lam\n    kind: lam2\n    params: {pooling: state, slots: 0}\n"
    )
    with pytest.raises(lam_mteb.LamMtebError, match=r"registry.yaml:2: .*'my-lam'.*slots"):
        registry.load_registry_file(path, reg)


def test_shipped_v2_checkpoint_is_small_and_loads():
    folder = enc2.DEFAULT_WEIGHTS_V2
    if not (folder / "model.safetensors").is_file():
        pytest.skip("no shipped v2 checkpoint in this checkout")
    assert (folder / "model.safetensors").stat().st_size < 1 << 20
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and cfg["training"]
    e = enc2.LamV2Encoder(device="cpu").encode(
        [
            "A man is playing a guitar.",
            "Someone plays the guitar.",
            "The stock market fell sharply on Monday.",
        ]
    )
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


# -- the document state (slots.py) ----------------------------------------------------------------


def test_batched_slot_writes_and_reads_equal_the_plain_reference():
    """SlotMemory (documents in lock-step, some finished) == the per-step delta rule."""
    from lam_mteb_plugins.lam.v2 import slots

    g = torch.Generator().manual_seed(0)
    K, d, lengths = 4, 8, [1, 3, 9, 17]
    windows = [
        torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1) for n in lengths
    ]
    memory = slots.SlotMemory(len(lengths), K, d)
    for t in range(max(lengths)):
        rows = [r for r, n in enumerate(lengths) if t < n]
        memory.write(torch.tensor(rows), torch.stack([windows[r][t] for r in rows]))
    queries = torch.nn.functional.normalize(torch.randn(3, d, generator=g), dim=-1)
    scores = slots.read(queries, memory.S, memory.n, tau=0.1)
    for r, w in enumerate(windows):
        S, n = torch.zeros(K, d), torch.zeros(K)
        for vec in w:
            S, n = slots.write_reference(S, n, vec)
        assert torch.allclose(memory.S[r], S, atol=1e-6) and torch.equal(memory.n[r], n)
        assert n.sum() == len(w)  # every window is written once
        for qi in range(len(queries)):
            want = slots.read_reference(queries[qi], S, n, 0.1)
            assert abs(float(scores[qi, r]) - want) < 1e-5
    # a document with at most K windows keeps each window in its own slot (exact)
    assert torch.allclose(memory.S[1, :3], windows[1], atol=1e-6)
    # the read lies between the share-weighted mean cosine and the best slot's cosine
    cos = queries @ torch.nn.functional.normalize(memory.S[3], dim=-1).T
    share = memory.n[3] / memory.n[3].sum()
    assert ((cos * share).sum(1) <= scores[:, 3] + 1e-6).all()
    assert (scores[:, 3] <= cos.max(1).values + 1e-6).all()


def test_state_is_fixed_size_and_read_by_the_query(init_ckpt):
    """The state's width does not depend on the length; a query that repeats one part of a long
    document scores it through the state above the window mean; symmetric rows are the mean."""
    enc = LamV2Encoder(weights=str(init_ckpt), chunk_size=32, pooling="state", slots=4)
    mean_enc = LamV2Encoder(weights=str(init_ckpt), chunk_size=32)
    topics = [
        "The orchestra rehearsed the symphony; violins and cellos played the slow movement.",
        "Interest rates rose again and the central bank warned about inflation and bond markets.",
        "The goalkeeper saved a penalty in the final minute and the striker scored twice.",
        "Mitochondria produce energy for the cell through respiration and ATP synthesis.",
    ]
    long_doc = " ".join(" ".join([t] * 6) for t in topics)  # ~16 windows of 4 topics, 4 slots
    docs = [long_doc, _text(10, 99), _text(200, 98)]
    D = enc.encode(docs, prompt_type="document")
    assert D.shape == (3, 5 * 384 + 4) == (3, enc.embed_dim)
    assert np.allclose(D[:, -4:].sum(1), 1, atol=1e-6)  # slot shares
    assert np.allclose(D[1, -4:], [1, 0, 0, 0])  # one window: one slot
    for prompt_type in (None, "query"):
        e = enc.encode(docs, prompt_type=prompt_type)
        assert np.allclose(e[:, :384], mean_enc.encode(docs), atol=1e-6)
        assert not e[:, 384:].any()  # queries and symmetric texts carry the mean only
    q = enc.encode(["Who scored in the final minute of the football match?"], prompt_type="query")
    state = np.asarray(enc.similarity(q, D))[0]
    cosine = q[0, :384] @ D[:, :384].T
    assert state[0] > cosine[0] + 0.01  # the state keeps the matching part; the mean dilutes it
    # pairwise = the diagonal of the full matrix; documents encoded without state: cosine
    Q3 = np.repeat(q, 3, axis=0)
    assert np.allclose(enc.similarity_pairwise(Q3, D), state, atol=1e-6)
    plain = enc.encode(docs, prompt_type=None)
    assert np.allclose(np.asarray(enc.similarity(q, plain))[0], cosine, atol=1e-6)
    hybrid = LamV2Encoder(
        weights=str(init_ckpt), chunk_size=32, pooling="hybrid", slots=4, hybrid_weight=0.25
    )
    assert np.allclose(hybrid.similarity(q, D), 0.25 * cosine + 0.75 * state, atol=1e-6)
