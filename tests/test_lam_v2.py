"""LAM v2 (kind ``lam2``): MiniLM softmax per chunk + gated delta-rule memory + lexical channel.

At initialisation (gates 0) a text of one chunk must give exactly all-MiniLM-L6-v2's vector and a
long document the mean over MiniLM windows; with non-zero gates the memory must carry information
across windows, computed the same by the chunkwise kernel and the token-by-token reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import lam_mteb
import lam_mteb_plugins.lam as lam_plugin
from lam_mteb_plugins.lam import encoder_v2 as enc2
from lam_mteb_plugins.lam.encoder_v2 import LamV2Encoder, revision_v2
from lam_mteb_plugins.lam.model import base_model_path
from lam_mteb_plugins.lam.v2 import LamV2Config, LamV2Model, fit_idf, load_v2, save_v2

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
    from lam_mteb_plugins.lam.text import LamTokenizer

    model.lexical_idf.copy_(fit_idf(LamTokenizer(), [_text(30, s) for s in range(20)] + ["a b c"]))
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
    together = enc.encode_parts(docs, state=True)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == len(docs)
    monkeypatch.delenv("LAM_MTEB_LAM2_CACHE")
    alone = [enc.encode_parts([d], state=True) for d in docs]
    for k in ("mean", "window_mean", "state"):
        assert np.allclose(together[k], np.concatenate([a[k] for a in alone]), atol=2e-5), k
    # the memory changes long documents only
    init_like = LamV2Encoder(weights=str(gated_ckpt), chunk_size=512)
    assert not np.allclose(
        together["mean"][2], init_like.encode_parts([docs[2]])["mean"][0], atol=1e-3
    )
    # texts over LONG_CHARS are tokenised as a stream: same result
    monkeypatch.setattr(enc2, "LONG_CHARS", 50)
    streamed = enc.encode_parts(docs, state=True)
    for k in ("mean", "state"):
        assert np.allclose(streamed[k], together[k], atol=2e-5), k


def _bag(enc, text):
    ids = enc.tokenizer.encode_batch([text])[0][1:-1]
    return {t: ids.count(t) for t in set(ids)}


def test_hashed_lexical_channel_matches_its_plain_reference(init_ckpt):
    """project_bags (vectorised, streamed counts) == the per-token Python reference."""
    from lam_mteb_plugins.lam.lexical import reference_project
    from lam_mteb_plugins.lam.text import PIECE_CHARS

    enc = LamV2Encoder(weights=str(init_ckpt), chunk_size=16, lexical_weight=1.0, lexical_dim=64)
    docs = [_text(60, 8), _text(200, 9) + " " + _text(5, 8)]
    got = enc.lexical(docs)
    assert got.shape == (2, 64)
    for row, doc in zip(got, docs, strict=False):
        want = reference_project(_bag(enc, doc), enc.model.lexical_idf, 64)
        assert np.allclose(row, want.numpy(), atol=1e-4)
    # a text over the tokenizer's piece size is counted piece by piece: the same bag as a whole
    long = " ".join([docs[1]] * 60)
    assert len(long) > 2 * PIECE_CHARS
    want = reference_project(_bag(enc, long), enc.model.lexical_idf, 64)
    assert np.allclose(enc.lexical([long])[0], want.numpy(), atol=1e-3)


def test_lexical_weight_fuses_cosines_and_retrieval_weight_follows_prompt_type(init_ckpt):
    docs = [_text(60, 8), _text(70, 10), "a b c words " * 3]
    enc = LamV2Encoder(
        weights=str(init_ckpt),
        chunk_size=16,
        lexical_weight=0.3,
        retrieval_lexical_weight=0.8,
        lexical_dim=256,
    )
    dense = LamV2Encoder(weights=str(init_ckpt), chunk_size=16).encode(docs)
    assert enc.embed_dim == 384 + 256 and dense.shape == (3, 384)
    lex = enc.lexical(docs)
    lex = lex / np.linalg.norm(lex, axis=1, keepdims=True)
    for prompt_type, w in ((None, 0.3), ("query", 0.8), ("document", 0.8)):
        e = enc.encode(docs, prompt_type=prompt_type)
        assert e.shape == (3, 640) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
        cos = e @ e.T
        want = (1 - w) * dense @ dense.T + w * lex @ lex.T
        assert np.allclose(cos, want, atol=1e-5), prompt_type
    # the first lexical channel: MiniLM's input embeddings, mixed into the same 384 dimensions
    old = LamV2Encoder(
        weights=str(init_ckpt),
        chunk_size=16,
        lexical_weight=0.3,
        lexical_vectors="minilm",
        lexical_tf="raw",
    )
    ids = torch.tensor(old.tokenizer.encode_batch([docs[0]])[0])
    m = old.model
    manual = (m.lexical_idf[ids, None] * m.static_vectors()[ids]).sum(0)
    manual = (manual / manual.norm()).detach().numpy()
    want = 0.7 * dense[0] + 0.3 * manual
    assert old.embed_dim == 384
    assert np.allclose(old.encode([docs[0]])[0], want / np.linalg.norm(want), atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "state"])
def test_bad_inputs_never_nan(gated_ckpt, pooling):
    enc = LamV2Encoder(weights=str(gated_ckpt), chunk_size=16, pooling=pooling, lexical_weight=0.2)
    e = enc.encode([None, "", "   ", "\x00\x01", "\ud800 lone", "word " * 100])
    assert e.shape == (6, 384 + 2048) and np.isfinite(e).all()
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)  # empty texts too
    assert np.allclose(np.linalg.norm(e[-1]), 1, atol=1e-4)


def test_bad_params_and_checkpoints_are_clear_errors(tmp_path, init_ckpt):
    with pytest.raises(lam_mteb.LamMtebError, match="pooling"):
        LamV2Encoder(weights=str(init_ckpt), pooling="hybrid")
    with pytest.raises(lam_mteb.LamMtebError, match="lexical_weight"):
        LamV2Encoder(weights=str(init_ckpt), lexical_weight=2)
    with pytest.raises(lam_mteb.LamMtebError, match="retrieval_lexical_weight"):
        LamV2Encoder(weights=str(init_ckpt), retrieval_lexical_weight=-0.1)
    with pytest.raises(lam_mteb.LamMtebError, match="lexical_vectors"):
        LamV2Encoder(weights=str(init_ckpt), lexical_vectors="bm25")
    with pytest.raises(lam_mteb.LamMtebError, match="lexical_tf"):
        LamV2Encoder(weights=str(init_ckpt), lexical_tf="sqrt")
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
    assert (gated_ckpt / "model.safetensors").stat().st_size < 1 << 20  # memory params + idf only
    r = revision_v2({"weights": str(gated_ckpt)})
    assert r == revision_v2({"weights": str(gated_ckpt)})
    assert r != revision_v2({"weights": str(init_ckpt)})
    assert r != revision_v2({"weights": str(gated_ckpt), "lexical_weight": 0.2})


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
    assert (
        models["lam2-state"]["kind"] == "lam2"
        and models["lam2-state"]["params"]["pooling"] == "state"
    )
    # the README's main job: state pooling needs a trained memory, so lam-state is v1's
    assert (
        models["lam-state"]["kind"] == "lam" and models["lam-state"]["params"]["pooling"] == "state"
    )
    assert (
        models["lam-hybrid"]["kind"] == "lam2"
        and 0 < models["lam-hybrid"]["params"]["lexical_weight"] < 1
    )
    for pooling in ("mean", "state", "hybrid"):
        assert models[f"lam-v1-{pooling}"]["kind"] == "lam"


def test_lam2_configure_derives_embed_dim_and_rejects_bad_params(tmp_path):
    from lam_mteb import plugins, registry

    reg = plugins.get_registry()
    assert reg.model("lam-hybrid").embed_dim == 384 + 2048  # no embed_dim written in registry.yaml
    assert reg.model("lam-mean").embed_dim == reg.model("lam2-state").embed_dim == 384
    derive = enc2.configure_v2
    assert derive({"lexical_weight": 0.3, "lexical_dim": 512}, None) == {"embed_dim": 384 + 512}
    assert derive({"retrieval_lexical_weight": 0.5}, None) == {"embed_dim": 384 + 2048}
    # MiniLM's input embeddings are mixed in, not concatenated: the width stays the dense one
    assert derive({"lexical_weight": 0.3, "lexical_vectors": "minilm"}, None) == {"embed_dim": 384}
    path = tmp_path / "registry.yaml"
    path.write_text(
        "models:\n  - name: my-lam\n    kind: lam2\n"
        "    params: {lexical_weight: 0.3, lexical_tf: sqrt}\n"
    )
    with pytest.raises(lam_mteb.LamMtebError, match=r"registry.yaml:2: .*'my-lam'.*lexical_tf"):
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


def _cli(argv):
    parser = argparse.ArgumentParser(prog="lam-mteb")
    lam_plugin.register_commands(parser.add_subparsers())
    return parser.parse_args(argv)


def test_distill_v2_trains_only_the_memory_and_resumes(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "longtext").mkdir(parents=True)
    for i in range(3):
        (data / "longtext" / f"doc{i}.txt").write_text(_text(600, 10 + i))
    out = tmp_path / "ckpt"
    argv = [
        "distill-v2",
        "-o",
        str(out),
        "--data-dir",
        str(data),
        "--chunk-size",
        "16",
        "--windows",
        "2",
        "--batch",
        "3",
        "--query-tokens",
        "4",
        "--lr",
        "0.05",
        "--save-every",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]
    args = _cli(argv + ["--steps", "2"])
    assert args.func(args) == 0
    assert torch.load(out / "trainer_state.pt", weights_only=True)["step"] == 2
    args = _cli(argv + ["--steps", "3", "--resume"])  # continue the same run for one more step
    assert args.func(args) == 0
    model = load_v2(out)
    init = LamV2Model.from_base()
    assert any(la.attention.mem_gate.abs().max() > 0 for la in model.layers)  # the memory trained
    for (n, p), (_, p0) in zip(model.named_parameters(), init.named_parameters(), strict=False):
        if ".mem_" not in n:
            assert torch.equal(p, p0), n  # MiniLM untouched
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["steps"] == 3 and "heldout_accuracy_trained" in cfg["training"]
    with pytest.raises(lam_mteb.LamMtebError, match="not empty"):
        args = _cli(argv + ["--steps", "3"])
        args.func(args)
    with pytest.raises(lam_mteb.LamMtebError, match="other settings"):
        args = _cli(argv + ["--steps", "3", "--resume", "--lr", "0.5"])
        args.func(args)
    assert "held-out" in capsys.readouterr().err


def test_distill_v2_without_data_is_a_clear_error(tmp_path):
    args = _cli(["distill-v2", "-o", str(tmp_path / "x"), "--data-dir", str(tmp_path)])
    with pytest.raises(lam_mteb.LamMtebError, match="longtext"):
        args.func(args)


def test_lexical_projection_in_blocks_equals_one_block(monkeypatch):
    """Long documents are projected in blocks of word pieces (flat memory): same vectors."""
    from lam_mteb_plugins.lam import lexical

    g = torch.Generator().manual_seed(0)
    idf = torch.rand(30522, generator=g)
    counts = torch.zeros(2, 30522)
    counts[0, 1000:9000] = torch.randint(1, 5, (8000,), generator=g).float()
    counts[1, 20000:20010] = 3.0
    monkeypatch.setattr(lexical, "_BLOCK", 10**6)
    whole = lexical.project_bags(counts, idf, dim=64)
    monkeypatch.setattr(lexical, "_BLOCK", 97)
    blocks = lexical.project_bags(counts, idf, dim=64)
    assert torch.allclose(whole, blocks, rtol=1e-4, atol=1e-3)
    assert whole[0].abs().sum() > 0 and whole[1].abs().sum() > 0
