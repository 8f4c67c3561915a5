"""``lam-mteb distill-v2``: train LAM v2's memory (gates + write strengths) on long documents.

Self-supervised: documents of ``--windows`` consecutive windows (``--chunk-size`` tokens each) are
cut from ``longtext/`` (Gutenberg, Paul Graham essays, WikiText-2; the last ``--heldout`` fraction
of every file is held out).  For each document of a batch a "sentence" (a span of ``--query-tokens``
word pieces) is taken from a random place; its embedding (one chunk: exactly MiniLM's, no
memory) must find its document's embedding (mean pooling over all windows, read through the memory)
among the batch's other documents (InfoNCE, temperature ``--temperature``).  Only the memory's
gates and beta projections learn (27 792 parameters); everything MiniLM stays frozen, so texts of
one chunk (STS-B, almost all SciFact) keep MiniLM's exact vectors: no short-text distillation term
is needed to protect STS-B.  The IDF table of the lexical channel is fitted on STS-B train +
``longtext`` once at the start.

Resumable (``OUTPUT/trainer_state.pt`` every ``--save-every`` steps, ``--resume``), stops cleanly
after ``--max-minutes``; writes ``config.json`` + ``model.safetensors`` (float16, ~120 KB) with
provenance (command, settings, steps, minutes, held-out accuracy before and after).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lam_mteb.atomic import atomic_file

if TYPE_CHECKING:
    import argparse

    import torch

    from lam_mteb import LamMtebError
    from lam_mteb.contract import SubParsers
    from lam_mteb_plugins.lam.text import LamTokenizer
    from lam_mteb_plugins.lam.v2 import LamV2Model


def _error(message: str) -> LamMtebError:
    from lam_mteb import LamMtebError

    return LamMtebError(message)


def long_documents(
    data_dir: Path, tokenizer: LamTokenizer, content: int, windows: int, heldout: float
) -> tuple[list[list[int]], list[list[int]]]:
    """(train, held-out) lists of token lists of ``windows * content`` word pieces."""
    files = [
        f
        for f in sorted((data_dir / "longtext").rglob("*.txt"))
        if "LICENSE" not in f.name and "PROVENANCE" not in f.name
    ]
    if not files:
        raise _error(f"no long text under {data_dir / 'longtext'}: pass --data-dir with longtext/")
    size = content * windows
    train: list[list[int]] = []
    dev: list[list[int]] = []
    for f in files:
        ids = [
            i
            for piece in tokenizer.iter_ids(f.read_text(encoding="utf-8", errors="replace"))
            for i in piece
        ][1:-1]
        docs = [ids[j : j + size] for j in range(0, len(ids) - size + 1, size)]
        cut = int(len(docs) * (1 - heldout))
        train += docs[:cut]
        dev += docs[cut:]
    return train, dev


def make_batch(
    docs: Sequence[list[int]], rng: random.Random, batch: int, query_tokens: int, content: int
) -> tuple[list[list[int]], list[list[int]]]:
    idx = rng.sample(range(len(docs)), min(batch, len(docs)))
    ds: list[list[int]] = []
    qs: list[list[int]] = []
    for i in idx:
        d = docs[i]
        s = rng.randrange(0, len(d) - query_tokens)
        ds.append(d)
        qs.append(d[s : s + query_tokens])
    return ds, qs


def embed_docs(
    model: LamV2Model,
    docs: Sequence[list[int]],
    content: int,
    cls_id: int,
    sep_id: int,
    grad: bool = True,
) -> torch.Tensor:
    """Mean over all windows' tokens with the memory carried (the lam2 ``mean`` pooling)."""
    import torch
    import torch.nn.functional as F

    n_win = len(docs[0]) // content
    states: list[torch.Tensor | None] | None = None
    total: torch.Tensor | int = 0
    count = 0
    with torch.set_grad_enabled(grad):
        for w in range(n_win):
            x = torch.tensor([[cls_id, *d[w * content : (w + 1) * content], sep_id] for d in docs])
            m = torch.ones(x.shape, dtype=torch.float32)
            h, states = model.forward_chunk(x, m, states, write=w < n_win - 1)
            total = total + h.sum(1)
            count += x.shape[1]
        assert isinstance(total, torch.Tensor)  # a document has at least one window
        return F.normalize(total / count, dim=-1)


def embed_queries(
    model: LamV2Model, qs: Sequence[list[int]], cls_id: int, sep_id: int
) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        x = torch.tensor([[cls_id, *q, sep_id] for q in qs])
        h, _ = model.forward_chunk(x, torch.ones(x.shape))
        return F.normalize(h.mean(1), dim=-1)


def heldout_accuracy(
    model: LamV2Model,
    dev: Sequence[list[int]],
    args: argparse.Namespace,
    cls_id: int,
    sep_id: int,
    batches: int = 6,
) -> float:
    """In-batch top-1 accuracy of sentence -> document on held-out documents (fixed batches)."""
    import torch

    rng = random.Random(1234)
    hits, n = 0, 0
    for _ in range(batches):
        ds, qs = make_batch(dev, rng, args.batch, args.query_tokens, args.chunk_size - 2)
        d = embed_docs(model, ds, args.chunk_size - 2, cls_id, sep_id, grad=False)
        q = embed_queries(model, qs, cls_id, sep_id)
        hits += int((torch.argmax(q @ d.T, dim=1) == torch.arange(len(ds))).sum())
        n += len(ds)
    return hits / max(1, n)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    keep = (
        "chunk_size",
        "windows",
        "batch",
        "query_tokens",
        "temperature",
        "lr",
        "seed",
        "heldout",
    )
    return {k: getattr(args, k) for k in keep}


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The data folder (with longtext/) and the output folder, checked before any work."""
    import os

    data_dir = Path(args.data_dir or os.environ.get("LAM_MTEB_DATA_DIR", ""))
    if not str(data_dir) or not (data_dir / "longtext").is_dir():
        raise _error(
            "lam-mteb distill-v2 needs the data folder with longtext/ and stsbenchmark/: "
            "pass --data-dir or set LAM_MTEB_DATA_DIR"
        )
    out = Path(args.output)
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise _error(f"{out} is not empty: pass --resume to continue it or choose another --output")
    return data_dir, out


def _model_and_documents(
    args: argparse.Namespace, data_dir: Path
) -> tuple[LamTokenizer, LamV2Model, list[list[int]], list[list[int]]]:
    """MiniLM with a fresh memory and the IDF table fitted, and the (train, held-out) documents."""
    import torch

    from lam_mteb_plugins.lam.text import LamTokenizer
    from lam_mteb_plugins.lam.v2 import LamV2Config, LamV2Model, fit_idf, idf_corpus

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tok = LamTokenizer()
    model = LamV2Model.from_base(LamV2Config(chunk_size=args.chunk_size))
    model.lexical_idf.copy_(fit_idf(tok, idf_corpus(data_dir)))
    train, dev = long_documents(data_dir, tok, args.chunk_size - 2, args.windows, args.heldout)
    if len(train) < args.batch or len(dev) < args.batch:
        raise _error(
            f"too few long documents ({len(train)} train, {len(dev)} held out) "
            f"for --batch {args.batch}"
        )
    return tok, model, train, dev


class _Progress:
    """Where a distill-v2 run stands (steps, minutes, loss history, accuracy at init), saved to
    and resumed from ``OUTPUT/trainer_state.pt``."""

    def __init__(self, args: argparse.Namespace, state_file: Path) -> None:
        self.args, self.state_file = args, state_file
        self.step, self.minutes = 0, 0.0
        self.history: list[float] = []
        self.acc0: float | None = None
        self.t0 = time.perf_counter()

    def resume(self, model: LamV2Model, opt: torch.optim.Optimizer) -> None:
        if not (self.args.resume and self.state_file.is_file()):
            return
        st = self.load(self.state_file)
        if st["settings"] != _settings(self.args):
            raise _error(
                f"--resume: {self.state_file} was made with other settings {st['settings']}"
            )
        model.load_state_dict(st["model"], strict=False)
        opt.load_state_dict(st["opt"])
        self.step, self.minutes, self.history = st["step"], st["minutes"], st["history"]
        self.acc0 = st["acc0"]

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        """The saved state: tensors, dicts, lists and numbers only (``weights_only``), so a crafted
        file cannot run code; an unreadable one is one error naming it."""
        import pickle

        import torch

        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise _error(
                f"--resume: {path} is not a trainer state this version can read "
                f"({type(exc).__name__}: {first}); remove it to start over"
            ) from None
        return state

    def total_minutes(self) -> float:
        return self.minutes + (time.perf_counter() - self.t0) / 60

    def save(self, model: LamV2Model, opt: torch.optim.Optimizer) -> None:
        import torch

        # tensors, dicts, lists and plain numbers only: resume() reads it with weights_only
        with atomic_file(self.state_file) as tmp:
            torch.save(
                {
                    "model": {k: v for k, v in model.state_dict().items() if ".mem_" in k},
                    "opt": opt.state_dict(),
                    "step": self.step,
                    "settings": _settings(self.args),
                    "minutes": self.total_minutes(),
                    "history": self.history,
                    "acc0": self.acc0,
                },
                tmp,
            )


def _train_steps(
    args: argparse.Namespace,
    model: LamV2Model,
    opt: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    train: Sequence[list[int]],
    tok: LamTokenizer,
    progress: _Progress,
) -> bool:
    """InfoNCE steps until ``--steps`` (True) or ``--max-minutes`` (False, to be resumed)."""
    import torch
    from tqdm.auto import tqdm

    content = args.chunk_size - 2
    rng = random.Random(args.seed * 1000 + progress.step)
    bar = tqdm(total=args.steps, initial=progress.step, desc="distill-v2", disable=args.quiet)
    finished = True
    while progress.step < args.steps:
        if args.max_minutes and progress.total_minutes() > args.max_minutes:
            finished = False
            break
        ds, qs = make_batch(train, rng, args.batch, args.query_tokens, content)
        q = embed_queries(model, qs, tok.cls_id, tok.sep_id)
        d = embed_docs(model, ds, content, tok.cls_id, tok.sep_id)
        loss = torch.nn.functional.cross_entropy(q @ d.T / args.temperature, torch.arange(len(ds)))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        progress.step += 1
        gates = torch.stack([mem.mem_gate.detach().abs().mean() for mem in model.memories()])
        progress.history.append(round(float(loss.detach()), 4))
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", gate=f"{float(gates.mean()):.3f}")
        if progress.step % args.save_every == 0:
            progress.save(model, opt)
    bar.close()
    return finished


def _training_record(
    args: argparse.Namespace,
    model: LamV2Model,
    progress: _Progress,
    minutes: float,
    acc1: float,
    train: Sequence[list[int]],
    dev: Sequence[list[int]],
) -> dict:
    """Provenance written into the checkpoint's config.json."""
    from lam_mteb_plugins.lam.v2 import n_trainable

    history = progress.history
    return {
        "command": "lam-mteb distill-v2 " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else []),
        "settings": _settings(args),
        "steps": progress.step,
        "minutes": round(minutes, 2),
        "heldout_accuracy_init": progress.acc0,
        "heldout_accuracy_trained": acc1,
        "train_documents": len(train),
        "heldout_documents": len(dev),
        "loss_first_last": [history[0], history[-1]] if history else None,
        "data": "longtext/ (Gutenberg, Paul Graham essays, WikiText-2) + STS-B train (IDF only)",
        "trainable_parameters": n_trainable(model),
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from lam_mteb_plugins.lam.v2 import save_v2

    data_dir, out = _paths(args)
    tok, model, train, dev = _model_and_documents(args, data_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    progress = _Progress(args, out / "trainer_state.pt")
    progress.resume(model, opt)
    model.train()
    if progress.acc0 is None:
        progress.acc0 = heldout_accuracy(model.eval(), dev, args, tok.cls_id, tok.sep_id)
        print(
            f"held-out sentence->document accuracy at init: {progress.acc0:.3f}",
            file=sys.stderr,
            flush=True,
        )
    progress.t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    finished = _train_steps(args, model, opt, params, train, tok, progress)
    progress.save(model, opt)
    total_minutes = progress.total_minutes()
    if not finished:
        print(
            f"stopped after {total_minutes:.1f} min at step {progress.step}/{args.steps}; "
            "continue with --resume",
            file=sys.stderr,
        )
        return 0
    acc1 = heldout_accuracy(model.eval(), dev, args, tok.cls_id, tok.sep_id)
    print(
        f"held-out sentence->document accuracy: init {progress.acc0:.3f} -> trained {acc1:.3f}",
        file=sys.stderr,
    )
    training = _training_record(args, model, progress, total_minutes, acc1, train, dev)
    save_v2(model, out, training=training)
    print(f"wrote {out}/config.json and model.safetensors", file=sys.stderr)
    return 0


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    from lam_mteb_plugins.lam.distill import add_command, add_run_options

    p = add_command(
        subparsers,
        "distill-v2",
        "train LAM v2's memory on long documents (see docs/lam.md)",
        __doc__,
    )
    p.add_argument("--chunk-size", type=int, default=256, help="window size incl. [CLS]/[SEP]")
    p.add_argument("--windows", type=int, default=4, help="windows per training document")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--query-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--heldout", type=float, default=0.1)
    add_run_options(p, save_every=10, threads=1)
    p.set_defaults(func=run)
    return p
