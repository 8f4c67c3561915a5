"""``lam-mteb check MODEL``: a registered model through a tiny built-in task set, in seconds.

For plugin authors (what ``mteb mock-run`` is for mteb models): it instantiates the model the way
``mteb run`` does and reports, one row per check,

- the encoder contract (:func:`lam_mteb.contract.encoder_problem`), output shape and dimension
  (against the registered ``embed_dim``), dtype, finite values, L2 norms, that different texts get
  different vectors, determinism (the same texts encoded twice), batch independence (a text
  encoded alone vs. in a batch: padding bugs), ``encode_queries`` / ``encode_documents`` if defined;
- speed (texts per second);
- whether it survives empty, whitespace-only, non-ASCII and very long (100 000 characters) inputs;
- mteb's own in-memory mock tasks (``mteb.mocks``: STS, retrieval, classification, clustering,
  pair classification, reranking; ``--all-mock-tasks`` runs mteb's whole ``mock_run`` grid)
  through the stock ``mteb.get_model`` / ``mteb.evaluate`` path.  Their two-sample data checks the
  pipeline, not quality.

Failed checks are printed one line each on stderr and make the command exit 1.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from tabulate import tabulate

from lam_mteb.contract import accepts_param, encoder_problem
from lam_mteb.errors import LamMtebError, one_line

if TYPE_CHECKING:
    from mteb.types import EncodeKwargs

    from lam_mteb.plugins import PluginHost

OK, FAIL, INFO, SKIP = "ok", "FAIL", "info", "skipped"

#: varied short texts: distinct words, lengths, punctuation, a question, a number
PROBE_TEXTS: tuple[str, ...] = (
    "A man is playing a guitar on the street.",
    "The cat sleeps on the warm windowsill.",
    "Stock markets fell sharply after the announcement.",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy.",
    "The train to Berlin leaves at 7:45 from platform 3.",
    "She won the chess tournament without losing a game.",
    "Heavy rain is expected across the region tomorrow.",
    "Mix the flour and eggs, then bake for twenty minutes.",
    "The committee approved the new budget on Tuesday.",
    "Quantum computers use qubits instead of bits.",
    "A child is flying a red kite in the park.",
    "The museum opens its doors to the public again.",
    "Vaccines train the immune system to recognise a virus.",
    "Why is the sky blue?",
    "The river flooded the village after days of rain.",
)

NON_ASCII = "Größe, naïve café — 日本語のテキスト, Ελληνικά, العربية, 😀 emoji ✓"
LONG_SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on. "

#: mteb's in-memory text mock tasks run by default (class names in ``mteb.mocks``)
DEFAULT_MOCK_TASKS = (
    "MockSTSTask",
    "MockRetrievalTask",
    "MockClassificationTask",
    "MockClusteringTask",
    "MockPairClassificationTask",
    "MockRerankingTask",
)


@dataclass
class Check:
    name: str
    status: str  # OK | FAIL | INFO | SKIP
    detail: str


@dataclass
class CheckReport:
    model: str
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: str, detail: str) -> Check:
        check = Check(name, status, detail)
        self.checks.append(check)
        return check

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def by_name(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def render(self, fmt: str = "table") -> str:
        if fmt == "json":
            return json.dumps(
                {
                    "model": self.model,
                    "passed": not self.failures,
                    "checks": [asdict(c) for c in self.checks],
                },
                indent=2,
            )
        rows = [[c.name, c.status, c.detail] for c in self.checks]
        table_fmt = "github" if fmt == "markdown" else "simple"
        return tabulate(rows, headers=["check", "result", "detail"], tablefmt=table_fmt)


def long_text(n_chars: int) -> str:
    """Natural-looking text of exactly ``n_chars`` characters."""
    reps = n_chars // len(LONG_SENTENCE) + 1
    return (LONG_SENTENCE * reps)[:n_chars]


def edge_inputs(long_chars: int) -> dict[str, str]:
    return {
        "empty input": "",
        "whitespace input": " \t\n  ",
        "non-ASCII input": NON_ASCII,
        f"very long input ({long_chars:,} chars)": long_text(long_chars),
    }


# -- calling the encoder ------------------------------------------------------------------------


def to_array(out: Any) -> tuple[np.ndarray, str]:
    """(numpy array, dtype as returned) of what ``encode`` returned (numpy, torch or lists)."""
    if hasattr(out, "detach"):  # a torch tensor (torch is not imported here)
        tensor = out.detach().cpu()
        dtype = str(tensor.dtype)
        if tensor.is_floating_point():
            tensor = tensor.float()  # numpy has no bfloat16
        return np.asarray(tensor.numpy()), dtype
    arr = np.asarray(out)
    return arr, str(arr.dtype)


def call_encode(
    fn: Callable[..., Any], texts: Sequence[str], batch_size: int
) -> tuple[np.ndarray, str]:
    kwargs = {
        k: v
        for k, v in {"batch_size": batch_size, "show_progress_bar": False}.items()
        if accepts_param(fn, k)
    }
    return to_array(fn(list(texts), **kwargs))


def _shape_problem(arr: np.ndarray, n: int, dim: int | None) -> str | None:
    if arr.ndim != 2:
        return f"expected a 2-D array (n, dim), got shape {arr.shape}"
    if arr.shape[0] != n:
        return f"{arr.shape[0]} rows for {n} texts (shape {arr.shape})"
    if dim is not None and arr.shape[1] != dim:
        return f"dim {arr.shape[1]}, but the model registers embed_dim={dim}"
    return None


# -- the checks ----------------------------------------------------------------------------------


def _check_probe(
    report: CheckReport, encoder: Any, dim: int | None, batch_size: int
) -> np.ndarray | None:
    texts = PROBE_TEXTS
    try:
        emb, dtype = call_encode(encoder.encode, texts, batch_size)
    except Exception as exc:
        report.add("encode", FAIL, f"encode({len(texts)} texts) raised {one_line(exc)}")
        return None
    problem = _shape_problem(emb, len(texts), dim)
    if problem:
        report.add("output shape", FAIL, problem)
        return None
    declared = "" if dim is not None else " (no embed_dim registered)"
    report.add("output shape", OK, f"{emb.shape} for {len(texts)} texts{declared}")
    if np.issubdtype(emb.dtype, np.floating):
        report.add("dtype", OK, dtype)
    else:
        report.add("dtype", FAIL, f"{dtype}: embeddings must be floating point")
    emb = emb.astype(np.float64)
    bad = int((~np.isfinite(emb)).any(axis=1).sum())
    if bad:
        report.add("finite values", FAIL, f"NaN or inf in {bad} of {len(texts)} embeddings")
        return None
    report.add("finite values", OK, "all finite")
    norms = np.linalg.norm(emb, axis=1)
    spread = f"min {norms.min():.4g}, mean {norms.mean():.4g}, max {norms.max():.4g}"
    if (norms < 1e-12).any():
        report.add("norms", FAIL, f"{int((norms < 1e-12).sum())} zero vector(s); {spread}")
    else:
        unit = " (L2-normalised)" if np.allclose(norms, 1.0, atol=1e-3) else ""
        report.add("norms", OK, spread + unit)
    distinct = len({tuple(np.round(row, 6)) for row in emb})
    status = OK if distinct > 1 else FAIL
    report.add(
        "distinct texts", status, f"{distinct} distinct vectors for {len(texts)} different texts"
    )
    return emb


def _check_repeat(report: CheckReport, encoder: Any, first: np.ndarray, batch_size: int) -> None:
    try:
        again, _ = call_encode(encoder.encode, PROBE_TEXTS, batch_size)
        diff = float(np.abs(again.astype(np.float64) - first).max())
        same = np.allclose(again, first, rtol=1e-4, atol=1e-5)
        report.add(
            "determinism",
            OK if same else FAIL,
            f"same texts encoded twice: max |difference| {diff:.2g}",
        )
    except Exception as exc:
        report.add("determinism", FAIL, f"second encode raised {one_line(exc)}")
    k = 4
    try:
        alone = np.vstack(
            [call_encode(encoder.encode, [t], batch_size)[0] for t in PROBE_TEXTS[:k]]
        )
        a = alone.astype(np.float64)
        b = first[:k]
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        both_zero = (np.linalg.norm(a, axis=1) < 1e-12) & (np.linalg.norm(b, axis=1) < 1e-12)
        cos = np.where(both_zero, 1.0, (a * b).sum(1) / np.maximum(norms, 1e-24))
        report.add(
            "batch independence",
            OK if cos.min() >= 0.999 else FAIL,
            f"{k} texts encoded alone vs. in a batch of {len(PROBE_TEXTS)}: "
            f"min cosine {cos.min():.6f}",
        )
    except Exception as exc:
        report.add("batch independence", FAIL, f"encoding one text raised {one_line(exc)}")


def _check_query_document(report: CheckReport, encoder: Any, dim: int, batch_size: int) -> None:
    for method in ("encode_queries", "encode_documents"):
        fn = getattr(encoder, method, None)
        if fn is None:
            continue
        try:
            emb, _ = call_encode(fn, PROBE_TEXTS[:4], batch_size)
        except Exception as exc:
            report.add(method, FAIL, f"raised {one_line(exc)}")
            continue
        problem = _shape_problem(emb, 4, dim)
        if problem is None and not np.isfinite(emb.astype(np.float64)).all():
            problem = "NaN or inf in the output"
        report.add(method, FAIL if problem else OK, problem or f"{emb.shape}, same dim as encode")


def _check_speed(report: CheckReport, encoder: Any, n_texts: int, batch_size: int) -> None:
    texts = [PROBE_TEXTS[i % len(PROBE_TEXTS)] for i in range(n_texts)]
    start = time.perf_counter()
    try:
        call_encode(encoder.encode, texts, batch_size)
    except Exception as exc:
        report.add("speed", FAIL, f"encode({n_texts} texts) raised {one_line(exc)}")
        return
    elapsed = max(time.perf_counter() - start, 1e-9)
    report.add(
        "speed",
        INFO,
        f"{n_texts / elapsed:,.1f} texts/s ({n_texts} short texts, "
        f"batch_size {batch_size}, {elapsed:.2f} s)",
    )


def _check_edges(
    report: CheckReport, encoder: Any, dim: int, batch_size: int, long_chars: int
) -> None:
    for name, text in edge_inputs(long_chars).items():
        start = time.perf_counter()
        try:
            emb, _ = call_encode(encoder.encode, [text], batch_size)
        except Exception as exc:
            report.add(name, FAIL, f"raised {one_line(exc)}")
            continue
        elapsed = time.perf_counter() - start
        problem = _shape_problem(emb, 1, dim)
        if problem is None and not np.isfinite(emb.astype(np.float64)).all():
            problem = "NaN or inf in the embedding"
        norm = "" if problem else f", norm {float(np.linalg.norm(emb.astype(np.float64))):.4g}"
        report.add(name, FAIL if problem else OK, problem or f"{emb.shape}{norm}, {elapsed:.2f} s")


def _mock_tasks(all_mock: bool) -> list[Any]:
    import mteb.mocks

    if all_mock:
        return list(mteb.mocks.MOCK_TASK_TEST_GRID)
    return [getattr(mteb.mocks, name)() for name in DEFAULT_MOCK_TASKS]


def _check_mteb(
    host: PluginHost,
    report: CheckReport,
    name: str,
    device: str | None,
    batch_size: int,
    all_mock: bool,
) -> None:
    import logging

    import datasets
    import mteb

    host.bridge.install()
    datasets.disable_progress_bars()
    logging.getLogger("mteb").setLevel(logging.ERROR)
    try:
        model = mteb.get_model(name, device=device)
    except Exception as exc:
        report.add("mteb.get_model", FAIL, one_line(exc))
        return
    tasks = _mock_tasks(all_mock)
    encode_kwargs = cast("EncodeKwargs", {"batch_size": batch_size, "show_progress_bar": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = mteb.evaluate(
            model,
            tasks,
            cache=None,
            raise_error=False,
            show_progress_bar=False,
            encode_kwargs=encode_kwargs,
        )
    passed = {r.task_name: r for r in results.task_results}
    failed = {e.task_name: e for e in (results.exceptions or [])}
    for task in tasks:
        task_name = task.metadata.name
        label = f"mteb {task_name}"
        if task_name in passed:
            score = passed[task_name].get_score()
            report.add(
                label,
                OK,
                f"ran; {task.metadata.main_score} {score:.4f} "
                "(mock data: checks the pipeline, not quality)",
            )
        elif task_name in failed:
            report.add(label, FAIL, failed[task_name].exception.strip().splitlines()[-1][:300])
        else:
            report.add(label, SKIP, "not run by mteb (incompatible with the model)")


def run_checks(
    host: PluginHost,
    name: str,
    *,
    long_chars: int = 100_000,
    speed_texts: int = 256,
    batch_size: int = 32,
    device: str | None = None,
    mteb_tasks: bool = True,
    all_mock: bool = False,
) -> CheckReport:
    """Run every check on the registered model ``name`` of ``host``; raises LamMtebError if it is
    unknown."""
    config = host.registry().model(name)
    report = CheckReport(model=config.name)
    params: dict[str, Any] = {}
    if device is not None and accepts_param(config.kind.factory, "device"):
        params["device"] = device
    start = time.perf_counter()
    try:
        encoder = config.build(**params)
    except Exception as exc:
        report.add(
            "load",
            FAIL,
            f"factory of kind {config.kind.name!r} (plugin {config.kind.plugin!r}) "
            f"raised {one_line(exc)}",
        )
        return report
    report.add(
        "load",
        OK,
        f"{type(encoder).__qualname__} from plugin {config.kind.plugin!r} "
        f"in {time.perf_counter() - start:.2f} s",
    )
    problem = encoder_problem(encoder)
    if problem:
        report.add("contract", FAIL, problem)
        return report
    methods = [
        m for m in ("encode", "encode_queries", "encode_documents") if getattr(encoder, m, None)
    ]
    report.add("contract", OK, "Encoder protocol: " + ", ".join(methods))
    declared = config.embed_dim if isinstance(config.embed_dim, int) else None
    first = _check_probe(report, encoder, declared, batch_size)
    if first is not None:
        dim = first.shape[1]
        _check_repeat(report, encoder, first, batch_size)
        _check_query_document(report, encoder, dim, batch_size)
        _check_speed(report, encoder, speed_texts, batch_size)
        _check_edges(report, encoder, dim, batch_size, long_chars)
    if mteb_tasks and first is not None:
        del encoder
        _check_mteb(host, report, config.name, device, batch_size, all_mock)
    elif mteb_tasks:
        report.add("mteb mock tasks", SKIP, "the direct checks failed; fix those first")
    return report


# -- command line --------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_parser(subparsers: Any, host: PluginHost) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "check",
        help="sanity-check a registered model: shape, dtype, norms, determinism, speed, odd inputs",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("model", help="registered model name (`lam-mteb models` lists them)")
    p.add_argument(
        "--long-chars",
        type=_positive,
        default=100_000,
        help="length of the very long input in characters (default: 100000)",
    )
    p.add_argument(
        "--speed-texts",
        type=_positive,
        default=256,
        help="texts encoded for the speed measurement (default: 256)",
    )
    p.add_argument(
        "--batch-size", type=_positive, default=32, help="batch_size passed to encode (default: 32)"
    )
    p.add_argument(
        "--device", default=None, help="device for factories that accept one (cpu, cuda)"
    )
    p.add_argument(
        "--no-mteb", action="store_true", help="skip the mteb mock tasks (direct checks only)"
    )
    p.add_argument(
        "--all-mock-tasks",
        action="store_true",
        help="run mteb's whole text mock-task grid (like `mteb mock-run`; slower)",
    )
    p.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    p.set_defaults(func=functools.partial(cmd_check, host))
    return p


def cmd_check(host: PluginHost, args: argparse.Namespace) -> int:
    import sys

    if args.no_mteb and args.all_mock_tasks:
        raise LamMtebError("--no-mteb and --all-mock-tasks contradict each other; give one")
    report = run_checks(
        host,
        args.model,
        long_chars=args.long_chars,
        speed_texts=args.speed_texts,
        batch_size=args.batch_size,
        device=args.device,
        mteb_tasks=not args.no_mteb,
        all_mock=args.all_mock_tasks,
    )
    print(report.render(args.format))
    for check in report.failures:
        print(f"check failed: {report.model}: {check.name}: {check.detail}", file=sys.stderr)
    if args.format != "json":
        n = len(report.failures)
        print(f"\n{report.model}: " + (f"{n} check(s) failed" if n else "all checks passed"))
    return 1 if report.failures else 0
