"""Long-context retrieval: MiniLM (truncates at 256 tokens) vs LAM (streams every token) vs
baselines.

Runs mteb's own LEMBPasskeyRetrieval, LEMBNeedleRetrieval and LEMBQMSumRetrieval (offline data
from the ``longembed`` plugin, see docs/longembed.md) for ``minilm``, ``lam-mean``, ``lam-state``
and ``lam-hybrid`` and the long-document baselines of docs/baselines.md — ``bm25`` (mteb's BM25),
``minilm-static`` (model2vec), ``minilm-chunk-mean`` / ``minilm-chunk-max`` (MiniLM over 254-token
windows: mean of window vectors / MaxSim) — through ``mteb.evaluate``; results are written in
mteb's layout under ``--output-folder`` (``results/<org>__<model>/<revision>/<Task>.json``), then
one table is printed: accuracy@1 (= nDCG@1, mteb's main score) per context length for Passkey /
Needle, nDCG@10 for QMSum, and the wall time per model.

The three LAM poolings share one streaming pass: the first LAM model computes every pooling with
the encoder's ``encode_all`` and the other two read them from an in-memory cache (``--no-share``
runs them separately).  The wall time of the first LAM model therefore includes the pass of all
three.  Likewise the two chunked models share their window vectors (the ``chunked`` encoder's
per-process cache, keyed by window text): Passkey's filler and Needle's shared haystack prefix are
encoded once, and ``minilm-chunk-max`` reuses every window ``minilm-chunk-mean`` encoded.

    LAM_MTEB_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/long_context.py
    # a small slice (what CI runs):
    python benchmarks/long_context.py --lengths 256 1024 --limit 5

``--limit N`` keeps the first N queries of every split and at most 2N documents (their relevant
documents first, then others in stored order): a smoke test, not a score to report.  Sliced runs
go to ``<output-folder>-slice`` so they never mix with full results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

TASKS = {
    "passkey": "LEMBPasskeyRetrieval",
    "needle": "LEMBNeedleRetrieval",
    "qmsum": "LEMBQMSumRetrieval",
}
LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
MODELS = (
    "minilm",
    "lam-mean",
    "lam-state",
    "lam-hybrid",
    "bm25",
    "minilm-static",
    "minilm-chunk-mean",
    "minilm-chunk-max",
)

# sentence-transformers/all-MiniLM-L6-v2 (revision 8b3219a9) in the MTEB results repository
# (embeddings-benchmark/results @ f4cc6c8b, on the *published* LongEmbed data), copied from
# ../shared/data/reference_scores/mteb_results: a reference only, our data is a re-creation.
PUBLISHED_MINILM = {
    "LEMBPasskeyRetrieval": {
        256: 0.84,
        512: 0.42,
        1024: 0.38,
        2048: 0.08,
        4096: 0.08,
        8192: 0.02,
        16384: 0.02,
        32768: 0.02,
    },
    "LEMBNeedleRetrieval": {
        256: 0.70,
        512: 0.44,
        1024: 0.24,
        2048: 0.12,
        4096: 0.04,
        8192: 0.04,
        16384: 0.00,
        32768: 0.02,
    },
    "LEMBQMSumRetrieval": {"test": 0.16322},
}


# -- the shared LAM pass -------------------------------------------------------------------------


class SharedPoolingCache:
    """One streaming pass for every LAM pooling: texts -> mean and state vectors.

    Keyed by the encoder's configuration (weights, chunk size, state pooling's diag weight) and the
    text's hash, so two encoders share results only when they would compute the same vectors.
    The hybrid pooling is mixed from the stored mean and state with each encoder's own
    ``hybrid(mean, state)``, so every hybrid weight shares the pass too.  With ``folder`` the
    vectors are also kept on disk (one ``<signature>.npz`` per configuration): a later run, e.g.
    after changing a hybrid weight, re-encodes nothing."""

    def __init__(self, folder: str | Path | None = None):
        self.store: dict[tuple, dict[str, np.ndarray]] = {}
        self.computed_texts = 0
        self.folder = Path(folder) if folder else None
        self._loaded: set[str] = set()

    @staticmethod
    def signature(encoder) -> str:
        h = hashlib.sha1(type(encoder).__qualname__.encode())
        attrs = (
            ("diag_weight", "chunk_size")
            if hasattr(encoder, "hybrid")
            else ("hybrid_weight", "state_weight", "diag_weight", "chunk_size")
        )
        for attr in attrs:
            h.update(repr(getattr(encoder, attr, None)).encode())
        model = getattr(encoder, "model", None)
        if model is not None and hasattr(model, "state_dict"):
            for name, tensor in sorted(model.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _file(self, sig: str) -> Path:
        return self.folder / f"{sig[:16]}.npz"

    def _load(self, sig: str) -> None:
        if self.folder is None or sig in self._loaded:
            return
        self._loaded.add(sig)
        path = self._file(sig)
        if path.is_file():
            with np.load(path) as z:
                if str(z["signature"]) == sig:
                    poolings = [str(p) for p in z["poolings"]]
                    for key, *vecs in zip(z["keys"], *(z[p] for p in poolings), strict=True):
                        self.store[(sig, bytes.fromhex(str(key)))] = dict(
                            zip(poolings, vecs, strict=True)
                        )

    def _save(self, sig: str) -> None:
        if self.folder is None:
            return
        items = [(k[1], v) for k, v in self.store.items() if k[0] == sig]
        poolings = sorted(items[0][1])
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._file(sig).with_suffix(".tmp.npz")
        np.savez(
            tmp,
            signature=np.array(sig),
            poolings=np.array(poolings),
            keys=np.array([k.hex() for k, _ in items]),
            **{p: np.stack([v[p] for _, v in items]) for p in poolings},
        )
        tmp.replace(self._file(sig))

    def wrap(self, encoder, pooling: str) -> None:
        if not hasattr(encoder, "encode_all"):
            return  # an encoder without encode_all runs on its own
        cache, sig = self, self.signature(encoder)
        kept = ("mean", "state") if hasattr(encoder, "hybrid") else ("mean", "state", "hybrid")
        cache._load(sig)

        def encode(texts, *, batch_size=None, show_progress_bar=False, **kwargs):
            keys = [(sig, hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest()) for t in texts]
            todo = {}
            for k, t in zip(keys, texts, strict=True):
                if k not in cache.store and k not in todo:
                    todo[k] = t
            if todo:
                out = encoder.encode_all(
                    list(todo.values()), batch_size=batch_size, show_progress_bar=show_progress_bar
                )
                for j, k in enumerate(todo):
                    cache.store[k] = {p: np.asarray(out[p][j], dtype=np.float32) for p in kept}
                cache.computed_texts += len(todo)
                cache._save(sig)
            if len(keys) == 0:
                return np.zeros((0, getattr(encoder, "embed_dim", 384)), dtype=np.float32)
            if pooling == "hybrid" and "hybrid" not in kept:
                mean = np.stack([cache.store[k]["mean"] for k in keys])
                state = np.stack([cache.store[k]["state"] for k in keys])
                return np.asarray(encoder.hybrid(mean, state), dtype=np.float32)
            return np.stack([cache.store[k][pooling] for k in keys]).astype(np.float32)

        encoder.encode = encode


# -- tasks ---------------------------------------------------------------------------------------


def load_tasks(names, lengths, limit):
    import mteb

    tasks = []
    for key in names:
        name = TASKS[key]
        splits = None
        if key in ("passkey", "needle"):
            splits = [f"test_{n}" for n in lengths]
        task = mteb.get_task(name, eval_splits=splits)
        task.load_data()
        task.convert_v1_dataset_format_to_v2(num_proc=None)
        if limit:
            for subset in task.dataset.values():
                for split in list(subset):
                    subset[split] = trim_split(subset[split], limit)
        tasks.append(task)
    return tasks


def trim_split(data: dict, limit: int) -> dict:
    """Keep the first ``limit`` queries and at most ``2*limit`` documents (relevant ones first)."""
    queries = data["queries"].select(range(min(limit, len(data["queries"]))))
    qids = list(queries["id"])
    rel = {q: data["relevant_docs"][q] for q in qids if q in data["relevant_docs"]}
    wanted = []
    for q in qids:
        for d in rel.get(q, {}):
            if d not in wanted:
                wanted.append(d)
    ids = list(data["corpus"]["id"])
    for d in ids:
        if len(wanted) >= 2 * limit:
            break
        if d not in wanted:
            wanted.append(d)
    pos = {d: i for i, d in enumerate(ids)}
    corpus = data["corpus"].select(sorted(pos[d] for d in wanted if d in pos))
    return {**data, "queries": queries, "corpus": corpus, "relevant_docs": rel}


# -- results -------------------------------------------------------------------------------------


def label_slices(folder: Path, limit: int) -> None:
    """Make sliced results unmistakable: their dataset_revision gets ``+slice-limit<N>``."""
    for path in Path(folder).rglob("LEMB*.json"):
        data = json.loads(path.read_text())
        rev = str(data.get("dataset_revision", ""))
        if "+slice-limit" not in rev:
            data["dataset_revision"] = f"{rev}+slice-limit{limit}"
            path.write_text(json.dumps(data, indent=2))


def split_scores(result) -> dict:
    """TaskResult -> {split: main score} (ndcg_at_1 for the synthetic tasks, ndcg_at_10 QMSum)."""
    out = {}
    for split, entries in result.scores.items():
        out[split] = float(entries[0]["main_score"])
    return out


def render_table(rows: dict, models, times: dict, note: str) -> str:
    header = ["task", "split", *models, "published MiniLM"]
    lines = []
    for task, splits in rows.items():
        ordered = sorted(splits, key=lambda s: int(s.split("_")[1]) if s.startswith("test_") else 0)
        for split in ordered:
            cells = [splits[split].get(m) for m in models]
            ref = PUBLISHED_MINILM.get(task, {}).get(
                int(split.split("_")[1]) if split.startswith("test_") else split
            )
            lines.append([task, split, *cells, ref])
        if len(ordered) > 1:
            avg = [
                np.mean([splits[s][m] for s in ordered])
                if all(m in splits[s] for s in ordered)
                else None
                for m in models
            ]
            refs = [PUBLISHED_MINILM.get(task, {}).get(int(s.split("_")[1])) for s in ordered]
            lines.append([task, "average", *avg, np.mean(refs) if None not in refs else None])
            long_splits = [s for s in ordered if int(s.split("_")[1]) >= 1024]
            if long_splits and len(long_splits) < len(ordered):
                avg = [
                    np.mean([splits[s][m] for s in long_splits])
                    if all(m in splits[s] for s in long_splits)
                    else None
                    for m in models
                ]
                refs = [
                    PUBLISHED_MINILM.get(task, {}).get(int(s.split("_")[1])) for s in long_splits
                ]
                lines.append(
                    [task, "avg >=1024", *avg, np.mean(refs) if None not in refs else None]
                )
    lines.append(["wall time", "seconds", *[times.get(m) for m in models], None])

    def fmt(v):
        if v is None:
            return "-"
        return (
            f"{v:.4f}"
            if isinstance(v, float) and v <= 1.0
            else (f"{v:.0f}" if isinstance(v, float) else str(v))
        )

    table = [header] + [[fmt(c) for c in row] for row in lines]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    out = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(table[0], widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    out += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in table[1:]
    ]
    return "\n".join(out) + "\n" + note


# -- why: accuracy by where the pass key / needle sits -------------------------------------------


def position_analysis(
    models,
    task_keys,
    lengths,
    data_dir: Path,
    buckets: int = 4,
    batch_size: int = 32,
    weights: str | None = None,
    shared: SharedPoolingCache | None = None,
) -> str:
    """acc@1 per model, length and position bucket of the relevant document's key/needle.

    Uses the generators directly (same data as the tasks) and ``lam_mteb.get_encoder``; cosine
    similarity, ties broken by the stored order (as mteb does).  A truncating model can only
    succeed in the first bucket(s); a streaming model that forgets early tokens fails in the
    first ones.
    """
    import lam_mteb
    from lam_mteb_plugins.longembed import needle, passkey

    shared = shared or SharedPoolingCache()
    encoders = {}
    for name in models:
        params = {"weights": weights} if weights and name.startswith("lam") else {}
        enc = lam_mteb.get_encoder(name, **params)
        if not callable(getattr(enc, "encode", None)):
            continue  # a search model (bm25): no vectors to compare here
        if getattr(enc, "pooling", None) is not None:
            shared.wrap(enc, enc.pooling)
        encoders[name] = enc
    lines = [
        "| task | length | model | "
        + " | ".join(
            f"pos {100 * b // buckets}-{100 * (b + 1) // buckets}%" for b in range(buckets)
        )
        + " | all |",
        "|" + "---|" * (buckets + 4),
    ]
    for key in task_keys:
        if key == "passkey":
            data = passkey.generate(lengths=lengths)
            pos_key = "key_position"
        elif key == "needle":
            data = needle.generate(Path(data_dir) / needle.ESSAYS_DIR, lengths=lengths)
            pos_key = "needle_position"
        else:
            continue
        for length, split in sorted(data.items()):
            docs = split["corpus"]
            ids = [d["_id"] for d in docs]
            relevant = {r["query-id"]: ids.index(r["corpus-id"]) for r in split["qrels"]}
            for name, enc in encoders.items():
                if callable(getattr(enc, "similarity", None)):  # e.g. chunked MaxSim (multi-vector)
                    D = enc.encode(
                        [d["text"] for d in docs], batch_size=batch_size, prompt_type="document"
                    )
                    Q = enc.encode(
                        [q["text"] for q in split["queries"]],
                        batch_size=batch_size,
                        prompt_type="query",
                    )
                    top = np.asarray(enc.similarity(Q, D)).argmax(1)
                else:
                    D = np.asarray(
                        enc.encode([d["text"] for d in docs], batch_size=batch_size),
                        dtype=np.float32,
                    )
                    Q = np.asarray(
                        enc.encode([q["text"] for q in split["queries"]], batch_size=batch_size),
                        dtype=np.float32,
                    )
                    D /= np.linalg.norm(D, axis=1, keepdims=True).clip(1e-12)
                    Q /= np.linalg.norm(Q, axis=1, keepdims=True).clip(1e-12)
                    top = (Q @ D.T).argmax(1)
                hits = [[] for _ in range(buckets)]
                for q, t in zip(split["queries"], top, strict=True):
                    rel = relevant[q["_id"]]
                    b = min(buckets - 1, int(buckets * docs[rel][pos_key] / length))
                    hits[b].append(float(t == rel))
                cells = [f"{np.mean(h):.2f} ({len(h)})" if h else "-" for h in hits]
                total = np.mean([x for h in hits for x in h])
                lines.append(
                    f"| {key} | {length} | {name} | " + " | ".join(cells) + f" | {total:.2f} |"
                )
    return "\n".join(lines) + "\n(acc@1 per bucket, number of queries in brackets)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument(
        "--lengths",
        nargs="+",
        type=int,
        default=list(LENGTHS),
        help="context lengths of Passkey/Needle to run (default: all eight)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        help="keep N queries and 2N documents per split (a smoke test, not a score)",
    )
    p.add_argument("--output-folder", default="results/long_context")
    p.add_argument("--data-dir", default=None, help="default: $LAM_MTEB_DATA_DIR")
    p.add_argument("--no-share", action="store_true", help="run every LAM pooling in its own pass")
    p.add_argument(
        "--vector-cache",
        default=None,
        metavar="DIR",
        help="keep the LAM pass's mean/state vectors in DIR (keyed by weights, chunk size, "
        "text): a rerun, e.g. with another hybrid weight, re-encodes nothing",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", default=None, help="also write the table's numbers to this JSON file")
    p.add_argument("--verbose", action="store_true", help="keep mteb's logs and progress bars")
    p.add_argument(
        "--by-position",
        action="store_true",
        help="after the mteb run, also print acc@1 of Passkey/Needle by where the key/needle "
        "sits, on the full splits of --lengths (reuses the LAM embeddings)",
    )
    p.add_argument(
        "--only-by-position", action="store_true", help="only that analysis, no mteb run"
    )
    p.add_argument(
        "--weights",
        default=None,
        help="with --only-by-position: a LAM checkpoint folder for the lam-* models (for "
        "mteb runs add a registry.yaml entry instead, so results get their own revision)",
    )
    args = p.parse_args(argv)

    bad = [n for n in args.lengths if n not in LENGTHS]
    if bad:
        p.error(f"--lengths must be among {LENGTHS}, got {bad}")
    if args.data_dir:
        os.environ["LAM_MTEB_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if not os.environ.get("LAM_MTEB_DATA_DIR"):
        p.error("set LAM_MTEB_DATA_DIR (or --data-dir) to the folder holding qmsum/ and longtext/")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.verbose:
        import logging

        os.environ.setdefault("TQDM_DISABLE", "1")
        logging.disable(logging.INFO)

    if args.only_by_position:
        print(
            position_analysis(
                args.models,
                args.tasks,
                args.lengths,
                Path(os.environ["LAM_MTEB_DATA_DIR"]),
                batch_size=args.batch_size,
                weights=args.weights,
                shared=SharedPoolingCache(args.vector_cache),
            )
        )
        return 0

    import mteb
    from mteb.cache import ResultCache

    out = Path(args.output_folder + ("-slice" if args.limit else ""))
    cache = ResultCache(out)
    t0 = time.perf_counter()
    tasks = load_tasks(args.tasks, args.lengths, args.limit)
    load_time = time.perf_counter() - t0
    shared = SharedPoolingCache(args.vector_cache)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    times: dict[str, float] = {}
    for name in args.models:
        start = time.perf_counter()
        model = mteb.get_model(name)
        encoder = getattr(model, "encoder", None)
        pooling = getattr(encoder, "pooling", None)
        if not args.no_share and encoder is not None and pooling is not None:
            shared.wrap(encoder, pooling)
        result = mteb.evaluate(
            model,
            tasks,
            cache=cache,
            overwrite_strategy="always",
            encode_kwargs={"batch_size": args.batch_size, "show_progress_bar": args.verbose},
            show_progress_bar=args.verbose,
        )
        times[name] = time.perf_counter() - start
        if args.limit:
            label_slices(out, args.limit)
        for tr in result.task_results:
            for split, score in split_scores(tr).items():
                rows.setdefault(tr.task_name, {}).setdefault(split, {})[name] = score
        print(f"[{name}] {times[name]:.0f} s", file=sys.stderr, flush=True)

    total = sum(times.values()) + load_time
    note = (
        f"main score: accuracy@1 (nDCG@1) for Passkey/Needle, nDCG@10 for QMSum; data: lam-mteb "
        f"LOCAL RE-CREATION (not the published sets; 'published MiniLM' is on the published data)."
        f"\ndata loading/building {load_time:.0f} s; total {total:.0f} s ({total / 60:.1f} min); "
        f"results in {out}/results/"
        + (f"\nSLICE: --limit {args.limit} (smoke test, not a score)" if args.limit else "")
        + (
            ""
            if args.no_share
            else "\nLAM poolings share one streaming pass: the first LAM "
            "model's time includes all three."
        )
    )
    print(render_table(rows, args.models, times, note), flush=True)
    if args.by_position:
        start = time.perf_counter()
        print(
            position_analysis(
                args.models,
                [t for t in args.tasks if t != "qmsum"],
                args.lengths,
                Path(os.environ["LAM_MTEB_DATA_DIR"]),
                batch_size=args.batch_size,
                shared=shared,
            )
        )
        print(f"position analysis {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "scores": rows,
                    "wall_time_s": times,
                    "load_time_s": load_time,
                    "limit": args.limit,
                    "lengths": args.lengths,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
