"""Training of LVM-T / AMN on cached chunk vectors, and the ``lam-mteb train-lvm`` command.

Objective (the user's lessons, seeds 003/004): ``w_cos * (1 - cos(pred, next))`` +
``w_mse * ||pred - next||^2`` (both on unit vectors) + optional ``w_nce * InfoNCE`` computed on
the raw output vectors against *all train chunks* (no projection head; the query's own context
chunks are masked out of the softmax exactly as they are excluded from the evaluation pool).
The model predicts a residual over the linear average (see models.py).  Each epoch is scored on
dev; the checkpoint is the epoch with the best dev R@5 among the epochs whose dev cosine beats
the linear average's (epoch 0 = the untrained model = the linear average); when no epoch beats
it on cosine, the epoch with the best dev cosine (possibly epoch 0).  Test is never looked at
during training.

Resumable: ``<out>/.train_state/`` holds the last epoch's weights, optimiser and history; running
the same command again continues from there.  On completion ``<out>`` holds ``config.json`` +
``model.safetensors`` (the best dev epoch) and the state folder is removed.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import lam_mteb
from lam_mteb.contract import encode_texts

from . import data, metrics, vectors

if TYPE_CHECKING:
    import argparse

    import torch
    from torch import nn

    from lam_mteb.contract import Embeddings, SubParsers

#: a split's (context chunk indices, target chunk index) windows (``SequenceData.sequences``)
Sequences = list[tuple[list[int], int]]
#: where progress lines go (``print`` by default)
Log = Callable[[str], object]
#: ``on_epoch(epoch, model)``: called after every epoch with the model in eval mode
OnEpoch = Callable[[int, "nn.Module"], object]

# Defaults chosen on the dev split of ../shared/data/longtext (docs/lvm.md, "what we tried").
DEFAULTS: dict[str, dict[str, Any]] = {
    "lvm-t": {
        "model": {
            "d_model": 256,
            "n_layers": 2,
            "n_heads": 4,
            "ff_mult": 2,
            "dropout": 0.1,
            "mix": True,
        },
        "lr": 5e-4,
        "weight_decay": 0.05,
        "epochs": 8,
        "w_nce": 0.1,
        "tau": 0.1,
        "w_doc": 0.0,
        "select": "legacy",
    },
    "amn": {
        "model": {"attn_dim": 64, "n_heads": 4, "hidden": 256, "dropout": 0.5},
        "lr": 1e-3,
        "weight_decay": 0.5,
        "epochs": 8,
        "w_nce": 0.05,
        "tau": 0.1,
        "w_doc": 0.0,
        "select": "legacy",
    },
    # lvm-r: the sweep's best by the all-baselines rule on dev
    # (research/lvm_sweep.py, docs/lvm.md)
    "lvm-r": {
        "model": {"hidden": 64, "dropout": 0.5, "content_mix": True, "global_bias": True},
        "lr": 3e-4,
        "weight_decay": 0.5,
        "epochs": 4,
        "w_nce": 0.05,
        "tau": 0.1,
        "w_doc": 0.2,
        "select": "all_baselines",
    },
}


def _parse_value(v: str) -> Any:
    try:
        return json.loads(v.lower() if v.lower() in ("true", "false") else v)
    except json.JSONDecodeError:
        return v


def _hparams(args: argparse.Namespace) -> dict:
    base = DEFAULTS[args.arch]
    model_cfg = dict(base["model"])
    for k, v in args.model_param or []:
        model_cfg[k] = _parse_value(v)

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return base[name] if value is None else value

    return {
        "arch": args.arch,
        "model": model_cfg,
        "epochs": pick("epochs"),
        "batch_size": args.batch_size,
        "lr": pick("lr"),
        "weight_decay": pick("weight_decay"),
        "w_cos": args.w_cos,
        "w_mse": args.w_mse,
        "w_nce": pick("w_nce"),
        "tau": pick("tau"),
        "w_doc": pick("w_doc"),
        "seed": args.seed,
        "select": pick("select"),
    }


def select_key(scores: dict, baseline: dict) -> tuple:
    """Epoch ranking: beating the linear average's dev cosine first, then dev R@5 (or cosine)."""
    beats = scores["dev_cosine_mean"] > baseline["dev_cosine_mean"]
    return (int(beats), scores["dev_recall_at_5"] if beats else scores["dev_cosine_mean"])


#: the metrics on which ``select = "all_baselines"`` requires an epoch to beat every baseline
SELECT_METRICS = ("cosine_mean", "recall_at_1", "recall_at_5")
SELECT_RULES = {
    "legacy": "dev_recall_at_5 | dev_cosine_mean > linear average",
    "all_baselines": "max over epochs of min over (cosine_mean, recall_at_1, recall_at_5) of "
    "the relative dev margin over the best baseline on that metric; an epoch qualifies only if all "
    "three margins are > 0",
}


def dev_baselines(
    train_vecs: np.ndarray, dev_vecs: np.ndarray, dev_seqs: Sequences, seed: int = 42
) -> dict:
    """Metrics of the four baselines (random, mean vector of train, persistence, linear average)
    on one split (dev during training; the report also scores test with it)."""
    pool = metrics.normalize(dev_vecs)
    ctx, tgt, ex = metrics.sequence_arrays(pool, dev_seqs)
    fns = {
        "random": metrics.random_predictor(pool.shape[1], seed=seed),
        "mean_vector": metrics.mean_predictor(metrics.normalize(train_vecs)),
        "persistence": metrics.persistence,
        "linear_average": metrics.linear_average,
    }
    return {
        name: metrics.evaluate_predictor(fn, ctx, tgt, pool, ex, latency_calls=0)
        for name, fn in fns.items()
    }


def margin_key(scores: dict, baselines: dict) -> tuple:
    """``all_baselines`` rule: (qualifies, min relative margin over the best baseline per
    metric)."""
    margins = []
    for m in SELECT_METRICS:
        best = max(b[m] for b in baselines.values())
        margins.append((scores[f"dev_{m}"] - best) / max(abs(best), 1e-9))
    worst = min(margins)
    return (int(worst > 0), worst)


def _optimizer(model: nn.Module, hp: dict) -> torch.optim.AdamW:
    """AdamW whose position preferences (AMN's per-head position biases: a handful of numbers)
    learn with a larger step and no weight decay; everything content-dependent uses lr /
    weight_decay."""
    import torch

    fast_names = getattr(model, "fast_params", ())
    fast = [p for n, p in model.named_parameters() if n in fast_names]
    slow = [p for n, p in model.named_parameters() if n not in fast_names]
    mult = hp.get("fast_lr_mult", 10.0)
    return torch.optim.AdamW(
        [
            {"params": slow, "lr_mult": 1.0, "weight_decay": hp["weight_decay"]},
            {"params": fast, "lr_mult": mult, "weight_decay": 0.0},
        ],
        lr=hp["lr"],
    )


def _lr_schedule(hp: dict, steps_per_epoch: int) -> Callable[[int], float]:
    """Learning rate at a step: linear warm-up over half an epoch, then cosine decay."""
    total = steps_per_epoch * hp["epochs"]
    warm = max(1, steps_per_epoch // 2)

    def lr_at(step: int) -> float:
        if step < warm:
            return hp["lr"] * (step + 1) / warm
        return (
            hp["lr"]
            * 0.5
            * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
        )

    return lr_at


class _DocNegatives:
    """The document-level negatives of the ``w_doc`` / ``w_near`` losses: which train chunks
    belong to the target's document, and which lie within reach of it."""

    def __init__(self, train_docs: np.ndarray, reach: int) -> None:
        import torch

        _, doc_codes = np.unique(np.asarray(train_docs), return_inverse=True)
        self.chunk_doc = torch.as_tensor(doc_codes.astype(np.int64))
        self.chunk_pos = torch.arange(len(doc_codes))  # a document's chunks are contiguous
        self.reach = reach  # context window + `near` chunks on either side of the target

    def other_doc(self, ti: torch.Tensor) -> torch.Tensor:
        return self.chunk_doc[None, :] != self.chunk_doc[ti][:, None]

    def far(self, ti: torch.Tensor) -> torch.Tensor:
        return self.other_doc(ti) | ((self.chunk_pos[None, :] - ti[:, None]).abs() > self.reach)


def _batch_loss(
    hp: dict,
    pred: torch.Tensor,
    tv: torch.Tensor,
    ci: torch.Tensor,
    ti: torch.Tensor,
    docs: _DocNegatives | None,
) -> torch.Tensor:
    """The training objective on one batch (see the module docstring)."""
    from torch.nn import functional as F

    w_doc, w_near = hp.get("w_doc", 0.0), hp.get("w_near", 0.0)
    y = tv[ti]
    loss = hp["w_cos"] * (1 - (pred * y).sum(-1)).mean()
    if hp["w_mse"]:
        loss = loss + hp["w_mse"] * ((pred - y) ** 2).sum(-1).mean()
    if not (hp["w_nce"] or w_doc or w_near):
        return loss
    logits = pred @ tv.T / hp["tau"]  # raw vectors, whole train pool
    logits = logits.scatter(1, ci, float("-inf"))  # the query's own context chunks
    if hp["w_nce"]:
        loss = loss + hp["w_nce"] * F.cross_entropy(logits, ti)
    if w_doc:  # hard negatives: only the other chunks of the target's own document
        assert docs is not None
        loss = loss + w_doc * F.cross_entropy(logits.masked_fill(docs.other_doc(ti), -math.inf), ti)
    if w_near:  # the hardest negatives: the target's neighbours in its own document
        assert docs is not None
        loss = loss + w_near * F.cross_entropy(logits.masked_fill(docs.far(ti), -math.inf), ti)
    return loss


class _Trainer:
    """One training run of :func:`train_model`: the model, its optimiser, the data as tensors,
    the dev scoring and the resumable state folder."""

    def __init__(
        self,
        hp: dict,
        train_vecs: np.ndarray,
        train_seqs: Sequences,
        dev_vecs: np.ndarray,
        dev_seqs: Sequences,
        out_dir: str | Path | None,
        log: Log,
    ) -> None:
        import torch

        from .models import build

        torch.manual_seed(hp["seed"])
        self.rng = np.random.default_rng(hp["seed"])
        self.hp, self.log = hp, log
        self.dim, self.context = train_vecs.shape[1], len(train_seqs[0][0])
        self.model = build(hp["arch"], dim=self.dim, context=self.context, **hp["model"])
        self.opt = _optimizer(self.model, hp)
        self.tv = torch.as_tensor(metrics.normalize(train_vecs))
        self.ctx_idx = torch.as_tensor(np.array([c for c, _ in train_seqs], dtype=np.int64))
        self.tgt_idx = torch.as_tensor(np.array([t for _, t in train_seqs], dtype=np.int64))
        self.dev_pool = metrics.normalize(dev_vecs)
        self.dev_ctx, self.dev_tgt, self.dev_ex = metrics.sequence_arrays(self.dev_pool, dev_seqs)
        self.n = len(train_seqs)
        self.steps_per_epoch = math.ceil(self.n / hp["batch_size"])
        self.lr_at = _lr_schedule(hp, self.steps_per_epoch)
        self.state_dir = Path(out_dir) / ".train_state" if out_dir else None
        self.history: list[dict] = []
        self.start_epoch = 0
        #: the best epoch so far: epoch, score, dev scores (+ "state" without a state folder)
        self.best: dict[str, Any] | None = None
        self.baselines: dict[str, dict[str, float]] | None = None
        self.docs: _DocNegatives | None = None

    def checkpoint_config(self) -> dict:
        model_cfg = {"dim": self.dim, "context": self.context, **self.hp["model"]}
        return {"arch": self.hp["arch"], "model": model_cfg}

    def key(self, scores: dict) -> tuple:
        if self.baselines is not None:
            return margin_key(scores, self.baselines)
        return select_key(scores, self.history[0])

    def resume(self) -> None:
        """Continue from the state folder when it was made with the same hyper-parameters."""
        import torch

        if not self.state_dir:
            return
        state_file = self.state_dir / "trainer_state.json"
        if not state_file.exists():
            return
        st = json.loads(state_file.read_text())
        if st.get("hparams") != self.hp:
            self.log(
                f"ignoring training state in {self.state_dir}: "
                "it was made with other hyper-parameters"
            )
            return
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(str(self.state_dir / "last.safetensors")))
        self.opt.load_state_dict(torch.load(self.state_dir / "optimizer.pt", weights_only=True))
        self.history, self.start_epoch, self.best = st["history"], st["epoch"] + 1, st.get("best")
        self.rng = np.random.default_rng([self.hp["seed"], self.start_epoch])
        torch.manual_seed(self.hp["seed"] + self.start_epoch)
        self.log(
            f"resuming {self.hp['arch']} from epoch {self.start_epoch} (state in {self.state_dir})"
        )

    def dev_scores(self) -> dict:
        import torch

        self.model.eval()
        with torch.inference_mode():
            preds = self.model(torch.as_tensor(self.dev_ctx)).numpy()
        self.model.train()
        ranks = metrics.target_ranks(preds, self.dev_pool, self.dev_tgt, self.dev_ex)
        cos = metrics.cosine_rows(preds, self.dev_pool[self.dev_tgt])
        return {
            "dev_cosine_mean": float(cos.mean()),
            **{f"dev_{k}": v for k, v in metrics.retrieval_scores(ranks).items()},
        }

    def notify(self, on_epoch: OnEpoch | None, epoch: int) -> None:
        if on_epoch is not None:
            self.model.eval()
            on_epoch(epoch, self.model)
            self.model.train()

    def score_untrained(self) -> None:
        """Epoch 0 = the untrained model = the linear-average baseline."""
        from .models import save_checkpoint

        base = self.dev_scores()
        self.history.append({"epoch": 0, **base, "train_loss": None})
        self.best = {"epoch": 0, "score": self.key(base), **base}
        if self.state_dir:
            save_checkpoint(self.model, self.state_dir / "best", self.checkpoint_config())

    def train_epoch(self, epoch: int, progress: bool) -> float:
        """One pass over the train sequences in a random order; returns the mean loss."""
        import torch
        from tqdm.auto import tqdm

        hp, bs = self.hp, self.hp["batch_size"]
        perm = torch.as_tensor(self.rng.permutation(self.n))
        losses = []
        bar = tqdm(
            range(self.steps_per_epoch),
            desc=f"{hp['arch']} epoch {epoch}/{hp['epochs']}",
            disable=not progress,
            leave=False,
            file=sys.stderr,
        )
        for b in bar:
            step = (epoch - 1) * self.steps_per_epoch + b
            for g in self.opt.param_groups:
                g["lr"] = self.lr_at(step) * g["lr_mult"]
            idx = perm[b * bs : (b + 1) * bs]
            ci, ti = self.ctx_idx[idx], self.tgt_idx[idx]
            loss = _batch_loss(hp, self.model(self.tv[ci]), self.tv, ci, ti, self.docs)
            self.opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        return float(np.mean(losses))

    def save_state(self, epoch: int, improved: bool) -> None:
        """The resumable state after an epoch (or, without a state folder, the best weights in
        memory)."""
        import torch

        from .models import save_checkpoint

        assert self.best is not None  # score_untrained or resume set it
        if not self.state_dir:
            if improved:
                weights = self.model.state_dict().items()
                self.best["state"] = {k: v.detach().clone() for k, v in weights}
            return
        from safetensors.torch import save_file

        self.state_dir.mkdir(parents=True, exist_ok=True)
        if improved:
            save_checkpoint(self.model, self.state_dir / "best", self.checkpoint_config())
        save_file(
            {k: v.detach().contiguous() for k, v in self.model.state_dict().items()},
            str(self.state_dir / "last.safetensors"),
        )
        torch.save(self.opt.state_dict(), self.state_dir / "optimizer.pt")
        state = {"hparams": self.hp, "epoch": epoch, "best": self.best, "history": self.history}
        (self.state_dir / "trainer_state.json").write_text(json.dumps(state, indent=1))

    def record_epoch(self, epoch: int, train_loss: float, t0: float) -> None:
        """Score an epoch on dev, keep it when it is the best so far, save the state, log it."""
        sc = self.dev_scores()
        rec = {
            "epoch": epoch,
            **sc,
            "train_loss": train_loss,
            "elapsed_s": round(time.time() - t0, 1),
        }
        self.history.append(rec)
        score = self.key(sc)
        assert self.best is not None  # score_untrained or resume set it
        improved = score > tuple(self.best["score"])
        if improved:
            self.best = {"epoch": epoch, "score": score, **sc}
        self.save_state(epoch, improved)
        self.log(
            f"{self.hp['arch']} epoch {epoch}: loss {rec['train_loss']:.4f}  "
            f"dev cos {sc['dev_cosine_mean']:.4f}  "
            f"dev R@1 {sc['dev_recall_at_1']:.4f}  dev R@5 {sc['dev_recall_at_5']:.4f}"
            + ("  *best*" if improved else "")
        )

    def best_model(self) -> nn.Module:
        """The best epoch's module, in eval mode."""
        from .models import build, load_checkpoint

        assert self.best is not None  # score_untrained or resume set it
        if self.state_dir:
            best_model, _ = load_checkpoint(self.state_dir / "best")
        else:
            best_model = build(
                self.hp["arch"], dim=self.dim, context=self.context, **self.hp["model"]
            )
            if "state" in self.best:
                best_model.load_state_dict(self.best.pop("state"))
            best_model.eval()
        self.best.pop("state", None)
        return best_model


def train_model(
    hp: dict,
    train_vecs: np.ndarray,
    train_seqs: Sequences,
    dev_vecs: np.ndarray,
    dev_seqs: Sequences,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    log: Log = print,
    train_docs: np.ndarray | None = None,
    on_epoch: OnEpoch | None = None,
) -> tuple[nn.Module, list[dict], dict[str, Any]]:
    """Train one model; returns (best module, history list, best-epoch record).  Resumes from
    ``out_dir`` state.  ``train_docs`` (one document id per train chunk) is needed when
    ``hp["w_doc"]`` or ``hp["w_near"]`` > 0 (losses whose negatives are chunks of the target's
    own document: all of them, or those within ``hp["near"]`` positions of the context window).
    ``on_epoch(epoch, model)`` is called after every epoch, epoch 0 (the untrained model)
    included, with the model in eval mode (research/lvm_cv_sweep.py records predictions)."""
    tr = _Trainer(hp, train_vecs, train_seqs, dev_vecs, dev_seqs, out_dir, log)
    select = hp.get("select", "legacy")
    if select not in SELECT_RULES:
        raise lam_mteb.LamMtebError(
            f"unknown selection rule {select!r}; choose one of {', '.join(SELECT_RULES)}"
        )
    if select == "all_baselines":
        tr.baselines = dev_baselines(train_vecs, dev_vecs, dev_seqs)
    if hp.get("w_doc", 0.0) or hp.get("w_near", 0.0):
        if train_docs is None:
            raise lam_mteb.LamMtebError(
                "w_doc / w_near > 0 need the document id of every train chunk (train_docs)"
            )
        tr.docs = _DocNegatives(train_docs, tr.context + hp.get("near", 3))
    tr.resume()
    if tr.start_epoch == 0:
        tr.notify(on_epoch, 0)
        tr.score_untrained()
    tr.model.train()
    t0 = time.time()
    for epoch in range(max(1, tr.start_epoch), hp["epochs"] + 1):
        train_loss = tr.train_epoch(epoch, progress)
        tr.notify(on_epoch, epoch)
        tr.record_epoch(epoch, train_loss, t0)
    model = tr.best_model()
    assert tr.best is not None  # score_untrained or resume set it
    return model, tr.history, tr.best


# --------------------------------------------------------------------------- data + vectors


def default_data_folder() -> Path:
    hint = " or pass --data <folder of plain-text documents>"
    return data.longtext_folder("lam-mteb train-lvm", hint)


def split_vectors(
    encode_fn: vectors.EncodeFn,
    sd: data.SequenceData,
    splits: Iterable[str] = ("train", "dev", "test"),
    log: Log = print,
) -> tuple[str, dict[str, np.ndarray]]:
    """Encoder fingerprint and (cached) vectors of every chunk of the given splits."""
    fp = vectors.fingerprint(encode_fn)
    out: dict[str, np.ndarray] = {}
    for s in splits:
        texts = [c.text for c in sd.chunks[s]]
        _, missing = vectors.lookup(fp, texts)
        if missing:
            log(
                f"encoding {len(missing)} of {len(texts)} {s} chunks (cached afterwards in "
                f"{lam_mteb.cache_dir() / 'lvm'})"
            )
        t = time.time()
        out[s] = vectors.encode_cached(encode_fn, texts, fp=fp)
        if missing:
            log(f"  {s}: {time.time() - t:.0f} s")
    return fp, out


def _encode_fn(encoder: lam_mteb.Encoder, batch_size: int = 64) -> vectors.EncodeFn:
    def f(texts: list[str]) -> Embeddings:
        return encode_texts(
            encoder,
            texts,
            prompt_type="document",
            batch_size=batch_size,
            show_progress_bar=len(texts) > 256,
        )

    return f


# --------------------------------------------------------------------------- CLI


def add_command(subparsers: SubParsers) -> None:
    p = subparsers.add_parser(
        "train-lvm",
        help="train an LVM-T / AMN next-vector predictor on chunk vectors",
        description="Train an LVM next-vector predictor (LVM-T or AMN) on the train split's chunk "
        "vectors, select the epoch on dev, report dev and test. Resumable: re-run the "
        "same command to continue an interrupted run.",
    )
    _model_and_data(p.add_argument_group("model and data"))
    _optimisation(p.add_argument_group("training"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again even if --out holds a finished checkpoint",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_command)


def _model_and_data(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--arch",
        choices=list(DEFAULTS),
        required=True,
        help="lvm-t (transformer), amn (attention + MLP) or lvm-r "
        "(persistence + learned correction)",
    )
    g.add_argument(
        "--out", required=True, help="checkpoint folder (config.json + model.safetensors)"
    )
    g.add_argument(
        "--data", help="folder of plain-text documents (default: $LAM_MTEB_DATA_DIR/longtext)"
    )
    g.add_argument("--encoder", default="minilm", help="registered base encoder (default: minilm)")
    g.add_argument("--context", type=int, default=5)
    g.add_argument("--target-words", type=int, default=64)
    g.add_argument("--split-seed", type=int, default=42)
    g.add_argument(
        "--model-param",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="override an architecture parameter, e.g. --model-param hidden 256",
    )


def _optimisation(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--epochs", type=int, default=None, help="default: 8 (lvm-t, amn), lvm-r: see docs/lvm.md"
    )
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument(
        "--lr", type=float, default=None, help="default: 5e-4 (lvm-t), 1e-3 (amn, lvm-r)"
    )
    g.add_argument(
        "--weight-decay", type=float, default=None, help="default: 0.05 (lvm-t, lvm-r), 0.5 (amn)"
    )
    g.add_argument("--w-cos", type=float, default=1.0)
    g.add_argument("--w-mse", type=float, default=0.0)
    g.add_argument(
        "--w-nce",
        type=float,
        default=None,
        help="InfoNCE weight (negatives: all train chunks), 0 = off "
        "(default: 0.1 for lvm-t, 0.05 for amn)",
    )
    g.add_argument("--tau", type=float, default=None, help="InfoNCE temperature (default: 0.1)")
    g.add_argument(
        "--w-doc",
        type=float,
        default=None,
        help="weight of an InfoNCE whose negatives are the other chunks of the target's document "
        "(hard negatives; default 0)",
    )
    g.add_argument(
        "--select",
        choices=list(SELECT_RULES),
        default=None,
        help="dev epoch selection: all_baselines = must beat every baseline on dev cosine, R@1 "
        "and R@5 (default for lvm-r); legacy = best R@5 among epochs above the linear "
        "average's cosine (default for lvm-t, amn)",
    )
    g.add_argument("--seed", type=int, default=0)


def _sequence_data(args: argparse.Namespace) -> tuple[Path, data.SequenceData]:
    """The chunked documents of --data (or the shared longtext folder), split and summarised."""
    folder = Path(args.data) if args.data else default_data_folder()
    sd = data.build_sequence_data(
        folder, context=args.context, target_words=args.target_words, seed=args.split_seed
    )
    print(
        f"data: {folder} -> "
        + ", ".join(
            f"{s}: {sd.stats[s + '_documents']} docs / {sd.stats[s + '_chunks']} chunks / "
            f"{sd.stats[s + '_sequences']} sequences"
            for s in data.SPLITS
        )
        + f"; skipped {sd.stats['skipped_short_documents']} documents with "
        f"< {args.context + 1} chunks"
    )
    if not sd.sequences("train") or not sd.sequences("dev"):
        raise lam_mteb.LamMtebError(
            "train-lvm needs train and dev sequences; use a larger folder of documents"
        )
    return folder, sd


def _evaluate_splits(model: nn.Module, vecs: dict[str, np.ndarray], sd: data.SequenceData) -> dict:
    """The trained model beside the four baselines on dev and test."""
    from .models import TorchPredictor

    report: dict[str, dict[str, dict[str, float]]] = {}
    pred = TorchPredictor(model)
    for s in ("dev", "test"):
        ctx, tgt, ex = metrics.sequence_arrays(metrics.normalize(vecs[s]), sd.sequences(s))
        pool = metrics.normalize(vecs[s])
        report[s] = {
            "model": metrics.evaluate_predictor(pred, ctx, tgt, pool, ex),
            **dev_baselines(vecs["train"], vecs[s], sd.sequences(s)),
        }
    return report


def _print_report(report: dict) -> None:
    print(f"{'split':6} {'predictor':15} {'cos':>7} {'R@1':>7} {'R@5':>7} {'R@10':>7} {'C@50':>7}")
    for s, r in report.items():
        for name, m in r.items():
            print(
                f"{s:6} {name:15} {m['cosine_mean']:7.4f} {m['recall_at_1']:7.4f} "
                f"{m['recall_at_5']:7.4f} "
                f"{m['recall_at_10']:7.4f} {m['contain_at_50']:7.4f}"
            )


def _training_record(
    hp: dict,
    folder: Path,
    sd: data.SequenceData,
    best: dict[str, Any],
    history: list[dict],
    train_s: float,
    t_start: float,
) -> dict:
    """The ``training`` section of the checkpoint's config.json."""
    import torch

    return {
        "command": "lam-mteb " + " ".join(sys.argv[1:])
        if sys.argv and "train-lvm" in sys.argv
        else None,
        "hparams": hp,
        "data": {
            "folder": folder.name,
            "data_hash": sd.data_hash,
            **{k: v for k, v in sd.stats.items() if k != "sources"},
            "sources": sd.stats["sources"],
        },
        "best_epoch": best["epoch"],
        "history": history,
        "train_seconds": round(train_s, 1),
        "total_seconds": round(time.time() - t_start, 1),
        "torch_threads": torch.get_num_threads(),
    }


def run_command(args: argparse.Namespace) -> int:
    import torch

    from .models import n_parameters, save_checkpoint

    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    if (
        (out / "model.safetensors").exists()
        and not (out / ".train_state").exists()
        and not args.overwrite
    ):
        raise lam_mteb.LamMtebError(
            f"{out} already holds a finished checkpoint; pass --overwrite to retrain"
        )
    t_start = time.time()
    folder, sd = _sequence_data(args)
    encoder = lam_mteb.get_encoder(args.encoder)
    fp, vecs = split_vectors(_encode_fn(encoder), sd)
    hp = _hparams(args)
    out.mkdir(parents=True, exist_ok=True)
    t_train = time.time()
    model, history, best = train_model(
        hp,
        vecs["train"],
        sd.sequences("train"),
        vecs["dev"],
        sd.sequences("dev"),
        out,
        progress=not args.no_progress,
        train_docs=np.array([c.doc_id for c in sd.chunks["train"]]),
    )
    train_s = time.time() - t_train
    report = _evaluate_splits(model, vecs, sd)
    config = {
        "arch": args.arch,
        "model": {"dim": int(vecs["train"].shape[1]), "context": args.context, **hp["model"]},
        "n_parameters": n_parameters(model),
        "base_encoder": args.encoder,
        "target_words": args.target_words,
        "encoder_fingerprint": fp,
        "training": _training_record(hp, folder, sd, best, history, train_s, t_start),
        "results": report,
    }
    save_checkpoint(model, out, config)
    shutil.rmtree(out / ".train_state", ignore_errors=True)
    print(f"best dev epoch {best['epoch']}; checkpoint written to {out}")
    _print_report(report)
    return 0
