"""``lam-mteb distill``: train LAM's DeltaNet blocks from the all-MiniLM-L6-v2 teacher.

Only the DeltaNet blocks learn; embeddings, FFNs and LayerNorms are MiniLM's, frozen.  Two phases:

1. ``layerwise`` (teacher forcing): every block gets the teacher's input to its layer and must
   reproduce the teacher's attention sub-layer output LN(h + Attn(h)); the last layer also gets
   the embedding terms below.  Layers are independent, so this is cheap and stable.
2. ``e2e``: the student runs on its own; loss = per-layer hidden-state MSE against the teacher +
   the embedding terms.

Embedding terms (weights on the command line): ``--cos-weight`` 1 - cos(student mean embedding,
teacher mean embedding); ``--state-weight`` relational distillation of the state embedding (the
student's state-embedding cosine matrix over a batch should equal the teacher's);
``--sts-weight`` CoSENT on STS-B *train* pairs (gold scores) for the mean and state embeddings.

Teacher outputs are computed once per batch and kept in memory (float16).  Training state is
saved to ``OUTPUT/trainer_state.pt`` every ``--save-every`` steps; ``--resume`` continues from it.
The result is ``OUTPUT/config.json`` + ``OUTPUT/model.safetensors`` (the blocks only).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from lam_mteb.atomic import atomic_file

if TYPE_CHECKING:
    import argparse

    import torch

    from lam_mteb import LamMtebError
    from lam_mteb.contract import SubParsers
    from lam_mteb_plugins.lam.common.model import LamModel
    from lam_mteb_plugins.lam.common.text import LamTokenizer

SOURCES = ("sts", "longtext", "scifact")


#: a training group: an STS-B train pair (2 texts, gold score) or one passage (score None)
Group = tuple[list[str], float | None]


class Batch(TypedDict):
    """A token-budgeted batch: the token ids, and its STS pairs (row a, row b, gold score)."""

    seqs: list[list[int]]
    pairs: list[tuple[int, int, float]]


def _error(message: str) -> LamMtebError:
    from lam_mteb import LamMtebError

    return LamMtebError(message)


# ----------------------------------------------------------------------------- data
def read_sts(path: Path) -> list[tuple[str, str, float]]:
    """STS Benchmark csv (tab separated: genre, file, year, id, score, s1, s2[, ...])."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 7:
                try:
                    rows.append((parts[5], parts[6], float(parts[4])))
                except ValueError:
                    continue
    return rows


def _passages(
    text: str, rng: random.Random, n: int, min_words: int = 40, max_words: int = 380
) -> list[str]:
    words = text.split()
    out = []
    if len(words) < min_words:
        return [" ".join(words)] if words else []
    for _ in range(n):
        length = rng.randint(min_words, max_words)
        start = rng.randrange(0, max(1, len(words) - length))
        out.append(" ".join(words[start : start + length]))
    return out


def collect_groups(
    data_dir: Path, sources: Sequence[str], n_sts: int, n_long: int, n_scifact: int, seed: int
) -> list[Group]:
    """Training groups: (texts, score) with an STS-B train pair (2 texts, gold score) or a
    passage."""
    rng = random.Random(seed)
    groups: list[Group] = []
    data_dir = Path(data_dir)
    for source in sources:
        if source == "sts":
            path = data_dir / "stsbenchmark" / "sts-train.csv"
            if not path.is_file():
                raise _error(f"distill: looked for {path} (set --data-dir or LAM_MTEB_DATA_DIR)")
            rows = read_sts(path)
            rng.shuffle(rows)
            groups += [([a, b], s) for a, b, s in rows[:n_sts]]
        elif source == "longtext":
            files = sorted((data_dir / "longtext").rglob("*.txt"))
            files = [f for f in files if "LICENSE" not in f.name and "PROVENANCE" not in f.name]
            if not files:
                raise _error(f"distill: no .txt files under {data_dir / 'longtext'}")
            per_file = max(1, math.ceil(n_long / len(files)))
            texts = []
            for f in files:
                texts += _passages(f.read_text(encoding="utf-8", errors="replace"), rng, per_file)
            rng.shuffle(texts)
            groups += [([t], None) for t in texts[:n_long]]
        elif source == "scifact":
            path = data_dir / "scifact" / "corpus.jsonl"
            if not path.is_file():
                raise _error(f"distill: looked for {path}")
            docs = []
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    d = json.loads(line)
                    docs.append((d.get("title", "") + ". " + d.get("text", "")).strip())
            rng.shuffle(docs)
            groups += [([t], None) for t in docs[:n_scifact]]
        elif source.startswith("file:"):
            lines = Path(source[5:]).read_text(encoding="utf-8").splitlines()
            groups += [([t], None) for t in lines if t.strip()]
        else:
            raise _error(
                f"distill: unknown source {source!r} (use {', '.join(SOURCES)} or file:PATH)"
            )
    if not groups:
        raise _error("distill: no training text")
    return groups


def make_batches(
    groups: Sequence[Group],
    tokenizer: LamTokenizer,
    batch_tokens: int,
    seed: int,
    max_len: int = 512,
) -> list[Batch]:
    """Token-budgeted batches of similar length; an STS pair always stays in one batch."""
    encoded: list[tuple[list[list[int]], float | None]] = []
    for texts, score in groups:
        ids = [
            t if len(t) <= max_len else t[: max_len - 1] + [tokenizer.sep_id]
            for t in tokenizer.encode_batch(texts)
        ]
        encoded.append((ids, score))
    encoded.sort(key=lambda g: max(len(t) for t in g[0]))
    batches: list[list[tuple[list[list[int]], float | None]]] = []
    cur: list[tuple[list[list[int]], float | None]] = []
    cur_len = 0
    for g in encoded:
        glen = max(len(t) for t in g[0])
        n_after = sum(len(x[0]) for x in cur) + len(g[0])
        if cur and max(cur_len, glen) * n_after > batch_tokens:
            batches.append(cur)
            cur, cur_len = [], 0
        cur.append(g)
        cur_len = max(cur_len, glen)
    if cur:
        batches.append(cur)
    out: list[Batch] = []
    for b in batches:
        seqs: list[list[int]] = []
        pairs: list[tuple[int, int, float]] = []
        for ids, score in b:
            if score is not None and len(ids) == 2:
                pairs.append((len(seqs), len(seqs) + 1, score))
            seqs += ids
        out.append({"seqs": seqs, "pairs": pairs})
    random.Random(seed).shuffle(out)
    return out


# ----------------------------------------------------------------------------- losses
def masked_mse(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    d = ((a - b.to(a.dtype)) ** 2).sum(-1) * m
    return d.sum() / (m.sum() * a.shape[-1])


def masked_mean(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)


def relational(e: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """MSE between the cosine matrices of two sets of embeddings (off-diagonal)."""
    import torch.nn.functional as F

    e, t = F.normalize(e, dim=-1), F.normalize(t, dim=-1)
    n = e.shape[0]
    if n < 2:
        return e.sum() * 0
    diff = (e @ e.T - t @ t.T) ** 2
    return (diff.sum() - diff.diagonal().sum()) / (n * (n - 1))


def cosent(
    e: torch.Tensor, pairs: Sequence[tuple[int, int, float]], scale: float = 20.0
) -> torch.Tensor:
    """CoSENT loss over the STS pairs of a batch: pairs ranked by gold score."""
    import torch
    import torch.nn.functional as F

    if len(pairs) < 2:
        return e.sum() * 0
    i = torch.tensor([p[0] for p in pairs])
    j = torch.tensor([p[1] for p in pairs])
    y = torch.tensor([p[2] for p in pairs], dtype=e.dtype)
    cos = (F.normalize(e[i], dim=-1) * F.normalize(e[j], dim=-1)).sum(-1) * scale
    diff = cos[None, :] - cos[:, None]  # diff[a, b] = cos_b - cos_a, penalised when y_a > y_b
    diff = diff[(y[:, None] > y[None, :])]
    return torch.logsumexp(torch.cat([diff.new_zeros(1), diff]), dim=0)


# ----------------------------------------------------------------------------- training
class Distiller:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from lam_mteb_plugins.lam.common.model import LamModel
        from lam_mteb_plugins.lam.common.text import LamTokenizer
        from lam_mteb_plugins.lam.v1.model import LamConfig

        self.args = args
        torch.manual_seed(args.seed)
        self.tokenizer = LamTokenizer()
        self.teacher = LamModel.from_base(attention="softmax").eval()
        self.model = LamModel.from_base(LamConfig(mode=args.mode, kernel_chunk=args.kernel_chunk))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=args.lr, weight_decay=0.0)
        self.cache: dict[int, dict[str, Any]] = {}
        self.step = 0
        self.minutes_before = 0.0  # training minutes of earlier (resumed) sessions

    # teacher outputs for one batch, computed once
    def targets(self, bi: int, batch: Batch) -> dict[str, Any]:
        import torch

        if bi in self.cache:
            return self.cache[bi]
        from lam_mteb_plugins.lam.common.encoder import pad_batch

        x, m = pad_batch(batch["seqs"], self.tokenizer.pad_id)
        with torch.no_grad():
            h = self.teacher.embed(x)
            hin, hattn = [], []
            for layer in self.teacher.layers:
                hin.append(h.half())
                h, h1, _ = layer(h, m)
                hattn.append(h1.half())
            temb = masked_mean(h, m)
        t = {"x": x, "m": m, "hin": hin, "hattn": hattn, "hlast": h.half(), "temb": temb}
        self.cache[bi] = t
        return t

    def loss(
        self, t: dict[str, Any], phase: str, pairs: Sequence[tuple[int, int, float]]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        import torch

        from lam_mteb_plugins.lam.v1.encoder import state_embedding

        a = self.args
        m, temb = t["m"], t["temb"]
        parts: dict[str, torch.Tensor] = {}
        layers = self.model.lam_layers()
        if phase == "layerwise":
            total: torch.Tensor | int = 0
            for li, layer in enumerate(layers):
                hin = t["hin"][li].float()
                out, state = layer.attention(hin, m)
                h1 = layer.attn_norm(hin + out)
                total = total + masked_mse(h1, t["hattn"][li], m) / len(layers)
            assert isinstance(total, torch.Tensor)  # the model has at least one layer
            parts["attn"] = total
            if a.cos_weight or a.sts_weight:
                import torch.nn.functional as F

                last = layers[-1]
                h = last.ffn_norm(h1 + last.ffn_out(F.gelu(last.ffn_in(h1))))
                mean = masked_mean(h, m)
        else:
            outs: list[tuple[torch.Tensor, torch.Tensor]] = []
            h, states = self.model.forward_chunk(t["x"], m, collect=outs)
            targets = t["hin"][1:] + [t["hlast"]]
            mses = [masked_mse(o[1], tg, m) for o, tg in zip(outs, targets, strict=False)]
            hidden = sum(mses) / len(outs)
            assert isinstance(hidden, torch.Tensor)  # the model has at least one layer
            parts["hidden"] = hidden
            state = states[-1]
            mean = masked_mean(h, m)
        if a.cos_weight:
            import torch.nn.functional as F

            parts["cos"] = a.cos_weight * (1 - F.cosine_similarity(mean, temb, dim=-1)).mean()
        assert state is not None  # the student's DeltaNet blocks always return their state
        se = None
        if a.state_weight:
            se = state_embedding(state, 0.7)
            parts["state"] = a.state_weight * relational(se, temb)
        if a.sts_weight and pairs:
            se = state_embedding(state, 0.7) if se is None else se
            parts["sts"] = a.sts_weight * (cosent(mean, pairs) + cosent(se, pairs)) / 2
        loss = sum(parts.values())
        assert isinstance(loss, torch.Tensor)  # parts holds "attn" or "hidden"
        return loss, {k: float(v.detach()) for k, v in parts.items()}

    def lr_at(self, step: int, total: int) -> float:
        warm = max(1, int(0.05 * total))
        if step < warm:
            return self.args.lr * (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return self.args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def save_state(self, path: Path, minutes: float = 0.0) -> None:
        import torch

        with atomic_file(path) as tmp:
            torch.save(
                {
                    "step": self.step,
                    "minutes": self.minutes_before + minutes,
                    "blocks": self.model.block_state_dict(),
                    "opt": self.opt.state_dict(),
                    "settings": _settings(self.args),
                    "rng": torch.get_rng_state(),
                },
                tmp,
            )

    def load_state(self, path: Path) -> None:
        import pickle

        import torch

        # weights_only: a crafted trainer_state.pt must not run code (tensors, dicts, numbers only)
        try:
            st = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
            raise _error(
                f"distill --resume: {path} is not a trainer state this version can read "
                f"({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}); "
                "remove it to start over"
            ) from None
        if st["settings"] != _settings(self.args):
            changed = sorted(
                k for k in st["settings"] if st["settings"][k] != _settings(self.args).get(k)
            )
            raise _error(
                f"distill --resume: settings differ from the saved run ({', '.join(changed)})"
            )
        self.model.load_state_dict({**self.model.state_dict(), **st["blocks"]})
        self.opt.load_state_dict(st["opt"])
        torch.set_rng_state(st["rng"])
        self.step = st["step"]
        self.minutes_before = float(st.get("minutes", 0.0))


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed (for provenance in config.json)."""
    import shlex

    argv = sys.argv[1:]
    if "distill" in argv:
        argv = argv[argv.index("distill") :]
        return "lam-mteb " + " ".join(shlex.quote(a) for a in argv)
    return "lam-mteb distill " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in _settings(args).items()
    )


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Arguments that define a run (a resumed run must use the same ones)."""
    skip = {"func", "resume", "max_minutes", "save_every", "no_eval", "threads", "command", "quiet"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def evaluate_sts_dev(model: LamModel, data_dir: Path, hybrid_weight: float = 0.5) -> dict:
    """Spearman of cosine similarities on STS-B dev for the three poolings."""
    import numpy as np
    from scipy.stats import spearmanr

    from lam_mteb_plugins.lam.v1.encoder import LamEncoder

    rows = read_sts(Path(data_dir) / "stsbenchmark" / "sts-dev.csv")
    enc = LamEncoder(model=model, hybrid_weight=hybrid_weight, device="cpu")
    a = enc.encode_all([r[0] for r in rows], batch_size=64)
    b = enc.encode_all([r[1] for r in rows], batch_size=64)
    gold = [r[2] for r in rows]
    return {k: round(float(spearmanr(np.sum(a[k] * b[k], 1), gold).correlation), 4) for k in a}


def _train_steps(
    d: Distiller, batches: list[Batch], plan: list[str], state_file: Path, t0: float
) -> bool:
    """The planned steps from ``d.step`` on; False when ``--max-minutes`` stopped them early."""
    import torch
    from tqdm.auto import tqdm

    args = d.args
    total = len(plan) * len(batches)
    bar = tqdm(total=total, initial=d.step, desc="distill", unit="step", disable=args.quiet)
    deadline = t0 + args.max_minutes * 60 if args.max_minutes else None
    d.model.train()
    finished = True
    while d.step < total:
        phase = plan[d.step // len(batches)]
        bi = d.step % len(batches)
        t = d.targets(bi, batches[bi])
        for g in d.opt.param_groups:
            g["lr"] = d.lr_at(d.step, total)
        loss, parts = d.loss(t, phase, batches[bi]["pairs"])
        d.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(d.params, 1.0)
        d.opt.step()
        d.step += 1
        bar.update(1)
        bar.set_postfix(phase=phase, **{k: f"{v:.4f}" for k, v in parts.items()})
        if args.save_every and d.step % args.save_every == 0:
            d.save_state(state_file, (time.time() - t0) / 60)
        if deadline and time.time() > deadline and d.step < total:
            finished = False
            break
    bar.close()
    return finished


def _session_record(d: Distiller, minutes: float, finished: bool) -> dict:
    """How long the run took, whether it finished, and on how many threads."""
    import torch

    return {
        "minutes_this_session": minutes,
        "minutes_total": round(d.minutes_before + minutes, 2),
        "finished": finished,
        "torch_threads": torch.get_num_threads(),
    }


def run(args: argparse.Namespace) -> int:
    import torch

    import lam_mteb
    from lam_mteb_plugins.lam.v1.model import save_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = Path(args.data_dir) if args.data_dir else lam_mteb.data_dir()
    if data_dir is None:
        raise _error("distill needs text: pass --data-dir or set LAM_MTEB_DATA_DIR")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    groups = collect_groups(data_dir, sources, args.n_sts, args.n_long, args.n_scifact, args.seed)
    d = Distiller(args)
    batches = make_batches(groups, d.tokenizer, args.batch_tokens, args.seed)
    n_tokens = sum(len(s) for b in batches for s in b["seqs"])
    plan = ["layerwise"] * args.layerwise_epochs + ["e2e"] * args.e2e_epochs
    total = len(plan) * len(batches)
    state_file = out / "trainer_state.pt"
    if args.resume and state_file.is_file():
        d.load_state(state_file)
    if not args.quiet:
        print(
            f"distill: {len(groups)} groups, {len(batches)} batches, {n_tokens} tokens, "
            f"{total} steps ({' + '.join(plan)}), resuming at step {d.step}",
            file=sys.stderr,
        )
    finished = _train_steps(d, batches, plan, state_file, t0)
    minutes = round((time.time() - t0) / 60, 2)
    d.save_state(state_file, minutes)
    d.model.eval()
    training = {
        "command": _command_line(args),
        "settings": _settings(args),
        "steps_done": d.step,
        "steps_planned": total,
        "n_groups": len(groups),
        "n_tokens_per_epoch": n_tokens,
        **_session_record(d, minutes, finished),
    }
    if not args.no_eval and (data_dir / "stsbenchmark" / "sts-dev.csv").is_file():
        training["sts_dev_spearman"] = evaluate_sts_dev(d.model, data_dir)
    save_checkpoint(
        d.model,
        out,
        dtype=torch.float16 if args.dtype == "float16" else torch.float32,
        training=training,
    )
    if not args.quiet:
        print(json.dumps(training, indent=1), file=sys.stderr)
    if not finished:
        print(
            f"distill: stopped by --max-minutes at step {d.step}/{total}; rerun with --resume",
            file=sys.stderr,
        )
    return 0


def add_command(subparsers: SubParsers, name: str, help: str, doc: str) -> argparse.ArgumentParser:
    """A ``lam-mteb`` subcommand whose description is the first paragraph of ``doc``."""
    return subparsers.add_parser(name, help=help, description=doc.split("\n\n")[0])


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers, "distill", "train LAM's DeltaNet blocks from the MiniLM teacher", __doc__
    )
    p.add_argument(
        "--sources", default="sts,longtext", help="comma list of sts,longtext,scifact,file:PATH"
    )
    p.add_argument("--n-sts", type=int, default=5749, help="STS-B train pairs to use")
    p.add_argument("--n-long", type=int, default=200, help="long-text passages (40-380 words)")
    p.add_argument("--n-scifact", type=int, default=0, help="SciFact corpus abstracts")
    p.add_argument("--mode", default="final", choices=["final", "bidir", "causal", "causal+final"])
    p.add_argument(
        "--kernel-chunk",
        type=int,
        default=16,
        help="sub-chunk of the chunkwise kernel (speed only; the math is the same)",
    )
    p.add_argument("--layerwise-epochs", type=int, default=2)
    p.add_argument("--e2e-epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-tokens", type=int, default=4096, help="padded tokens per batch")
    p.add_argument("--cos-weight", type=float, default=1.0)
    p.add_argument("--state-weight", type=float, default=5.0)
    p.add_argument("--sts-weight", type=float, default=0.0)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--no-eval", action="store_true", help="skip the STS-B dev evaluation")
    add_run_options(p, save_every=50, threads=0)
    p.set_defaults(func=run)
    return p


def add_run_options(p: argparse.ArgumentParser, *, save_every: int, threads: int) -> None:
    """Options every LAM training command shares: output, data, seed, resumable stops, threads."""
    p.add_argument("--output", "-o", required=True, help="checkpoint folder to write")
    p.add_argument("--data-dir", help="data folder (default: $LAM_MTEB_DATA_DIR)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=0, help="stop (resumably) after this long")
    p.add_argument(
        "--save-every", type=int, default=save_every, help="save resumable state every N steps"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/trainer_state.pt")
    p.add_argument(
        "--threads", type=int, default=threads, help="torch threads (0: torch's default)"
    )
    p.add_argument("--quiet", action="store_true")
