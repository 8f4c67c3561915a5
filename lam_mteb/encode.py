"""``lam-mteb encode``: embed a corpus with any registered model into parquet (``id``,
``embedding``).

Input: jsonl (one JSON object a line: ``--text-field``, optional ``--title-field`` and
``--id-field``), parquet (the same columns), or plain text (one document a line).  Ids are the
given id field, else the document's 1-based line number (parquet: row number); blank lines are
skipped but counted.

- ``--executor local`` streams: documents are read ``--rows`` at a time, encoded, and each batch is
  written as one parquet row group, so memory does not grow with the corpus.  The output is one
  file, written under a temporary name and renamed when complete.
- ``--executor ray``: Ray Data reads the input, ``map_batches`` encodes it on an autoscaling actor
  pool (one model replica per actor, ``--cpus-per-worker`` / ``--gpus-per-worker`` each), and the
  output is a directory of parquet shards (``pyarrow.parquet.read_table(OUT)`` reads it whole).
  Text and jsonl lines are numbered by one light actor on the ordered stream, so ids match local
  mode.

The output schema is ``id: string, embedding: fixed_size_list<float32>[dim]`` in both modes.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    import numpy as np
    import pyarrow as pa
    from tqdm import tqdm

    from lam_mteb.contract import ArgumentGroup, SubParsers
    from lam_mteb.plugins import PluginHost
    from lam_mteb.registry import Registry

from lam_mteb.atomic import atomic_file, atomic_folder
from lam_mteb.contract import accepts_param, encode_method
from lam_mteb.errors import LamMtebError

FORMATS = ("jsonl", "parquet", "text")
ID_FIELDS = ("id", "_id", "doc_id", "docid")


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    name = path.name.lower()
    if path.is_dir() or name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return "jsonl"
    return "text"


# -- parsing one line (shared by the local reader and the Ray numbering stage) -------------------


def _json_or_error(text: str, what: str, hint: str) -> Any:
    """``json.loads(text)``, or one LamMtebError: ``<what> (<JSON's complaint>); <hint>``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LamMtebError(f"{what} ({exc.msg}); {hint}") from None


@dataclass(frozen=True)
class Source:
    """The input: its path and format, and the fields holding the text, title and id."""

    path: Path
    fmt: str
    text_field: str = "text"
    id_field: str | None = None
    title_field: str | None = None

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.id_field, self.title_field, self.text_field) if c]

    def parquet_files(self) -> list[Path]:
        return sorted(self.path.rglob("*.parquet")) if self.path.is_dir() else [self.path]

    def parse(self, line: str, lineno: int) -> tuple[str, str] | None:
        """``(id, text)`` for one line, ``None`` for a blank line; bad input raises one clear
        line."""
        if not line.strip():
            return None
        if self.fmt == "text":
            return str(lineno), line.rstrip("\r\n")
        obj = _json_or_error(
            line,
            f"{self.path}:{lineno}: not a JSON object",
            "use --format text for plain text, one document a line",
        )
        if not isinstance(obj, dict) or self.text_field not in obj:
            raise LamMtebError(
                f"{self.path}:{lineno}: no {self.text_field!r} field "
                f"(fields: {', '.join(obj) if isinstance(obj, dict) else type(obj).__name__}); "
                "name the text with --text-field"
            )
        text = _text(obj.get(self.text_field))
        if self.title_field and obj.get(self.title_field):
            text = f"{_text(obj[self.title_field])} {text}".strip()
        if self.id_field:
            if self.id_field not in obj:
                raise LamMtebError(
                    f"{self.path}:{lineno}: no id field {self.id_field!r}; name it with --id-field"
                )
            return str(obj[self.id_field]), text
        return str(lineno), text


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _texts(values: list, titles: list | None) -> list[str]:
    """The text column as strings, each prefixed by its title (when there is one)."""
    texts = [_text(t) for t in values]
    if titles is None:
        return texts
    return [f"{_text(ti)} {t}".strip() if ti else t for ti, t in zip(titles, texts, strict=True)]


def _id_text_table(ids: list[str], texts: list[str]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {"id": pa.array(ids, type=pa.string()), "text": pa.array(texts, type=pa.string())}
    )


def guess_id_field(columns: list[str], given: str | None) -> str | None:
    if given:
        return given
    return next((c for c in ID_FIELDS if c in columns), None)


def _first_json_fields(path: Path) -> list[str]:
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError:
                    return []
                return list(obj) if isinstance(obj, dict) else []
    return []


# -- local streaming -----------------------------------------------------------------------------


def _check_parquet_columns(file: Path, names: list[str], src: Source) -> None:
    for col in reversed(src.columns):  # text, title, id
        if col not in names:
            raise LamMtebError(
                f"{file}: no column {col!r} (columns: {', '.join(names)}); "
                "name them with --text-field / --id-field / --title-field"
            )


def _iter_lines(
    src: Source, rows: int, progress: tqdm | None = None
) -> Iterator[tuple[list[str], list[str]]]:
    """:func:`iter_documents` of a jsonl or text file, read line by line."""
    ids = []
    texts = []
    with open(src.path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if progress is not None:
                progress.update(len(raw))
            parsed = src.parse(raw.decode("utf-8", errors="replace"), lineno)
            if parsed is None:
                continue
            ids.append(parsed[0])
            texts.append(parsed[1])
            if len(texts) >= rows:
                yield ids, texts
                ids, texts = [], []
    if texts:
        yield ids, texts


def iter_documents(
    src: Source, rows: int, progress: tqdm | None = None
) -> Iterator[tuple[list[str], list[str]]]:
    """Batches of at most ``rows`` ``(ids, texts)``; reads the input incrementally.  Parquet ids
    default to row numbers counted across the files, line ids to line numbers."""
    if src.fmt != "parquet":
        yield from _iter_lines(src, rows, progress)
        return
    import pyarrow.parquet as pq

    row_no = 0
    for file in src.parquet_files():
        pf = pq.ParquetFile(file)
        _check_parquet_columns(file, pf.schema_arrow.names, src)
        for batch in pf.iter_batches(batch_size=rows, columns=src.columns):
            data = batch.to_pydict()
            titles = data[src.title_field] if src.title_field else None
            texts = _texts(data[src.text_field], titles)
            ids = (
                [str(i) for i in data[src.id_field]]
                if src.id_field
                else [str(row_no + k + 1) for k in range(len(texts))]
            )
            row_no += len(texts)
            if progress is not None:
                progress.update(len(texts))
            yield ids, texts


def parse_encode_kwargs(text: str | None) -> dict:
    """``--encode-kwargs JSON`` (of ``lam-mteb run`` and ``encode``) as a dict, or one clear
    error."""
    if not text:
        return {}
    kwargs = _json_or_error(
        text, "--encode-kwargs is not JSON", "e.g. --encode-kwargs '{\"batch_size\": 64}'"
    )
    if not isinstance(kwargs, dict):
        raise LamMtebError("--encode-kwargs must be a JSON object, e.g. '{\"batch_size\": 64}'")
    return kwargs


class Embedder:
    """A registered model's encoder, called the way the bridge calls it (prompt type, batch
    size)."""

    def __init__(
        self,
        registry: Registry,
        model: str,
        device: str | None = None,
        prompt_type: str = "document",
        batch_size: int = 32,
        encode_kwargs: dict | None = None,
    ) -> None:
        config = registry.model(model)
        params = (
            {"device": device} if device and accepts_param(config.kind.factory, "device") else {}
        )
        self.name = config.name
        self.encoder = config.create(**params)
        fn = encode_method(self.encoder, prompt_type)
        kwargs = {
            **(encode_kwargs or {}),
            "batch_size": batch_size,
            "show_progress_bar": False,
            "prompt_type": prompt_type,
        }
        self.kwargs = {k: v for k, v in kwargs.items() if accepts_param(fn, k)}
        self.fn = fn

    def __call__(self, texts: list[str]) -> np.ndarray:
        from lam_mteb import bridge

        return bridge.as_embeddings(self.fn(list(texts), **self.kwargs), len(texts), self.name)


def to_table(ids: list[str], emb: np.ndarray) -> pa.Table:
    import pyarrow as pa

    flat = pa.array(emb.reshape(-1), type=pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(flat, emb.shape[1])
    return pa.table({"id": pa.array(ids, type=pa.string()), "embedding": vectors})


def encode_local(
    src: Source, out: Path, embedder: Embedder, rows: int, show_progress: bool = True
) -> int:
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    if src.fmt == "parquet":
        n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in src.parquet_files())
        total, unit, scale = n_rows, "doc", False
    else:
        total, unit, scale = src.path.stat().st_size, "B", True
    n = 0
    writer = None
    with atomic_file(out) as tmp:
        try:
            with tqdm(
                total=total,
                unit=unit,
                unit_scale=scale,
                desc=f"encode {embedder.name}",
                disable=None if show_progress else True,
            ) as bar:
                for ids, texts in iter_documents(src, rows, progress=bar):
                    table = to_table(ids, embedder(texts))
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table, row_group_size=len(ids))
                    n += len(ids)
            if writer is None:
                raise LamMtebError(f"{src.path}: no documents found (blank input?)")
        finally:
            if writer is not None:
                writer.close()
    return n


# -- Ray Data ------------------------------------------------------------------------------------


class _Numberer:
    """Ray Data stage (one actor, ordered stream): raw lines -> (id, text), numbering lines like
    local mode."""

    def __init__(self, src: Source) -> None:
        self.parse = src.parse
        self.lineno = 0

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids, texts = [], []
        for line in batch.column("text").to_pylist():
            self.lineno += 1
            parsed = self.parse(line or "", self.lineno)
            if parsed is not None:
                ids.append(parsed[0])
                texts.append(parsed[1])
        return _id_text_table(ids, texts)


class _EncodeActor:
    """One model replica per Ray actor."""

    def __init__(
        self,
        model: str,
        device: str | None,
        prompt_type: str,
        batch_size: int,
        encode_kwargs: dict,
        env: dict[str, str],
        threads: int | None,
    ) -> None:
        os.environ.update(env)
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        from lam_mteb.plugins import host  # a Ray worker's entry point: its process's host

        registry = host.registry()
        self.embedder = Embedder(registry, model, device, prompt_type, batch_size, encode_kwargs)
        self.dim: int | None = None

    def __call__(self, batch: pa.Table) -> pa.Table:
        import numpy as np

        texts = [_text(t) for t in batch.column("text").to_pylist()]
        ids = [str(i) for i in batch.column("id").to_pylist()]
        if not texts:  # a batch of blank lines: an empty table of the same schema
            if self.dim is None:
                self.dim = self.embedder(["dimension probe"]).shape[1]
            return to_table([], np.zeros((0, self.dim), dtype=np.float32))
        emb = self.embedder(texts)
        self.dim = emb.shape[1]
        return to_table(ids, emb)


def encode_ray(
    src: Source,
    out: Path,
    *,
    model: str,
    device: str | None,
    prompt_type: str,
    batch_size: int,
    encode_kwargs: dict,
    rows: int,
    address: str | None,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float,
) -> int:
    from lam_mteb import runner

    ray, started = runner.init_ray(address)
    try:
        # a name of its own: rebinding ``ray`` is a redefinition when mypy runs without the extra
        from ray import data as ray_data

        ctx = ray_data.DataContext.get_current()
        # line numbers follow the file; shards in input order
        ctx.execution_options.preserve_order = True
        ds = _ray_documents(ray, src)
        n_workers = _ray_worker_count(ray, workers, cpus_per_worker, gpus_per_worker)
        ds = ds.map_batches(
            _EncodeActor,
            batch_size=rows,
            batch_format="pyarrow",
            concurrency=(1, n_workers),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None,
            fn_constructor_kwargs={
                "model": model,
                "device": device,
                "prompt_type": prompt_type,
                "batch_size": batch_size,
                "encode_kwargs": encode_kwargs,
                "env": runner.forwarded_env(),
                "threads": max(1, int(cpus_per_worker)) if cpus_per_worker >= 1 else 1,
            },
        )
        return _write_parquet_folder(ds, src.path, out)
    except LamMtebError:
        raise
    except Exception as exc:  # noqa: BLE001 - unwrapped to one line
        raise _one_line_ray_error(exc) from None
    finally:
        if started:
            ray.shutdown()


def _ray_documents(ray: Any, src: Source) -> Any:
    """A Ray dataset of ``id`` and ``text`` rows read from the input, in file order."""
    source = str(src.path.resolve())
    if src.fmt != "parquet":
        ds = ray.data.read_text(source, drop_empty_lines=False)
        return ds.map_batches(
            _Numberer,
            fn_constructor_kwargs={"src": src},
            batch_format="pyarrow",
            concurrency=1,
            num_cpus=0,
        )
    ds = ray.data.read_parquet(source, columns=src.columns)
    if src.id_field is None:
        # row numbers need the global order: number them on one ordered actor, as for text
        return ds.map_batches(
            _ParquetNumberer,
            fn_constructor_kwargs={"src": src},
            batch_format="pyarrow",
            concurrency=1,
            num_cpus=0,
        )
    return ds.map_batches(_id_and_text, fn_kwargs={"src": src}, batch_format="pyarrow")


def _ray_worker_count(
    ray: Any, workers: int | None, cpus_per_worker: float, gpus_per_worker: float
) -> int:
    """How many encode actors the cluster fits (at most ``workers``); one error if none fits."""
    total = ray.cluster_resources()
    if gpus_per_worker:
        limit = int(total.get("GPU", 0) // gpus_per_worker)
    else:
        limit = int(total.get("CPU", 1) // max(cpus_per_worker, 1e-9))
    if limit < 1:
        raise LamMtebError(
            f"each encode worker asks for {cpus_per_worker:g} CPU / {gpus_per_worker:g} GPU; "
            f"the Ray cluster has {total.get('CPU', 0):g} CPU / {total.get('GPU', 0):g} GPU"
        )
    return min(workers or limit, limit)


def _write_parquet_folder(ds: Any, path: Path, out: Path) -> int:
    """Write ``ds`` as parquet shards into a temporary folder renamed to ``out`` once complete;
    returns the row count (no rows is one error)."""
    import pyarrow.parquet as pq

    with atomic_folder(out) as tmp:
        ds.write_parquet(str(tmp))
        n = sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(tmp.glob("*.parquet")))
        if n == 0:
            raise LamMtebError(f"{path}: no documents found (blank input?)")
    return n


def _one_line_ray_error(exc: BaseException) -> LamMtebError:
    """A LamMtebError raised inside a Ray task arrives wrapped: keep its one line; any other
    failure becomes one line naming its type and last line."""
    cause: BaseException | None = exc
    while cause is not None:
        cause = getattr(cause, "cause", None) or cause.__cause__
        if isinstance(cause, LamMtebError):
            return LamMtebError(str(cause))
    text = str(exc).strip().splitlines()
    return LamMtebError(f"Ray encode failed: {type(exc).__name__}: {text[-1] if text else ''}")


class _ParquetNumberer:
    def __init__(self, src: Source) -> None:
        self.src, self.row = src, 0

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = _batch_texts(batch, self.src)
        ids = [str(self.row + k + 1) for k in range(len(texts))]
        self.row += len(texts)
        return _id_text_table(ids, texts)


def _batch_texts(batch: pa.Table, src: Source) -> list[str]:
    titles = batch.column(src.title_field).to_pylist() if src.title_field else None
    return _texts(batch.column(src.text_field).to_pylist(), titles)


def _id_and_text(batch: pa.Table, src: Source) -> pa.Table:
    ids = [str(i) for i in batch.column(src.id_field).to_pylist()]
    return _id_text_table(ids, _batch_texts(batch, src))


# -- command -------------------------------------------------------------------------------------


def _checked_paths(args: argparse.Namespace) -> tuple[Path, Path, str]:
    """--input, --output and the input format, or one clear error before any work."""
    path = Path(args.input).expanduser()
    out = Path(args.output).expanduser()
    if not path.exists():
        raise LamMtebError(f"--input {path} does not exist")
    if out.exists() and not args.overwrite:
        raise LamMtebError(f"--output {out} exists; choose another path or pass --overwrite")
    if not out.parent.is_dir():
        raise LamMtebError(f"--output {out}: folder {out.parent} does not exist")
    if args.rows < 1 or args.batch_size < 1:
        raise LamMtebError("--rows and --batch-size must be at least 1")
    fmt = detect_format(path, args.format)
    if fmt != "parquet" and path.is_dir():
        raise LamMtebError(
            f"--input {path} is a folder; only parquet input may be a folder of files"
        )
    return path, out, fmt


def _input_id_field(src: Source, given: str | None) -> str | None:
    """--id-field, or the first of ID_FIELDS the input has (jsonl / parquet)."""
    if src.fmt == "jsonl":
        return guess_id_field(_first_json_fields(src.path), given)
    if src.fmt == "parquet":
        import pyarrow.parquet as pq

        first = next(iter(src.parquet_files()), None)
        if first is None:
            raise LamMtebError(f"--input {src.path}: no parquet files")
        return guess_id_field(pq.ParquetFile(first).schema_arrow.names, given)
    return given


def device_and_kwargs(args: argparse.Namespace) -> tuple[str | None, dict]:
    """The first --device and the --encode-kwargs (all devices there when several), for
    ``lam-mteb encode`` and ``run``."""
    encode_kwargs = parse_encode_kwargs(args.encode_kwargs)
    devices = args.device or []
    if len(devices) > 1:
        encode_kwargs.setdefault("device", devices)
    return (devices[0] if devices else None), encode_kwargs


def _write_embeddings(
    registry: Registry,
    args: argparse.Namespace,
    src: Source,
    target: Path,
    device: str | None,
    encode_kwargs: dict,
) -> int:
    """Encode the input into ``target`` with the chosen executor; returns the document count."""
    if args.executor == "ray":
        return encode_ray(
            src,
            target,
            model=args.model,
            device=device,
            prompt_type=args.prompt_type,
            batch_size=args.batch_size,
            encode_kwargs=encode_kwargs,
            rows=args.rows,
            address=args.address,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
        )
    embedder = Embedder(
        registry, args.model, device, args.prompt_type, args.batch_size, encode_kwargs
    )
    return encode_local(src, target, embedder, args.rows)


def cmd_encode(host: PluginHost, args: argparse.Namespace) -> int:
    from lam_mteb import runner

    path, out, fmt = _checked_paths(args)
    if args.executor == "ray":
        runner.import_ray()
    registry = host.registry()
    registry.model(args.model)  # unknown model: one line, before any work
    src = Source(path, fmt, args.text_field, title_field=args.title_field)
    id_field = _input_id_field(src, args.id_field)
    src = replace(src, id_field=id_field)
    device, encode_kwargs = device_and_kwargs(args)
    t0 = time.perf_counter()
    # an existing --output (--overwrite) is replaced only once the new one is complete
    n = _write_embeddings(registry, args, src, out, device, encode_kwargs)
    wall = time.perf_counter() - t0
    print(
        f"{n} documents from {path} ({fmt}) -> "
        f"{out}{' (parquet shards)' if args.executor == 'ray' else ''} with {args.model} in "
        f"{wall:.1f}s ({n / max(wall, 1e-9):.1f} docs/s); ids: "
        f"{id_field or ('row numbers' if fmt == 'parquet' else 'line numbers')}",
        file=sys.stderr,
    )
    return 0


def add_parser(sub: SubParsers, host: PluginHost) -> None:
    p = sub.add_parser(
        "encode", help="embed a corpus (jsonl / parquet / text lines) into parquet: id, embedding"
    )
    _input_output(p.add_argument_group("input and output"))
    _encoding(p.add_argument_group("encoding"))
    _execution(p.add_argument_group("where to run"))
    p.set_defaults(func=functools.partial(cmd_encode, host))


def _input_output(g: ArgumentGroup) -> None:
    g.add_argument("-m", "--model", required=True, help="a registered model (`lam-mteb models`)")
    g.add_argument(
        "--input",
        required=True,
        help="jsonl, parquet (file or folder) or plain text, one document a line",
    )
    g.add_argument(
        "--output", required=True, help="parquet file (local) or folder of parquet shards (ray)"
    )
    g.add_argument(
        "--format", choices=FORMATS, default=None, help="input format (default: from the file name)"
    )
    g.add_argument(
        "--text-field", default="text", help="jsonl/parquet: the text field (default: text)"
    )
    g.add_argument(
        "--title-field", default=None, help="jsonl/parquet: a title field prepended to the text"
    )
    g.add_argument(
        "--id-field",
        default=None,
        help=f"jsonl/parquet: the id field (default: {'/'.join(ID_FIELDS)} if present, "
        "else line numbers)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output (only once the new one is complete)",
    )


def _encoding(g: ArgumentGroup) -> None:
    g.add_argument("--prompt-type", choices=["document", "query"], default="document")
    g.add_argument("--batch-size", "--batch_size", type=int, default=32, help="encoder batch size")
    g.add_argument(
        "--rows",
        type=int,
        default=1024,
        help="documents read, encoded and written at a time (row group / Ray batch)",
    )
    g.add_argument(
        "--device",
        nargs="+",
        default=None,
        help="device; several: encoders that accept a device list use them all",
    )
    g.add_argument("--encode-kwargs", default=None, help="JSON object of extra encode keywords")


def _execution(g: ArgumentGroup) -> None:
    g.add_argument("--executor", choices=["local", "ray"], default="local")
    g.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="ray: most encode actors (default: as many as resources allow)",
    )
    g.add_argument("--cpus-per-worker", type=float, default=1.0)
    g.add_argument("--gpus-per-worker", type=float, default=0.0)
