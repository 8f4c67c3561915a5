"""Kind ``sentence-transformers`` (plugin minilm): metadata from the model's files, prompts, offline
errors, and ``minilm`` as one of its configurations (same vectors, revision and ModelMeta as the
committed results)."""

from __future__ import annotations

import json
from pathlib import Path

import mteb
import numpy as np
import pytest

import lam_mteb
from lam_mteb import cli, plugins, registry
from lam_mteb.errors import LamMtebError
from lam_mteb_plugins import sentence_transformer as stk
from lam_mteb_plugins.minilm import minilm_path

REPO = Path(__file__).resolve().parent.parent
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a cat dog sat on mat is ran fast slow big small red blue query passage :".split()
)
TEXTS = ["the cat sat on the mat", "a dog ran fast", "big red cat " * 20, "blue"]


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory) -> Path:
    """A tiny sentence-transformers folder: BERT (16 wide, 64 positions, 32 tokens kept), mean+max
    pooling, a Dense layer to 8 dims, dot similarity, a query and a named passage prompt."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-st")
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(root / "hf")
    BertTokenizerFast(str(root / "vocab.txt")).save_pretrained(root / "hf")
    model = SentenceTransformer(
        modules=[
            models.Transformer(str(root / "hf"), max_seq_length=32),
            models.Pooling(16, pooling_mode=("mean", "max")),
            models.Dense(32, 8),
        ],
        similarity_fn_name="dot",
        prompts={"query": "query: ", "passage": "passage: "},
    )
    model.save(str(root / "model"))
    return root / "model"


@pytest.fixture
def tiny_registry(tiny_st, tmp_path, monkeypatch):
    """A registry file naming the tiny folder in three lines; the bridge sees it."""

    def write(extra: str = "") -> Path:
        path = tmp_path / "registry.yaml"
        (tmp_path / "tiny").symlink_to(tiny_st, target_is_directory=True)
        path.write_text(
            "models:\n  - name: tiny-st\n    kind: sentence-transformers\n"
            f"    params: {{model_name_or_path: ./tiny}}\n{extra}"
        )
        monkeypatch.setenv("LAM_MTEB_REGISTRY", str(path))
        plugins.host.bridge.install(force=True)
        return path

    yield write
    monkeypatch.delenv("LAM_MTEB_REGISTRY", raising=False)
    plugins.host.bridge.install(force=True)


def _load(tmp_path: Path, text: str) -> registry.Registry:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    reg = plugins.get_registry()
    registry.load_registry_file(path, reg)
    return reg


# -- metadata from the files ---------------------------------------------------------------------


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_files_say_what_the_loaded_model_says(tiny_st, which):
    from sentence_transformers import SentenceTransformer

    folder = tiny_st if which == "tiny" else Path(minilm_path())
    files = stk.read_files(folder)
    model = SentenceTransformer(str(folder), device="cpu")
    assert files.embed_dim == model.get_embedding_dimension()
    assert files.max_tokens == model.max_seq_length
    assert files.n_parameters == sum(p.numel() for p in model.parameters())
    assert (files.similarity or "cosine") == model.similarity_fn_name
    if which == "tiny":
        assert (files.embed_dim, files.max_tokens, files.similarity) == (8, 32, "dot")
        assert files.prompts["passage"] == "passage: " and not files.normalized
    else:  # mteb's published all-MiniLM-L6-v2 settings
        assert (files.embed_dim, files.max_tokens, files.n_parameters) == (384, 256, 22_713_216)
        assert files.normalized


def test_a_folder_in_three_lines_runs_through_mteb_offline(tiny_registry, tiny_sts_data_dir):
    tiny_registry()
    meta = mteb.get_model_meta("tiny-st")
    assert (meta.embed_dim, meta.max_tokens, meta.n_parameters) == (8, 32, 4216)
    assert meta.similarity_fn_name == "dot" and meta.use_instructions
    model = mteb.get_model("tiny-st")
    assert model.encoder.encode(TEXTS).shape == (4, 8)


def test_a_folder_runs_a_task_through_mteb(tiny_registry, tiny_sts_data_dir, monkeypatch):
    tiny_registry()
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tiny_sts_data_dir))
    res = mteb.evaluate(
        mteb.get_model("tiny-st"), [mteb.get_task("STSBenchmark")], cache=None
    ).task_results[0]
    assert np.isfinite(res.get_score())


@pytest.mark.parametrize(
    "metadata, key",
    [
        ("{embed_dim: 384}", "embed_dim: 384 contradicts 8"),
        ("{max_tokens: 512}", "max_tokens: 512 contradicts 32"),
        ("{similarity_fn_name: cosine}", "similarity_fn_name: 'cosine' contradicts 'dot'"),
        ("{n_parameters: 5}", "n_parameters: 5 contradicts 4216"),
    ],
)
def test_declared_metadata_that_contradicts_the_files_is_one_line(tiny_st, tmp_path, metadata, key):
    (tmp_path / "tiny").symlink_to(tiny_st, target_is_directory=True)
    text = (
        "models:\n  - name: tiny-st\n    kind: sentence-transformers\n"
        f"    params: {{model_name_or_path: ./tiny}}\n    metadata: {metadata}\n"
    )
    with pytest.raises(LamMtebError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'r.yaml'}:2: model 'tiny-st'")
    assert key in message and "remove" in message, message


def test_declared_metadata_that_agrees_is_kept(tiny_st, tmp_path):
    (tmp_path / "tiny").symlink_to(tiny_st, target_is_directory=True)
    reg = _load(
        tmp_path,
        "models:\n  - name: tiny-st\n    kind: sentence-transformers\n"
        "    params: {model_name_or_path: ./tiny, max_seq_length: 16}\n"
        "    metadata: {embed_dim: 8, max_tokens: 16, license: mit}\n",
    )
    md = reg.model("tiny-st").metadata
    assert (md["embed_dim"], md["max_tokens"], md["license"]) == (8, 16, "mit")


@pytest.mark.parametrize(
    "params, words",
    [
        ("{model_name_or_path: ./nowhere}", ["model folder", "nowhere", "does not exist"]),
        ("{model_name_or_path: 'no such thing'}", ["neither a folder nor a Hugging Face hub id"]),
        ("{model_name_or_path: ./tiny, max_seq_length: 65}", ["larger than the model's 64"]),
        ("{model_name_or_path: ./tiny, max_seq_length: 0}", ["max_seq_length must be", ">= 1"]),
        ("{model_name_or_path: ./tiny, normalize: 'yes'}", ["normalize must be true or false"]),
        ("{model_name_or_path: ./tiny, prompts: [a]}", ["prompts must map"]),
        ("{model_name_or_path: ./tiny, revision: main}", ["revision applies to hub ids"]),
        ("{model_name_or_path: ./tiny, pooling: cls}", ["does not accept parameter(s) pooling"]),
    ],
)
def test_bad_params_are_one_line(tiny_st, tmp_path, params, words):
    (tmp_path / "tiny").symlink_to(tiny_st, target_is_directory=True)
    with pytest.raises(LamMtebError) as err:
        _load(
            tmp_path,
            f"models:\n  - name: bad\n    kind: sentence-transformers\n    params: {params}\n",
        )
    message = str(err.value)
    assert "\n" not in message and f"{tmp_path / 'r.yaml'}:2" in message, message
    for w in words:
        assert w in message, message


def test_a_folder_revision_follows_params_and_files(tiny_st, tmp_path):
    (tmp_path / "tiny").symlink_to(tiny_st, target_is_directory=True)
    reg = _load(
        tmp_path,
        "models:\n"
        "  - name: a\n    kind: sentence-transformers\n    params: {model_name_or_path: ./tiny}\n"
        "  - name: b\n    kind: sentence-transformers\n"
        "    params: {model_name_or_path: ./tiny, prompts: {query: 'q: '}}\n",
    )
    assert reg.model("a").revision != reg.model("b").revision


# -- hub ids -------------------------------------------------------------------------------------


def test_hub_revision_is_the_commit_plus_the_settings_that_change_vectors():
    def revision(**params):
        return stk.configure({"model_name_or_path": stk.MINILM_HUB_ID, **params}, lambda _: None)[
            "revision"
        ]

    commit = stk.MINILM_REVISION
    assert revision() == commit
    assert revision(max_seq_length=256, normalize=True) == commit  # the model's own settings
    short = revision(max_seq_length=128)
    prompted = revision(prompts={"query": "q: "})
    assert short.startswith(commit[:12] + "-") and prompted.startswith(commit[:12] + "-")
    assert len({short, prompted, commit}) == 3
    derived = stk.configure({"model_name_or_path": stk.MINILM_HUB_ID}, lambda _: None)
    assert derived["reference"] == f"https://huggingface.co/{stk.MINILM_HUB_ID}"


def test_an_uncached_hub_id_offline_is_one_line(tmp_path, monkeypatch, capsys, tiny_sts_data_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "r.yaml"
    path.write_text(
        "models:\n  - name: ghost\n    kind: sentence-transformers\n"
        "    params: {model_name_or_path: nobody-here/no-such-model-xyz}\n"
    )
    monkeypatch.setenv("LAM_MTEB_REGISTRY", str(path))
    plugins.host.bridge.install(force=True)
    try:
        config = plugins.get_registry().model("ghost")
        assert "embed_dim" not in config.metadata  # nothing on disk to read it from
        code = cli.main(
            [
                "run",
                "-m",
                "ghost",
                "-t",
                "STSBenchmark",
                "--data-dir",
                str(tiny_sts_data_dir),
                "--output-folder",
                str(tmp_path / "out"),
            ]
        )
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1, err
        assert "not in the Hugging Face cache and HF_HUB_OFFLINE is set" in err[0]
        assert "hf download nobody-here/no-such-model-xyz" in err[0]
    finally:
        monkeypatch.delenv("LAM_MTEB_REGISTRY")
        plugins.host.bridge.install(force=True)


# -- prompts -------------------------------------------------------------------------------------


def test_prompts_are_chosen_as_mteb_chooses_them(tiny_st):
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(str(tiny_st), device="cpu")

    def same(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    own = stk.SentenceTransformerEncoder(str(tiny_st), device="cpu")
    assert own.prompts == {"query": "query: ", "document": ""}  # 'passage' is no mteb key
    same(own.encode(TEXTS, prompt_type="query"), ref.encode(TEXTS, prompt="query: "))
    same(own.encode(TEXTS, prompt_type="document"), ref.encode(TEXTS))
    same(own.encode(TEXTS), ref.encode(TEXTS))  # STS: no prompt type, no prompt
    # a value naming one of the model's prompts stands for its text; a string is the prompt itself
    named = stk.SentenceTransformerEncoder(
        str(tiny_st), device="cpu", prompts={"document": "passage", "STSBenchmark": "sts: "}
    )
    same(named.encode(TEXTS, prompt_type="document"), ref.encode(TEXTS, prompt="passage: "))
    same(named.encode(TEXTS, task_name="STSBenchmark"), ref.encode(TEXTS, prompt="sts: "))
    same(named.encode(TEXTS, prompt_type="query"), ref.encode(TEXTS))  # replaced the model's own
    with pytest.raises(LamMtebError, match="prompt key\\(s\\) 'querry' are not mteb prompt keys"):
        stk.SentenceTransformerEncoder(str(tiny_st), device="cpu", prompts={"querry": "q: "})


def test_prompt_order_is_mtebs():
    prompts = {
        "query": "Q",
        "Retrieval": "R",
        "Retrieval-document": "RD",
        "SciFact": "S",
        "SciFact-query": "SQ",
    }
    types = {"SciFact": "Retrieval", "NFCorpus": "Retrieval", "STSBenchmark": "STS"}.get
    assert stk.choose_prompt(prompts, "SciFact", "query", types) == "SQ"
    assert stk.choose_prompt(prompts, "SciFact", "document", types) == "S"
    assert stk.choose_prompt(prompts, "NFCorpus", "document", types) == "RD"
    assert stk.choose_prompt(prompts, "NFCorpus", None, types) == "R"
    assert stk.choose_prompt(prompts, "STSBenchmark", "query", types) == "Q"
    assert stk.choose_prompt(prompts, "STSBenchmark", None, types) is None
    assert stk.choose_prompt({}, "SciFact", "query", types) is None


# -- minilm: one configuration of the kind, unchanged ---------------------------------------------


def test_minilm_vectors_are_sentence_transformers_own():
    """Same truncation (256 tokens), normalisation and batches as SentenceTransformer.encode."""
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(minilm_path(), device="cpu")
    ref.max_seq_length = 256
    texts = ["a short one", "the cat sat " * 200, "x", "Ünïcode, punctuation!"] * 3
    want = ref.encode(texts, batch_size=4, normalize_embeddings=True)
    enc = lam_mteb.get_encoder("minilm")
    assert enc.model.max_seq_length == 256 and enc.normalize
    for prompt_type in (None, "query", "document"):
        got = enc.encode(texts, batch_size=4, prompt_type=prompt_type, task_name="SciFact")
        assert got.dtype == np.float32 and np.array_equal(got, want), prompt_type


@pytest.mark.parametrize(
    "name", ["minilm", "minilm-chunk-mean", "minilm-chunk-max", "minilm-chunk-mean-lexical"]
)
def test_minilm_family_matches_its_committed_results(name):
    """The revision names the committed result folder and the ModelMeta is the one written there."""
    (folder,) = (REPO / "results" / "results").glob(f"lam-mteb__{name}/*/")
    meta = mteb.get_model_meta(name)
    assert meta.revision == folder.name
    committed = json.loads((folder / "model_meta.json").read_text())
    assert json.loads(json.dumps(meta.to_dict(), default=str)) == committed


def test_minilm_is_a_registry_entry_of_the_kind():
    reg = plugins.get_registry()
    config = reg.model("minilm")
    assert config.kind.name == "sentence-transformers" and config.kind.plugin == "minilm"
    assert config.source.startswith(f"{registry.builtin_registry_file()}:")
    # kinds whose default names minilm (chunked, lexical) are configured once registry.yaml is read
    assert reg.model("chunked").metadata["embed_dim"] == 384
    assert reg.model("lexical").metadata["embed_dim"] == 384 + 16384
    assert not [e for e in reg.errors if "minilm" in e]


class _Usurper:
    @staticmethod
    @lam_mteb.hookimpl
    def register_encoders(register):
        register("minilm", lambda: None)


def test_a_plugin_cannot_take_a_builtin_registry_name(capsys):
    plugins.host.register_plugin(_Usurper, name="usurper")
    try:
        reg = plugins.get_registry()
        assert reg.model("minilm").kind.name == "sentence-transformers"
        err = capsys.readouterr().err
        assert "'usurper'" in err and "'minilm'" in err and "already owns" in err
    finally:
        plugins.host.unregister_plugin("usurper")
