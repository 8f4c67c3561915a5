"""LAM model + encoder: frozen MiniLM parts wired exactly, padding/streaming correctness, bad input,
checkpoints (round trip, clear errors), revisions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lam_mteb
from lam_mteb_plugins.lam.common.encoder import checkpoint_hash, pad_batch
from lam_mteb_plugins.lam.common.model import LamModel, base_model_path
from lam_mteb_plugins.lam.common.text import LamTokenizer
from lam_mteb_plugins.lam.v1 import encoder as enc_mod
from lam_mteb_plugins.lam.v1.encoder import LamEncoder, revision
from lam_mteb_plugins.lam.v1.model import LamConfig, load_checkpoint, save_checkpoint

torch.set_num_threads(1)

SENTS = ["A man is playing a guitar.", "Two dogs run across a snowy field while kids watch.", "Hi"]


@pytest.fixture(scope="module")
def perturbed_ckpt(tmp_path_factory):
    """A LAM whose blocks differ from the MiniLM initialisation (so tests are not vacuous)."""
    torch.manual_seed(0)
    model = LamModel.from_base(LamConfig(mode="final"))
    with torch.no_grad():
        for _name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(model, folder, dtype=torch.float32)
    return folder


@pytest.fixture(scope="module")
def encoder(perturbed_ckpt):
    return LamEncoder(weights=str(perturbed_ckpt), device="cpu", pooling="mean")


def test_softmax_path_reproduces_minilm():
    """The same frozen embeddings/FFN/LayerNorm wiring with softmax blocks is all-MiniLM-L6-v2."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(base_model_path()), device="cpu")
    ref = st.encode(SENTS, normalize_embeddings=True)
    teacher = LamModel.from_base(attention="softmax").eval()
    x, m = pad_batch(LamTokenizer().encode_batch(SENTS))
    with torch.no_grad():
        h, _ = teacher.forward_chunk(x, m)
    mean = torch.nn.functional.normalize((h * m[..., None]).sum(1) / m.sum(1, keepdim=True), dim=-1)
    np.testing.assert_allclose(mean.numpy(), ref, atol=1e-5)


def test_only_blocks_train():
    model = LamModel.from_base()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".attention." in n for n in trainable)
    assert not any(
        p.requires_grad
        for n, p in model.named_parameters()
        if "ffn" in n or "norm" in n or "embeddings" in n
    )
    # q/k/v/o start from MiniLM's attention weights
    from safetensors.torch import load_file

    sd = load_file(str(base_model_path() / "model.safetensors"))
    torch.testing.assert_close(
        model.layers[3].attention.k_proj.weight, sd["encoder.layer.3.attention.self.key.weight"]
    )
    torch.testing.assert_close(
        model.layers[0].attention.o_proj.bias, sd["encoder.layer.0.attention.output.dense.bias"]
    )


@pytest.mark.parametrize("mode", ["final", "bidir", "causal", "causal+final"])
def test_padding_does_not_change_embeddings(mode):
    """A text alone == the same text padded in a batch (pads write nothing into the state)."""
    torch.manual_seed(1)
    model = LamModel.from_base(LamConfig(mode=mode)).eval()
    enc = LamEncoder(model=model, device="cpu")
    alone = enc.encode_all(SENTS[2:])
    batched = enc.encode_all(SENTS)
    for k in ("mean", "state", "hybrid"):
        np.testing.assert_allclose(batched[k][2], alone[k][0], atol=2e-5)


def test_causal_streaming_equals_one_shot():
    """For causal blocks, chunked processing with carried states (continuing positions) is exact."""
    model = LamModel.from_base(LamConfig(mode="causal")).eval()
    x, m = pad_batch(LamTokenizer().encode_batch([" ".join(SENTS * 4)]))
    with torch.no_grad():
        h_all, s_all = model.forward_chunk(x, m)
        states, hs = None, []
        for c in range(0, x.shape[1], 7):
            h, states = model.forward_chunk(
                x[:, c : c + 7], m[:, c : c + 7], states, position_offset=c
            )
            hs.append(h)
    torch.testing.assert_close(torch.cat(hs, 1), h_all, atol=1e-4, rtol=1e-4)
    for a, b in zip(states, s_all, strict=False):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_state_is_carried_across_chunk_boundaries(encoder):
    """With small chunks the first chunk still shapes the final state (and the mean)."""
    small = LamEncoder(model=encoder.model, chunk_size=8, device="cpu")
    a = "the cat sat on the mat and purred loudly all afternoon long"
    b = "quantum chromodynamics describes quarks and gluons inside hadrons"
    tail = " and then everyone went home for dinner"
    e1, e2 = small.encode_all([a + tail]), small.encode_all([b + tail])
    # the last chunks are identical; only carried state can make the embeddings differ
    assert np.linalg.norm(e1["state"] - e2["state"]) > 1e-2
    # and the streamed result equals a manual chunk loop with carried states
    ids = small.tokenizer.encode_batch([a + tail])[0]
    states, total = None, 0
    with torch.no_grad():
        for c in range(0, len(ids), 8):
            x, m = pad_batch([ids[c : c + 8]])
            h, states = encoder.model.forward_chunk(x, m, states, position_offset=c)
            total = total + h[0].sum(0)
    mean = torch.nn.functional.normalize(total / len(ids), dim=0).numpy()
    np.testing.assert_allclose(e1["mean"][0], mean, atol=1e-5)
    np.testing.assert_allclose(
        e1["state"][0], enc_mod.state_embedding(states[-1])[0].numpy(), atol=1e-5
    )


def test_short_text_streaming_equals_one_shot(encoder):
    """A text shorter than the chunk goes through one chunk: same as the long-document path."""
    ids = encoder.tokenizer.encode_batch(SENTS[:1])
    one_shot = encoder._run_short(ids)
    streamed = encoder._run_long(ids)
    torch.testing.assert_close(one_shot[0], streamed[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one_shot[1], streamed[1], atol=1e-5, rtol=1e-5)


def test_long_documents_in_lock_step_equal_one_by_one(encoder, monkeypatch):
    small = LamEncoder(model=encoder.model, chunk_size=16, device="cpu")
    docs = [" ".join(SENTS * n) for n in (1, 3, 6)]
    together = small.encode_all(docs, batch_size=8)
    for i, d in enumerate(docs):
        alone = small.encode_all([d])
        np.testing.assert_allclose(together["mean"][i], alone["mean"][0], atol=2e-5)
        np.testing.assert_allclose(together["state"][i], alone["state"][0], atol=2e-5)
    # texts above LONG_CHARS are tokenised as a stream: same result
    monkeypatch.setattr(enc_mod, "LONG_CHARS", 50)
    streamed = small.encode_all(docs, batch_size=8)
    np.testing.assert_allclose(streamed["mean"], together["mean"], atol=2e-5)


def test_shared_prefixes_are_computed_once_and_change_nothing(encoder):
    """Documents that begin alike (LongEmbed's filler/haystack up to the key) share their
    prefix chunks: fewer rows run, identical embeddings to encoding each document alone."""
    small = LamEncoder(model=encoder.model, chunk_size=16, device="cpu")
    prefix = " ".join(SENTS * 4)
    docs = [
        prefix + " The pass key is 71432. " + " ".join(SENTS * 2),
        prefix + " The pass key is 90817. " + " ".join(SENTS * 2),
        prefix + " " + " ".join(SENTS * 3),
        "Something else entirely. " + prefix,
    ]
    together = small.encode_all(docs, batch_size=8)
    ids = small.tokenizer.encode_batch(docs)
    chunks_total = sum(-(-len(t) // 16) for t in ids)
    assert small.rows_run < chunks_total - 8, (small.rows_run, chunks_total)
    for i, d in enumerate(docs):
        alone = small.encode_all([d])
        for pooling in ("mean", "state", "hybrid"):
            np.testing.assert_allclose(together[pooling][i], alone[pooling][0], atol=2e-5)
    assert not np.allclose(together["mean"][0], together["mean"][1], atol=1e-4)  # keys differ


def test_streaming_tokenizer_equals_whole_text():
    tok = LamTokenizer()
    text = "Café déjà vu!  Tabs\tand\nnewlines, 12,345 numbers; URLs http://x.y/z?q=1. " * 300
    whole = tok.encode_batch([text])[0]
    pieces = [i for p in tok.iter_ids(text, piece_chars=500) for i in p]
    assert pieces == whole
    chunks = list(tok.iter_chunks(text, 100))
    assert all(len(c) == 100 for c in chunks[:-1]) and sum(chunks, []) == whole


@pytest.mark.parametrize("pooling", ["mean", "state", "hybrid"])
def test_bad_inputs_never_nan(encoder, pooling):
    enc = LamEncoder(model=encoder.model, pooling=pooling, device="cpu")
    texts = [
        "",
        "   \n\t ",
        "\x00\x01\x02\x1f\x7f",
        "\u200b\u200b",
        "\ud800 lone surrogate",
        "a" * 2_000_000,
        "\x00" * 2_000_000,
        "ok",
    ]
    out = enc.encode(texts)
    assert out.shape == (len(texts), 384) and out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert enc.encode([]).shape == (0, 384)


def test_checkpoint_roundtrip(perturbed_ckpt, tmp_path, encoder):
    files = sorted(p.name for p in perturbed_ckpt.iterdir())
    assert files == ["config.json", "model.safetensors"]
    cfg = json.loads((perturbed_ckpt / "config.json").read_text())
    assert cfg["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and cfg["mode"] == "final"
    from safetensors.torch import load_file

    keys = load_file(str(perturbed_ckpt / "model.safetensors")).keys()
    assert keys and all(".attention." in k for k in keys)  # the blocks only
    model = load_checkpoint(perturbed_ckpt)
    save_checkpoint(model, tmp_path / "fp16")  # default float16
    half = LamEncoder(weights=str(tmp_path / "fp16"), device="cpu").encode(SENTS)
    full = encoder.encode(SENTS)
    np.testing.assert_allclose(half, full, atol=5e-3)
    assert (tmp_path / "fp16" / "model.safetensors").stat().st_size < (
        perturbed_ckpt / "model.safetensors"
    ).stat().st_size * 0.6


def test_missing_or_mismatched_checkpoint_is_one_clear_error(tmp_path, perturbed_ckpt):
    with pytest.raises(lam_mteb.LamMtebError, match="needs config.json and model.safetensors"):
        LamEncoder(weights=str(tmp_path / "nope"))
    # wrong mode for the stored tensors (bidir expects two gains per head)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((perturbed_ckpt / "model.safetensors").read_bytes())
    cfg = json.loads((perturbed_ckpt / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "mode": "bidir"}))
    with pytest.raises(lam_mteb.LamMtebError, match="does not match") as info:
        LamEncoder(weights=str(bad))
    assert "\n" not in str(info.value)
    (bad / "config.json").write_text(json.dumps({**cfg, "surprise": 1}))
    with pytest.raises(lam_mteb.LamMtebError, match="unknown keys"):
        LamEncoder(weights=str(bad))
    (bad / "config.json").write_text("{not json")
    with pytest.raises(lam_mteb.LamMtebError, match="unreadable"):
        LamEncoder(weights=str(bad))
    (bad / "config.json").write_text(json.dumps({**cfg, "base_model": "bert-large-cased"}))
    with pytest.raises(lam_mteb.LamMtebError, match="unknown LAM base model"):
        LamEncoder(weights=str(bad))
    with pytest.raises(lam_mteb.LamMtebError, match="pooling"):
        LamEncoder(pooling="max", weights=str(perturbed_ckpt))
    with pytest.raises(lam_mteb.LamMtebError, match="chunk_size"):
        LamEncoder(chunk_size=4096, weights=str(perturbed_ckpt))


def test_revision_follows_content_and_params(tmp_path, perturbed_ckpt):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in perturbed_ckpt.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    base = {"weights": str(perturbed_ckpt), "pooling": "mean"}
    assert revision(base) == revision({**base, "weights": str(copy)})  # content, not path
    assert revision(base) != revision({**base, "pooling": "state"})
    assert revision(base) != revision({**base, "chunk_size": 256})
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert revision(base) != revision({**base, "weights": str(copy)})
    assert checkpoint_hash(str(tmp_path / "absent")) == "missing"
