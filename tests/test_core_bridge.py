"""The bridge into mteb: models under bare and full names, tasks, offline data, results layout."""

import os
import subprocess
import sys

import mteb
import numpy as np
import pytest
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.cache import ResultCache

import lam_mteb
from lam_mteb import bridge, mteb_compat, plugins, registry
from lam_mteb.errors import LamMtebError


def test_supported_mteb_version_is_pinned():
    assert bridge.mteb_version_supported(mteb.__version__)
    assert not bridge.mteb_version_supported("2.25.9")
    assert not bridge.mteb_version_supported("3.0.0")
    assert bridge.mteb_version_supported("2.26.24")


def test_unsupported_mteb_version_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(mteb, "__version__", "1.38.0")
    with pytest.raises(LamMtebError, match=r"mteb 1.38.0 is not supported .*pip install"):
        bridge.check_mteb_version()


def test_builtin_minilm_visible_after_plain_import_mteb():
    # the start-up hook (.pth) registered it when `import mteb` completed
    assert mteb.get_model_meta("minilm") is mteb_compat._model_registry()["lam-mteb/minilm"]
    meta = mteb.get_model_meta("minilm")
    assert meta.name == "lam-mteb/minilm" and meta.embed_dim == 384 and meta.max_tokens == 256


def test_each_model_is_listed_once_under_its_full_name():
    names = [meta.name for meta in mteb.get_model_metas()]
    assert names.count("lam-mteb/lam-state") == 1
    assert (
        "lam-state" not in mteb_compat.model_names() and "minilm" not in mteb_compat.model_names()
    )
    assert mteb.get_model_meta("lam-state") is mteb.get_model_meta("lam-mteb/lam-state")


def test_mock_plugin_model_loads_through_mteb(mock_plugin):
    model = mteb.get_model("mock-hash")
    assert model.mteb_model_meta.name == "lam-mteb/mock-hash"
    assert isinstance(model.encoder, mock_plugin.register_encoders.__globals__["HashEncoder"])
    assert (
        mteb.get_model_meta("lam-mteb/mock-hash").revision
        == plugins.get_registry().model("mock-hash").revision
    )


def test_unregistering_removes_the_model(mock_plugin):
    plugins.host.unregister_plugin("mock-plugin")
    plugins.host.bridge.install(force=True)
    assert not {"mock-hash", "lam-mteb/mock-hash"} & set(mteb_compat.model_names())
    with pytest.raises(KeyError):
        mteb.get_model_meta("mock-hash")
    plugins.host.register_plugin(
        mock_plugin, name="mock-plugin"
    )  # fixture teardown unregisters again


def test_evaluate_sts_offline_writes_mteb_results(
    mock_plugin, tiny_sts_data_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tiny_sts_data_dir))
    model = mteb.get_model("mock-hash")
    task = mteb.get_task("STSBenchmark")
    cache = ResultCache(tmp_path / "out")
    results = mteb.evaluate(model, [task], cache=cache, show_progress_bar=False)
    score = results.task_results[0].scores["test"][0]["cosine_spearman"]
    assert 0.5 < score <= 1.0  # lexical overlap drives the generated scores
    rev = plugins.get_registry().model("mock-hash").revision
    path = tmp_path / "out" / "results" / "lam-mteb__mock-hash" / rev / "STSBenchmark.json"
    assert path.is_file()
    loaded = ResultCache(tmp_path / "out").load_results(
        models=["lam-mteb/mock-hash"], tasks=["STSBenchmark"]
    )
    assert loaded.model_results[0].task_results[0].get_score() == pytest.approx(score)
    # the task metadata is restored after loading from the local copy
    assert task.metadata.dataset["path"] == "mteb/stsbenchmark-sts"


def test_revision_changes_with_params(mock_plugin, tmp_path):
    reg = plugins.get_registry()
    (tmp_path / "r.yaml").write_text(
        "models:\n  - name: h16\n    kind: mock-hash\n    params: {dim: 16}\n"
    )
    registry.load_registry_file(tmp_path / "r.yaml", reg)
    assert reg.model("h16").revision != reg.model("mock-hash").revision


class ToySTS(AbsTaskSTS):
    min_score, max_score = 0, 5
    metadata = TaskMetadata(
        name="LamMtebToySTS",
        dataset={"path": "lam-mteb-test/toy-sts", "revision": "1"},
        description="toy STS task registered by a test plugin",
        reference=None,
        type="STS",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="cosine_spearman",
        date=("2020-01-01", "2020-12-31"),
        domains=["Written"],
        task_subtypes=[],
        license="mit",
        annotations_creators="derived",
        dialect=[],
        sample_creation="created",
        bibtex_citation="",
    )


class TaskPlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_tasks(register):
        register(ToySTS)

    @staticmethod
    @lam_mteb.hookimpl
    def register_datasets(register):
        def build(source, target):
            """toy builder reading toy/"""
            from tests.conftest import make_sts_rows

            if not (source / "toy").is_dir():
                raise lam_mteb.DataNotFound(f"looked for {source / 'toy'}")
            lam_mteb.data.write_hf_dataset(target, {"default": {"test": make_sts_rows(40, 5)}})

        register(
            "lam-mteb-test/toy-sts", build, description="toy raw layout (toy/)", recreation=True
        )


@pytest.fixture
def task_plugin():
    import lam_mteb.data  # noqa: F401  (exposes lam_mteb.data for the builder)

    plugins.host.register_plugin(TaskPlugin, name="task-plugin")
    plugins.host.bridge.install(force=True)
    yield
    plugins.host.unregister_plugin("task-plugin")
    plugins.host.bridge.install(force=True)


def test_plugin_task_is_visible_to_mteb_and_built_offline(
    task_plugin, mock_plugin, tmp_path, monkeypatch, capsys
):
    assert "LamMtebToySTS" in [
        t.metadata.name for t in mteb.get_tasks(task_types=["STS"], languages=["eng"])
    ]
    task = mteb.get_task("LamMtebToySTS")
    (tmp_path / "data" / "toy").mkdir(parents=True)
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tmp_path / "data"))
    res = mteb.evaluate(mteb.get_model("mock-hash"), [task], cache=None, show_progress_bar=False)
    assert res.task_results[0].get_score() > 0.5
    assert task.lam_mteb_data["recreation"] is True
    # the result says it was computed on re-created data
    assert res.task_results[0].dataset_revision.startswith(bridge.RECREATION_PREFIX)
    assert "built local copy of lam-mteb-test/toy-sts" in capsys.readouterr().err


def test_missing_local_copy_says_what_it_looked_for(task_plugin, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tmp_path / "empty"))
    task = mteb.get_task("LamMtebToySTS")
    # offline, mteb's own hub loading fails afterwards; which error depends on the datasets version
    with pytest.raises(Exception):  # noqa: B017
        task.load_data()
    err = capsys.readouterr().err
    assert "no local copy of lam-mteb-test/toy-sts" in err
    assert (
        str(tmp_path / "empty" / "lam-mteb-test" / "toy-sts") in err
        and str(tmp_path / "empty" / "toy") in err
    )
    assert "using mteb's own loading" in err


def test_plugin_model_rejects_bad_embeddings(mock_plugin):
    model = mteb.get_model("mock-hash")
    model.encoder.encode = lambda texts, **kw: np.full((len(texts), 4), np.nan, dtype=np.float32)
    loader = [{"text": ["a", "b"]}]
    with pytest.raises(LamMtebError, match="NaN"):
        model.encode(loader, task_metadata=ToySTS.metadata, hf_split="test", hf_subset="default")


def test_query_and_document_encoders_are_used_for_retrieval(mock_plugin):
    model = mteb.get_model("mock-hash")
    seen = []
    model.encoder.encode_queries = lambda texts, **kw: (
        seen.append("q") or np.ones((len(texts), 64), np.float32)
    )
    model.encoder.encode_documents = lambda texts, **kw: (
        seen.append("d") or np.ones((len(texts), 64), np.float32)
    )
    from mteb.types import PromptType

    for pt in (PromptType.query, PromptType.document, None):
        model.encode(
            [{"text": ["x"]}],
            task_metadata=ToySTS.metadata,
            hf_split="test",
            hf_subset="default",
            prompt_type=pt,
        )
    assert seen == ["q", "d"]
    # HashEncoder.encode takes **kwargs, so it is told the prompt type and the task
    assert model.encoder.calls[-1][2] == {"prompt_type": None, "task_name": "LamMtebToySTS"}


def test_strict_encode_signature_gets_only_what_it_accepts(mock_plugin):
    model = mteb.get_model("mock-hash")
    got = {}

    def encode(texts, batch_size=32):
        got["batch_size"] = batch_size
        return np.ones((len(texts), 3), np.float32)

    model.encoder.encode = encode
    out = model.encode(
        [{"text": ["x", "y"]}],
        task_metadata=ToySTS.metadata,
        hf_split="test",
        hf_subset="default",
        batch_size=7,
    )
    assert out.shape == (2, 3) and got == {"batch_size": 7}


def test_only_plugin_tasks_and_provided_datasets_get_offline_loading():
    from mteb.abstasks import AbsTask

    def wrapped(name):
        return getattr(mteb_compat.task_class(name).load_data, "__lam_mteb_offline__", False)

    assert not getattr(AbsTask.load_data, "__lam_mteb_offline__", False)  # no task type is patched
    assert wrapped("STSBenchmark") and wrapped("SciFact")  # the core builders provide their data
    assert not wrapped("Banking77Classification")  # no builder, no local copy: mteb's own loading
    assert (
        plugins.get_registry().tasks["LVMNextVector"].self_loading
    )  # register(..., self_loading=True)
    assert not wrapped("LVMNextVector")


class SelfLoadingSTS(ToySTS):
    metadata = ToySTS.metadata.model_copy(update={"name": "LamMtebSelfLoadingSTS"})


class LegacySelfLoadingSTS(ToySTS):
    metadata = ToySTS.metadata.model_copy(update={"name": "LamMtebLegacySelfLoadingSTS"})
    lam_mteb_self_loading = True


class SelfLoadingPlugin:
    @staticmethod
    @lam_mteb.hookimpl
    def register_tasks(register):
        register(SelfLoadingSTS, self_loading=True)
        register(LegacySelfLoadingSTS)  # the deprecated class attribute still works


def test_self_loading_is_an_argument_of_register():
    plugins.host.register_plugin(SelfLoadingPlugin, name="self-loading-plugin")
    try:
        with pytest.warns(DeprecationWarning, match="lam_mteb_self_loading is deprecated"):
            plugins.host.bridge.install(force=True)
        tasks = plugins.get_registry().tasks
        assert (
            tasks["LamMtebSelfLoadingSTS"].self_loading
            and tasks["LamMtebLegacySelfLoadingSTS"].self_loading
        )
        assert plugins.host.bridge.is_self_loading(mteb.get_task("LamMtebSelfLoadingSTS"))
        assert "load_data" not in SelfLoadingSTS.__dict__  # left alone
        assert plugins.host.bridge.expected_dataset_revision("LamMtebSelfLoadingSTS") is None
    finally:
        plugins.host.unregister_plugin("self-loading-plugin")
        plugins.host.bridge.install(force=True)


def test_a_plugin_task_module_imported_before_mteb_is_still_registered():
    """``from plugin.tasks import MyTask`` before ``import mteb``: importing mteb runs the bridge
    while that module is half imported, so its plugin's register_tasks cannot import the class
    yet; the registration completes at the first task lookup, with no error printed."""
    code = (
        "import lam_mteb_plugins.lvm.task as t, mteb; "
        "print(type(mteb.get_task('LVMNextVector')) is t.LVMNextVector)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"
    assert "failed" not in res.stderr, res.stderr


def test_waiting_registration_survives_task_lookups_inside_hooks(tmp_path):
    """The half-imported task module and the plugin's own hook both call mteb.get_task while the
    registration is waiting: the completion runs once at a time and the task is found."""
    (tmp_path / "wait_tasks.py").write_text(
        "import mteb\n"
        "Base = type(mteb.get_task('STSBenchmark'))\n"
        "class WaitTask(Base):\n"
        "    metadata = Base.metadata.model_copy(update={'name': 'WaitTask'})\n"
    )
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "wait_plugin.py").write_text(
        "import lam_mteb\n"
        "import mteb\n"
        "@lam_mteb.hookimpl\n"
        "def register_tasks(register):\n"
        "    mteb.get_task('STSBenchmark')\n"
        "    from wait_tasks import WaitTask\n"
        "    register(WaitTask)\n"
    )
    code = "import wait_tasks, mteb; print(type(mteb.get_task('WaitTask')).__name__)"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(tmp_path),
        "LAM_MTEB_PLUGINS_DIR": str(plugins_dir),
    }
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "WaitTask"
    assert "failed" not in res.stderr, res.stderr
