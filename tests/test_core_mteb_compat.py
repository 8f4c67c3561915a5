"""One test per mteb internal that lam_mteb.mteb_compat touches: each fails loudly when an mteb
release changes the internal (run them against other releases: scripts/check_mteb_versions.sh)."""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata

import mteb
import pytest

from lam_mteb import mteb_compat


def test_installed_mteb_is_in_the_supported_range():
    assert mteb_compat.mteb_version_supported(mteb.__version__), mteb.__version__
    assert not mteb_compat.mteb_version_supported("2.25.9")
    assert not mteb_compat.mteb_version_supported("3.0.0")


def test_model_registry_is_the_dict_get_model_meta_reads():
    meta = mteb.get_model_meta("lam-mteb/minilm")
    probe = meta.model_copy(update={"name": "lam-mteb/compat-probe"})
    mteb_compat.add_model("lam-mteb/compat-probe", probe)
    try:
        assert mteb_compat.has_model("lam-mteb/compat-probe")
        assert mteb.get_model_meta("lam-mteb/compat-probe") is probe
        assert probe in mteb.get_model_metas()
    finally:
        mteb_compat.remove_model("lam-mteb/compat-probe")
    assert not mteb_compat.has_model("lam-mteb/compat-probe")


def test_get_model_looks_names_up_through_the_wrapped_get_model_meta():
    # mteb.get_model (used by `mteb run -m`) calls the module global get_model_meta: the bare-name
    # lookup wraps exactly that global, and the public mteb.get_model_meta
    module = importlib.import_module("mteb.models.get_model_meta")
    assert "get_model_meta" in module.get_model.__code__.co_names
    assert getattr(module.get_model_meta, "__lam_mteb__", False)
    assert mteb.get_model_meta is module.get_model_meta
    assert mteb.get_model_meta("minilm").name == "lam-mteb/minilm"


def test_task_registry_and_task_list_feed_get_task_and_get_tasks(monkeypatch):
    gt = importlib.import_module("mteb.get_tasks")
    monkeypatch.setattr(gt, "_TASKS_REGISTRY", dict(gt._TASKS_REGISTRY))
    monkeypatch.setattr(gt, "TASK_LIST", tuple(gt.TASK_LIST))
    base = mteb_compat.task_class("STSBenchmark")
    assert base is not None
    probe = type(
        "CompatProbe",
        (base,),
        {"metadata": base.metadata.model_copy(update={"name": "CompatProbe"})},
    )
    mteb_compat.add_task_class(probe)
    assert mteb_compat.task_classes()["CompatProbe"] is probe
    assert isinstance(mteb.get_task("CompatProbe"), probe)
    assert [type(t) for t in mteb.get_tasks(tasks=["CompatProbe"])] == [probe]


def test_a_callback_runs_before_get_task_and_get_tasks(monkeypatch):
    gt = importlib.import_module("mteb.get_tasks")
    for name in ("get_task", "get_tasks"):  # undo the wrap after the test
        monkeypatch.setattr(gt, name, getattr(gt, name))
        monkeypatch.setattr(mteb, name, getattr(mteb, name))
        # the bridge's own wrap is there already: test a fresh one over mteb's functions
        original = inspect.unwrap(getattr(gt, name))
        monkeypatch.setattr(gt, name, original)
        monkeypatch.setattr(mteb, name, original)
    calls = []
    mteb_compat.call_before_task_lookup(lambda: calls.append(1))
    # a second install replaces the first callback (a new bridge), never wraps twice
    mteb_compat.call_before_task_lookup(lambda: calls.append(2))
    assert mteb.get_task is gt.get_task and mteb.get_tasks is gt.get_tasks
    assert gt.get_task.__wrapped__ is inspect.unwrap(gt.get_task)
    assert mteb.get_task("STSBenchmark").metadata.name == "STSBenchmark"
    assert [t.metadata.name for t in mteb.get_tasks(tasks=["STSBenchmark"])] == ["STSBenchmark"]
    assert calls and set(calls) == {2}


def test_result_cache_methods_are_wrapped_with_the_signatures_the_bridge_uses():
    from mteb.cache import ResultCache
    from mteb.results import TaskResult

    # the bridge installed the wrappers; they keep mteb's signatures (functools.wraps)
    for method in (ResultCache.load_task_result, ResultCache.save_to_cache, TaskResult.to_disk):
        assert getattr(method, "__lam_mteb__", False), method
    params = list(inspect.signature(inspect.unwrap(ResultCache.load_task_result)).parameters)
    assert params[:4] == ["self", "task_name", "model_name", "model_revision"]
    params = list(inspect.signature(inspect.unwrap(ResultCache.save_to_cache)).parameters)
    assert params[:3] == ["self", "task_result", "model_name"]
    assert list(inspect.signature(inspect.unwrap(TaskResult.to_disk)).parameters) == [
        "self",
        "path",
    ]
    assert callable(ResultCache.get_task_result_path)  # named in the corrupt-file message


def test_abstask_load_data_can_be_wrapped_per_class():
    from mteb.abstasks import AbsTask

    assert "num_proc" in inspect.signature(AbsTask.load_data).parameters
    base = mteb_compat.task_class("STSBenchmark")
    calls = []

    class Probe(base):  # type: ignore[misc, valid-type]
        def load_data(self, *args, **kwargs):
            calls.append("original")

    def wrapper(original):
        def load_data(self, *args, **kwargs):
            calls.append("wrapper")
            return original(self, *args, **kwargs)

        return load_data

    mteb_compat.wrap_load_data(Probe, wrapper)
    mteb_compat.wrap_load_data(Probe, wrapper)  # once per class
    Probe().load_data()
    assert calls == ["wrapper", "original"]


def test_the_mteb_console_script_is_the_wrapped_cli_main():
    import mteb.cli

    (script,) = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "mteb"]
    assert script.value == "mteb.cli:main"
    assert getattr(mteb.cli.main, "__lam_mteb__", False)


def test_unknown_names_raise_a_not_found_key_error():
    with pytest.raises(KeyError) as model_error:
        mteb.get_model_meta("no-such-model-compat-probe")
    assert "no-such-model-compat-probe" in mteb_compat.is_not_found_error(model_error.value)
    with pytest.raises(KeyError) as task_error:
        mteb.get_task("NoSuchTaskCompatProbe")
    message = mteb_compat.is_not_found_error(task_error.value)
    assert message is not None and message.startswith("'NoSuchTaskCompatProbe' not found")


def test_create_dataloader_batches_texts():
    from datasets import Dataset
    from mteb.types import PromptType

    ds = Dataset.from_list([{"id": str(i), "text": f"text {i}"} for i in range(5)])
    meta = mteb_compat.task_class("STSBenchmark").metadata
    batches = list(
        mteb_compat.create_dataloader(
            ds, task_metadata=meta, prompt_type=PromptType.document, batch_size=2
        )
    )
    assert [t for b in batches for t in b["text"]] == [f"text {i}" for i in range(5)]
