"""registry.yaml validation: every mistake is one error naming file:line."""

import textwrap

import pytest

from lam_mteb import plugins, registry
from lam_mteb.errors import LamMtebError


def _write(tmp_path, text):
    path = tmp_path / "registry.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def reg(mock_plugin):
    return plugins.get_registry()


def test_plugin_encoder_is_a_kind_and_a_model(reg):
    assert "mock-hash" in reg.kinds
    cfg = reg.model("mock-hash")
    assert cfg.full_name == "lam-mteb/mock-hash"
    assert reg.model("lam-mteb/mock-hash") is cfg
    assert cfg.params == {"dim": 64} and cfg.embed_dim == 64
    assert cfg.create().encode(["a b"]).shape == (1, 64)


def test_valid_file_adds_configurations(tmp_path, reg):
    path = _write(
        tmp_path,
        """
        models:
          - name: hash-32
            kind: mock-hash
            description: smaller
            params: {dim: 32}
            metadata: {embed_dim: 32}
    """,
    )
    registry.load_registry_file(path, reg)
    cfg = reg.model("hash-32")
    assert cfg.params == {"dim": 32} and cfg.embed_dim == 32
    assert cfg.source == f"{path}:3"
    assert cfg.create().encode(["x"]).shape == (1, 32)
    assert cfg.revision != reg.model("mock-hash").revision  # params change -> revision changes


@pytest.mark.parametrize(
    "body, line, words",
    [
        (
            "models:\n  - name: a\n    kind: mock-hash\n    colour: red\n",
            4,  # the line of the unknown key itself
            ["unknown key", "colour"],
        ),
        ("models:\n  - name: a\n", 2, ["'kind' is missing"]),
        (
            "models:\n  - name: a\n    kind: mock-hsh\n",
            2,
            ["unknown encoder kind", "did you mean 'mock-hash'"],
        ),
        (
            "models:\n  - name: a\n    kind: mock-hash\n  - name: a\n    kind: mock-hash\n",
            4,
            ["duplicate model name 'a'"],
        ),
        (
            "models:\n  - name: mock-hash\n    kind: mock-hash\n",
            2,
            ["duplicate model name 'mock-hash'", "plugin"],
        ),
        (
            "models:\n  - name: a\n    kind: mock-hash\n    params: {size: 3}\n",
            2,
            ["does not accept", "size"],
        ),
        (
            "models:\n  - name: a\n    kind: mock-hash\n    metadata: {colour: 1}\n",
            4,
            ["unknown metadata key"],
        ),
        ("models:\n  - name: a\n    kind: [oops\n", 4, ["invalid YAML"]),
        ("models:\n  - name: a\n    name: b\n    kind: mock-hash\n", 3, ["duplicate key 'name'"]),
        ("modles: []\n", 1, ["unknown key", "modles"]),
        (  # metadata values are checked by mteb's ModelMeta, at the line of the key
            "models:\n  - name: a\n    kind: mock-hash\n    metadata:\n      embed_dim: wide\n",
            5,
            ["invalid metadata embed_dim", "valid integer", "'wide'"],
        ),
        (
            "models:\n  - name: a\n    kind: mock-hash\n    metadata: {languages: [english]}\n",
            4,
            ["invalid metadata languages", "Invalid language code: english"],
        ),
        (
            "models:\n  - name: a\n    kind: mock-hash\n    override: 'yes'\n",
            4,
            ["valid boolean", "override"],
        ),
        ("- name: a\n  kind: mock-hash\n", 1, ["expected a mapping", "top level"]),
    ],
)
def test_errors_name_file_and_line(tmp_path, reg, body, line, words):
    path = tmp_path / "registry.yaml"
    path.write_text(body)
    with pytest.raises(LamMtebError) as err:
        registry.load_registry_file(path, reg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    for w in words:
        assert w in message, message
    reported_line = int(message[len(str(path)) + 1 :].split(":")[0])
    assert abs(reported_line - line) <= 1, message


def test_metadata_is_what_mtebs_model_meta_takes(tmp_path, reg):
    """Every ModelMeta field lam-mteb does not set itself is metadata; it reaches mteb's record."""
    from mteb.models.model_meta import ModelMeta

    assert registry.metadata_keys() == set(ModelMeta.model_fields) - {
        "loader",
        "loader_kwargs",
        "name",
        "revision",
    }
    path = _write(
        tmp_path,
        """
        models:
          - name: hash-c
            kind: mock-hash
            metadata: {contacts: [someone], training_datasets: [STSBenchmark], license: mit}
    """,
    )
    registry.load_registry_file(path, reg)
    meta = reg.model("hash-c").model_meta(loader=None)
    assert isinstance(meta, ModelMeta) and meta.name == "lam-mteb/hash-c"
    assert meta.contacts == ["someone"] and meta.training_datasets == {"STSBenchmark"}
    assert meta.embed_dim == 64 and meta.max_tokens == 128  # the kind's, from register()
    assert meta.framework == ["PyTorch"] and meta.similarity_fn_name == "cosine"  # defaults


def test_register_checks_metadata_through_model_meta():
    from tests.conftest import HashEncoder

    stage = registry._EncoderStage("p", "0")
    with pytest.raises(TypeError, match="register\\('x'\\): unknown metadata key\\(s\\) 'colour'"):
        stage("x", HashEncoder, colour="red")
    with pytest.raises(TypeError, match="register\\('x'\\): invalid metadata embed_dim"):
        stage("x", HashEncoder, embed_dim="wide")
    stage("x", HashEncoder, embed_dim=8, params={"dim": 8}, superseded_by="lam-mteb/y")
    assert stage.staged[0].metadata == {"embed_dim": 8, "superseded_by": "lam-mteb/y"}


def test_relative_paths_resolve_against_the_file(tmp_path, reg):
    (tmp_path / "w").mkdir()
    path = _write(
        tmp_path,
        """
        models:
          - name: hash-w
            kind: mock-hash
            params: {dim: 16}
    """,
    )
    registry.load_registry_file(path, reg)
    assert registry._resolve_paths({"weights": "./w"}, tmp_path) == {
        "weights": str((tmp_path / "w").resolve())
    }


def test_user_registry_via_env(tmp_path, monkeypatch, mock_plugin):
    path = _write(
        tmp_path, "models:\n  - name: env-hash\n    kind: mock-hash\n    params: {dim: 8}\n"
    )
    monkeypatch.setenv("LAM_MTEB_REGISTRY", str(path))
    plugins.host.invalidate()
    assert plugins.get_registry().model("env-hash").params["dim"] == 8
    # drop the variable before the cache: the mock plugin's teardown may rebuild the registry, and
    # a registry built with this file but without the plugin would be cached with an error
    monkeypatch.delenv("LAM_MTEB_REGISTRY")
    plugins.host.invalidate()


def test_unknown_model_suggests_close_names(reg):
    with pytest.raises(LamMtebError, match="did you mean 'mock-hash'"):
        reg.model("mock-hsh")


def test_builtin_registry_file_is_valid():
    plugins.host.invalidate()  # built from the shipped files alone, whatever ran before
    reg = plugins.get_registry()
    assert not reg.errors, reg.errors
    assert "minilm" in reg.models


def test_a_factory_breaking_the_contract_is_one_error_naming_the_plugin():
    from lam_mteb import hookimpl

    class BrokenFactories:
        @staticmethod
        @hookimpl
        def register_encoders(register):
            register("returns-none", lambda: None)
            register("returns-class", lambda: dict)
            register("no-encode", lambda: object())

    plugins.host.register_plugin(BrokenFactories, name="broken-factories")
    try:
        reg = plugins.get_registry()
        for name, words in [
            ("returns-none", "the factory returned None"),
            ("returns-class", "the factory returned the class dict, not an instance"),
            ("no-encode", "builtins.object has no encode(texts) method"),
        ]:
            with pytest.raises(LamMtebError) as err:
                reg.model(name).create()
            assert str(err.value).startswith(
                f"model {name!r} (kind {name!r} of plugin 'broken-factories'): {words}"
            ), str(err.value)
        assert reg.model("returns-none").build() is None  # build() does not check (lam-mteb check)
    finally:
        plugins.host.unregister_plugin("broken-factories")
