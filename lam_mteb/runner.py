"""Grids of (model, task) pairs: in this process, a local process pool, Ray tasks, or a shard of
them.

``lam-mteb run -m M1 M2 -t T1 T2`` expands the pairs and reads the output folder as mteb's
``ResultCache`` (mteb's layout; the bridge's wrap of ``load_task_result`` drops a result that cannot
be read, was computed on other data, or has a non-finite score); the pairs that mteb's overwrite
strategy would run are evaluated with ``mteb.evaluate``:

- ``--executor local --jobs 1`` (default): one after another in this process, each model loaded
  once for all its tasks;
- ``--executor local --jobs N``: N ``spawn``-ed worker processes; a crash or an out-of-memory kill
  fails the pair that worker was running, and a fresh process takes its place;
- ``--executor ray``: one Ray task per pair on the cluster at ``--address`` / ``RAY_ADDRESS``, else
  on a local Ray started for the run.  Workers need lam-mteb installed; plugins load there through
  the normal bridge.

Workers return their ``TaskResult``; only this (driving) process writes the output folder (with
``ResultCache.save_to_cache``), so no shared file system is needed and concurrent pairs of one
model never race on ``run_settings.jsonl``.  ``--shard i/N`` keeps every N-th pair
(``pairs[i::N]``) so a scheduler without Ray (a SLURM array) can split the grid.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lam_mteb.errors import LamMtebError, one_line

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnContext

    from mteb.abstasks import AbsTask
    from mteb.cache import ResultCache
    from mteb.models.model_meta import ModelMeta
    from mteb.results import TaskResult

    from lam_mteb.plugins import PluginHost

RAY_INSTALL_HINT = (
    "--executor ray needs Ray: pip install 'lam-mteb[ray]' (or pip install 'ray[data]>=2.9')"
)

#: environment variables a worker gets from the driver (data dir, plugins, registry, offline mode,
#: caches)
FORWARDED_ENV_PREFIXES = (
    "LAM_MTEB_",
    "HF_",
    "TRANSFORMERS_",
    "SENTENCE_TRANSFORMERS_",
    "MTEB_",
    "TOKENIZERS_",
)


@dataclass(frozen=True)
class Pair:
    """One (model, task) cell of a grid; ``eval_splits`` / ``hf_subsets`` as the task was
    selected."""

    model: str  # a name mteb.get_model_meta knows (lam-mteb bare or full name, or an mteb model)
    task: str
    eval_splits: tuple[str, ...] | None = None
    hf_subsets: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return f"{self.model} × {self.task}"


@dataclass
class PairOutcome:
    pair: Pair
    status: str  # "done", "cached", "failed", "missing" (only-cache), "exists" (never overwrite)
    main_score: float | None = None
    seconds: float | None = None
    worker: str = "-"
    error: str | None = None
    splits: tuple[str, ...] = ()
    log: str | None = None
    result: dict | None = field(default=None, repr=False)
    user_error: bool = False  # failed on bad input (a LamMtebError): its one line says what to do

    @property
    def ok(self) -> bool:
        return self.status in ("done", "cached", "exists")


# -- grid ----------------------------------------------------------------------------------------


def expand(models: Iterable[str], tasks: Iterable[Any]) -> list[Pair]:
    """Model-major grid of pairs (a model's tasks are adjacent: the in-process executor loads it
    once)."""
    specs: list[tuple[str, tuple[str, ...] | None, tuple[str, ...] | None]] = [
        (t, None, None)
        if isinstance(t, str)
        else (t.metadata.name, tuple(t.eval_splits), tuple(t.hf_subsets))
        for t in tasks
    ]
    # dict.fromkeys: each pair once, in grid order
    return list(dict.fromkeys(Pair(model, *spec) for model in models for spec in specs))


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise LamMtebError(
            f"--shard {text!r}: give i/N with integers, e.g. --shard 0/4 "
            "(SLURM: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
        ) from None
    if n < 1 or not 0 <= i < n:
        raise LamMtebError(f"--shard {text!r}: need N >= 1 and 0 <= i < N")
    return i, n


def shard(pairs: list[Pair], index: int, count: int) -> list[Pair]:
    """Every ``count``-th pair starting at ``index``: shards 0..count-1 cover the grid exactly
    once."""
    return pairs[index::count]


# -- what is already done ------------------------------------------------------------------------


def task_object(pair: Pair) -> AbsTask:
    import mteb

    kwargs: dict[str, Any] = {}
    if pair.eval_splits is not None:
        kwargs["eval_splits"] = list(pair.eval_splits)
    if pair.hf_subsets is not None:
        kwargs["hf_subsets"] = list(pair.hf_subsets)
    return mteb.get_task(pair.task, **kwargs)


def cached_result(
    cache: ResultCache, meta: ModelMeta, task: AbsTask
) -> tuple[TaskResult | None, bool]:
    """The pair's stored result as ``mteb.evaluate`` sees it, and whether it covers every split and
    subset asked for.

    Read with ``ResultCache.load_task_result``, which the bridge wraps: a file that cannot be read,
    one computed on other data than the task would load now, or one with a non-finite main score
    is None (with one line saying why), exactly as for ``mteb run``."""
    stored = cache.load_task_result(task.metadata.name, meta)
    try:
        return stored, stored is not None and not stored.get_missing_evaluations(task)
    except Exception:  # noqa: BLE001 - a malformed file counts as missing
        return None, False


def main_score(result: TaskResult | None, splits: Iterable[str] | None = None) -> float | None:
    """The result's main score over ``splits`` (those it has), or None without one."""
    if result is None:
        return None
    try:
        keys = [s for s in (splits or result.scores) if s in result.scores] or None
        return float(result.get_score(splits=keys))
    except Exception:  # noqa: BLE001 - a score-less result shows no score
        return None


def save_result(
    cache: ResultCache, meta: ModelMeta, new_result: TaskResult, encode_kwargs: dict
) -> Path:
    """Save ``new_result`` with mteb's ``ResultCache.save_to_cache``, merged with a stored result of
    the same dataset revision (splits run earlier are kept); a stored file that cannot be merged
    (unreadable, or for another dataset revision) is renamed ``<Task>.json.<reason>-<time>``, never
    overwritten.

    Under a file lock in the revision folder, so shards of one model (a SLURM array writing one
    shared folder) never interleave ``run_settings.jsonl`` or a result file.
    """
    from filelock import FileLock
    from mteb.results import TaskResult

    path = cache.get_task_result_path(new_result.task_name, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.parent / ".lam-mteb.lock"), timeout=600):
        if path.is_file():
            try:
                stored = TaskResult.from_disk(path)
                mergeable = stored.is_mergeable(new_result)
                reason = f"dataset-{stored.dataset_revision}"
            except Exception:  # noqa: BLE001 - unreadable in any way: kept aside, not merged
                mergeable, reason = False, "corrupt"
            if mergeable:
                new_result = stored.merge(new_result)
            else:
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in reason)[:60]
                aside = path.with_name(f"{path.name}.{safe}-{time.strftime('%Y%m%dT%H%M%S')}")
                os.replace(path, aside)
                sys.stderr.write(
                    f"lam-mteb: kept the previous {path.name} ({reason.split('-', 1)[0]}) as "
                    f"{aside}\n"
                )
        cache.save_to_cache(new_result, meta, encode_kwargs=encode_kwargs)
    return path


# -- the worker ----------------------------------------------------------------------------------


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


def _load_model(host: PluginHost, name: str, device: str | None, reuse: bool) -> Any:
    """The pair's model; with ``reuse``, the one this process's host loaded last if it is the
    same (one model at a time in a process)."""
    import mteb

    key = (name, device)
    if reuse and host.loaded_model is not None and host.loaded_model[0] == key:
        return host.loaded_model[1]
    host.loaded_model = None
    model = mteb.get_model(name, device=device) if device else mteb.get_model(name)
    if reuse:
        host.loaded_model = (key, model)
    return model


def _evaluate_job(job: dict) -> dict:
    """mteb's evaluation of one pair (after the job's threads, logging and plugins are set up);
    the first task result as a dict.  Raises on any failure."""
    if job.get("threads"):
        import torch

        torch.set_num_threads(int(job["threads"]))
    import logging

    import mteb

    from lam_mteb import bridge
    from lam_mteb.plugins import host  # a worker's entry point: its process's plugin host

    host.bridge.install()
    logging.getLogger("mteb").setLevel(
        logging.WARNING if job.get("verbosity", 1) < 2 else logging.INFO
    )
    pair = Pair(job["model"], job["task"], job.get("eval_splits"), job.get("hf_subsets"))
    task = task_object(pair)
    model = _load_model(host, pair.model, job.get("device"), bool(job.get("reuse_model")))
    encode_kwargs: Any = dict(job.get("encode_kwargs") or {})  # mteb's EncodeKwargs TypedDict
    results = mteb.evaluate(
        model,
        task,
        cache=None,
        encode_kwargs=encode_kwargs,
        show_progress_bar=bool(job.get("show_progress_bar")),
        raise_error=True,
    )
    if not results.task_results:
        raise LamMtebError(f"mteb returned no result for {pair.label}")
    bridge.check_finite_scores(results.task_results[0], pair.model)  # a NaN is never stored
    return results.task_results[0].to_dict()


def run_pair(job: dict) -> dict:
    """Evaluate one pair; never raises.  ``job``: pair fields, device, encode_kwargs, env,
    reuse_model."""
    os.environ.update(job.get("env") or {})  # a Ray worker on another node: the driver's settings
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        result = _evaluate_job(job)
        return {"ok": True, "result": result, "worker": worker, "seconds": time.perf_counter() - t0}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        reply: dict[str, Any] = {"ok": False, "error": one_line(exc)}
        if isinstance(exc, LamMtebError):  # bad input: its one line says it all, no traceback
            reply["user_error"] = True
        else:
            reply["traceback"] = traceback.format_exc()
        return {**reply, "worker": worker, "seconds": time.perf_counter() - t0}


def _worker_loop(conn: Connection) -> None:
    """A spawned worker process: pairs in, replies out, until None."""
    try:
        while True:
            job = conn.recv()
            if job is None:
                break
            conn.send(run_pair({**job, "reuse_model": True}))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        conn.close()


# -- executors: each yields (job, reply) as pairs finish -----------------------------------------


def run_in_process(jobs: list[dict]) -> Iterator[tuple[dict, dict]]:
    for job in jobs:
        yield job, run_pair({**job, "reuse_model": True, "env": {}})
    from lam_mteb.plugins import host  # the process's host holds the last model

    host.loaded_model = None


def _start_worker(ctx: SpawnContext, number: int) -> list:
    """A spawned worker process as ``[process, connection, last model]``."""
    here, there = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_worker_loop, args=(there,), name=f"lam-mteb-worker-{number}")
    proc.start()
    there.close()
    return [proc, here, None]


def _died(worker: list) -> dict:
    """The failed reply for the pair of a worker process that died."""
    proc = worker[0]
    proc.join(5)
    code = proc.exitcode
    why = " (killed: out of memory?)" if code in (-9, 137) else ""
    return {
        "ok": False,
        "error": f"worker process died with exit code {code}{why}",
        "worker": f"{socket.gethostname()}:{proc.pid}",
        "seconds": None,
    }


def _stop_worker(worker: list) -> None:
    proc, conn = worker[0], worker[1]
    with contextlib.suppress(OSError):  # BrokenPipeError included: the worker is gone
        conn.send(None)
    proc.join(10)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    conn.close()


def run_process_pool(jobs: list[dict], workers: int) -> Iterator[tuple[dict, dict]]:
    """Pairs on ``workers`` spawned processes; a process that dies fails its own pair only.

    Not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies (OOM kill,
    segfault) the whole pool breaks and every pending pair fails.  Here a dead worker's pair is
    reported failed and a fresh process takes its place.  A worker keeps its last model loaded and
    prefers pending pairs of that model, so (as in-process) a model is loaded about once per worker.
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    pending = list(jobs)
    idle: list[list] = []  # [process, conn, last model]
    busy: dict[Any, tuple[list, dict]] = {}  # conn -> (worker, job)
    n_started = 0
    try:
        while pending or busy:
            while pending and (idle or len(busy) < workers):
                if idle:
                    worker = idle.pop()
                else:
                    worker, n_started = _start_worker(ctx, n_started), n_started + 1
                job = next((j for j in pending if j["model"] == worker[2]), pending[0])
                pending.remove(job)
                try:
                    worker[1].send(job)
                except (BrokenPipeError, OSError):
                    yield job, _died(worker)
                    continue
                worker[2] = job["model"]
                busy[worker[1]] = (worker, job)
            ready = cast("list[Connection]", wait(list(busy)))  # busy is keyed by connections
            for conn in ready:
                worker, job = busy.pop(conn)
                try:
                    reply = conn.recv()
                except (EOFError, OSError):  # the process died mid-pair
                    conn.close()
                    yield job, _died(worker)
                    continue
                idle.append(worker)
                yield job, reply
    finally:
        for worker in idle + [w for w, _ in busy.values()]:
            _stop_worker(worker)


def import_ray() -> Any:
    """The ``ray`` module, or one LamMtebError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise LamMtebError(RAY_INSTALL_HINT) from None
    return ray


def init_ray(address: str | None, num_cpus: int | None = None) -> tuple[Any, bool]:
    """Connect to ``address`` / ``RAY_ADDRESS``, or start a local Ray for this run. Returns (ray,
    started)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": True,
        "logging_level": "WARNING",
    }
    if address:
        kwargs["address"] = address
    elif num_cpus:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises many types; one line
        raise LamMtebError(
            f"could not start or reach Ray{f' at {address}' if address else ''}: {one_line(exc)}"
        ) from None
    return ray, True


def run_ray(
    jobs: list[dict], address: str | None, cpus_per_job: float, gpus_per_job: float
) -> Iterator[tuple[dict, dict]]:
    ray, started = init_ray(address)
    try:
        total = ray.cluster_resources()
        if cpus_per_job > total.get("CPU", 0) or gpus_per_job > total.get("GPU", 0):
            raise LamMtebError(
                f"each pair asks for {cpus_per_job:g} CPU / {gpus_per_job:g} GPU but the Ray "
                f"cluster has {total.get('CPU', 0):g} CPU / {total.get('GPU', 0):g} GPU; lower "
                "--cpus-per-job / --gpus-per-job"
            )
        # Ray's own default for max_calls: workers are reused for CPU tasks (one import per worker),
        # and a GPU task's worker exits after it (GPU memory is freed); a worker crash fails its
        # pair only
        remote = ray.remote(max_retries=0)(run_pair)
        refs = {}
        for job in jobs:
            ref = remote.options(
                num_cpus=cpus_per_job,
                num_gpus=gpus_per_job,
                name=f"lam-mteb {job['model']} x {job['task']}",
            ).remote(job)
            refs[ref] = job
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                job = refs.pop(ref)
                try:
                    reply = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - WorkerCrashedError, OutOfMemoryError, a lost node ...
                    reply = {
                        "ok": False,
                        "error": f"Ray: {one_line(exc)}",
                        "worker": "-",
                        "seconds": None,
                    }
                yield job, reply
    finally:
        if started:
            ray.shutdown()


# -- the driver ----------------------------------------------------------------------------------


@dataclass
class GridConfig:
    output_folder: Path
    executor: str = "local"
    jobs: int = 1
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    address: str | None = None
    device: str | None = None
    encode_kwargs: dict = field(default_factory=dict)
    overwrite_strategy: str = "only-missing"
    verbosity: int = 1


def plan(
    pairs: list[Pair], cache: ResultCache, strategy: str
) -> tuple[list[tuple[Pair, ModelMeta, AbsTask]], list[PairOutcome]]:
    """Split ``pairs`` into those to run ``(pair, meta, task)`` and settled outcomes, by mteb's
    overwrite strategy on what :func:`cached_result` finds (as ``mteb.evaluate`` decides)."""
    import mteb

    model_meta = functools.cache(mteb.get_model_meta)  # a revision may hash weights: once a model
    to_run, settled = [], []
    for pair in pairs:
        meta = model_meta(pair.model)
        task = task_object(pair)
        splits = tuple(task.eval_splits)
        # "always" reads nothing (as mteb.evaluate): the result is merged or kept aside on save
        stored, complete = (
            (None, False) if strategy == "always" else cached_result(cache, meta, task)
        )
        path = cache.get_task_result_path(task.metadata.name, meta)
        if complete:
            score = main_score(stored, splits)
            settled.append(PairOutcome(pair, "cached", score, worker="(stored)", splits=splits))
        elif strategy == "only-cache":
            why = f"no complete result for this model and dataset revision in {path.parent}"
            settled.append(PairOutcome(pair, "missing", splits=splits, error=why))
        elif strategy == "never" and stored is not None:
            why = f"partial result kept (--overwrite-strategy never): {path}"
            settled.append(PairOutcome(pair, "exists", worker="(stored)", splits=splits, error=why))
        else:
            to_run.append((pair, meta, task))
    return to_run, settled


def run_grid(
    pairs: list[Pair], config: GridConfig, on_outcome: Callable[[PairOutcome], None] | None = None
) -> list[PairOutcome]:
    """Evaluate ``pairs`` (skipping stored ones); returns one outcome per pair, in grid order."""
    from mteb.cache import ResultCache
    from tqdm.auto import tqdm

    from lam_mteb.plugins import host  # the grid's driver: an entry point of its process

    host.bridge.install()  # its wrap of ResultCache.load_task_result decides what is reused
    cache = ResultCache(config.output_folder)
    to_run, settled = plan(pairs, cache, config.overwrite_strategy)
    outcomes = {o.pair: o for o in settled}
    info = {pair: (meta, task) for pair, meta, task in to_run}
    jobs = _jobs(config, list(info))
    if config.executor == "ray":
        stream = run_ray(jobs, config.address, config.cpus_per_job, config.gpus_per_job)
    elif config.jobs > 1:
        stream = run_process_pool(jobs, config.jobs)
    else:
        stream = run_in_process(jobs)
    bar = tqdm(
        total=len(pairs),
        initial=len(settled),
        desc="pairs",
        unit="pair",
        dynamic_ncols=True,
        disable=None if config.verbosity > 0 else True,
    )
    try:
        for job, reply in stream:
            pair = Pair(job["model"], job["task"], job["eval_splits"], job["hf_subsets"])
            meta, task = info[pair]
            outcome = _record_outcome(pair, meta, task, reply, cache, config)
            outcomes[pair] = outcome
            bar.set_postfix_str(f"{outcome.status}: {pair.label}"[:60], refresh=False)
            bar.update(1)
            if on_outcome:
                on_outcome(outcome)
    finally:
        bar.close()
    return [outcomes[p] for p in pairs if p in outcomes]


def _jobs(config: GridConfig, pairs: list[Pair]) -> list[dict]:
    """One picklable job per pair (what a worker needs to evaluate it)."""
    threads = None
    if config.executor == "local" and config.jobs > 1:
        cpus = config.cpus_per_job or (os.cpu_count() or 1) // config.jobs
        threads = max(1, int(cpus))
    env = forwarded_env()
    return [
        {
            "model": p.model,
            "task": p.task,
            "eval_splits": p.eval_splits,
            "hf_subsets": p.hf_subsets,
            "device": config.device,
            "encode_kwargs": config.encode_kwargs,
            "env": env,
            "threads": threads,
            "verbosity": config.verbosity,
        }
        for p in pairs
    ]


def _record_outcome(
    pair: Pair, meta: Any, task: Any, reply: dict, cache: Any, config: GridConfig
) -> PairOutcome:
    """A worker's reply -> the pair's outcome: its result saved into the results cache, or its
    failure (with the traceback written under ``<output>/lam-mteb-logs/``)."""
    from mteb.results import TaskResult

    splits = tuple(task.eval_splits)
    outcome = PairOutcome(
        pair, "failed", seconds=reply.get("seconds"), worker=reply.get("worker", "-"), splits=splits
    )
    if reply.get("ok"):
        try:
            result = TaskResult.from_dict(reply["result"])
            save_result(cache, meta, result, config.encode_kwargs)
            outcome.status, outcome.result = "done", reply["result"]
            outcome.main_score = main_score(result, splits)
        except Exception as exc:  # noqa: BLE001 - reported as the pair's failure
            outcome.error = f"saving the result failed: {one_line(exc)}"
            reply = {**reply, "traceback": traceback.format_exc()}
    else:
        outcome.error = reply.get("error") or "unknown error"
        outcome.user_error = bool(reply.get("user_error"))
    if outcome.status == "failed" and reply.get("traceback"):
        log_dir = Path(config.output_folder) / "lam-mteb-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{meta.model_name_as_path()}__{pair.task}.log"
        log.write_text(
            f"{pair.label}\nworker {outcome.worker}\n\n{reply['traceback']}", encoding="utf-8"
        )
        outcome.log = str(log)
    return outcome


def summary_rows(outcomes: list[PairOutcome]) -> list[list]:
    return [
        [o.pair.label, o.status, ",".join(o.splits) or "-", o.main_score, o.seconds, o.worker]
        for o in outcomes
    ]


SUMMARY_HEADERS = ["pair", "status", "splits", "main score", "seconds", "worker"]
