"""LAM speed and memory benchmark (not a test).

1. Throughput on 512-token windows, LAM vs all-MiniLM-L6-v2, side by side in one process:
   - model level: the same [batch, 512] token tensor through LAM's forward and through MiniLM's
     transformers BertModel (what sentence-transformers runs), interleaved rounds;
   - encode level: ``LamEncoder.encode`` vs ``SentenceTransformer.encode`` (max_seq_length 512) on
     texts of 512 tokens.
   Reported: tokens/s of each and the median over rounds of the per-round ratio LAM / MiniLM.
2. Peak RSS of LAM encoding ONE document of 8k, 64k, 256k and 1M tokens, each in a fresh
   subprocess (its peak resident set, VmHWM, and the current RSS sampled every 50 ms while it
   encodes: the lifetime peak is set by loading the model), plus its wall time.  Not ru_maxrss:
   Linux carries the parent's high-water mark into a fork/exec'd child's ru_maxrss, so it would
   report the RSS of this (benchmarking) parent instead of the child's.
3. A PNG plot of both and a JSON file with every number.

    python benchmarks/lam_speed_memory.py [--threads 1] [--sizes 8192,65536,262144,1048576]
        [--out benchmarks/lam_speed_memory.json] [--plot docs/lam_speed_memory.png]

Text comes from $LAM_MTEB_DATA_DIR/longtext (Gutenberg, Paul Graham essays, WikiText); without
it a deterministic pseudo-text is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def corpus_text() -> str:
    """Long natural text: the data dir's longtext files, else a deterministic pseudo-text."""
    root = os.environ.get("LAM_MTEB_DATA_DIR")
    parts = []
    if root and (Path(root) / "longtext").is_dir():
        for f in sorted((Path(root) / "longtext").rglob("*.txt")):
            if "LICENSE" not in f.name:
                parts.append(f.read_text(encoding="utf-8", errors="replace"))
    if not parts:
        rng = random.Random(0)
        words = (
            "river mountain city history science music people water light system theory "
            "market language garden winter summer ocean forest machine story road"
        ).split()
        parts = [" ".join(rng.choice(words) for _ in range(200_000))]
    return "\n".join(parts)


def document_of(n_tokens: int, tokenizer) -> str:
    """A document of about n_tokens tokens (the base text repeated as needed)."""
    base = corpus_text()
    sample = base[:200_000]
    chars_per_token = len(sample) / max(1, len(tokenizer.encode_batch([sample])[0]))
    need = int(n_tokens * chars_per_token)
    reps = need // len(base) + 1
    return "\n".join([base] * reps)[:need] if reps > 1 else base[:need]


# --------------------------------------------------------------------------- memory (child)
def current_rss_mb() -> float:
    """Resident set size now (Linux /proc; ru_maxrss only gives the lifetime peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb() -> float:
    """This process's peak RSS since exec (VmHWM of /proc/self/status).

    ``getrusage().ru_maxrss`` is not used: a child started by fork + exec inherits the parent's
    high-water mark in it, so a child of a big parent reports the parent's RSS.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # fallback; see above


def child(n_tokens: int, threads: int, kind: str = "v2") -> None:
    import gc
    import threading

    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)
    from lam_mteb_plugins.lam.common.text import LamTokenizer

    tokenizer = LamTokenizer()
    if kind == "v1":
        from lam_mteb_plugins.lam.v1.encoder import LamEncoder

        enc = LamEncoder(pooling="hybrid", device="cpu")
    else:
        import lam_mteb

        # lam-state as mteb runs it on a document: the slot state + the lexical wrapper's block
        enc = lam_mteb.get_encoder("lam-state")
        enc.encode_all = lambda texts: {"e": enc.encode(texts, prompt_type="document")}
    enc.encode(["warm up"])
    rss_loaded = peak_rss_mb()
    text = document_of(n_tokens, tokenizer)
    tokens = sum(len(p) for p in tokenizer.iter_ids(text))
    gc.collect()
    before = current_rss_mb()
    # ru_maxrss is dominated by loading the model; sample the current RSS while encoding too
    samples, done = [before], threading.Event()

    def sample():
        while not done.wait(0.05):
            samples.append(current_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    e = enc.encode_all([text])
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    peak = peak_rss_mb()
    # one finite row per output (v2 with the lexical channel is 2 432 wide, v1's parts 384)
    ok = all(v.shape[0] == 1 and bool(np.isfinite(np.asarray(v)).all()) for v in e.values())
    print(
        json.dumps(
            {
                "target_tokens": n_tokens,
                "tokens": tokens,
                "chars": len(text),
                "wall_s": round(wall, 2),
                "tokens_per_s": round(tokens / wall, 1),
                "rss_after_load_mb": round(rss_loaded, 1),
                "peak_rss_mb": round(peak, 1),
                "rss_before_encode_mb": round(before, 1),
                "max_rss_during_encode_mb": round(max(samples), 1),
                "rss_samples": len(samples),
                "finite": ok,
            }
        )
    )


def memory(sizes, threads, kind="v2"):
    rows = []
    for n in sizes:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(n),
            "--threads",
            str(threads),
            "--kind",
            kind,
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
        if out.returncode != 0:
            raise SystemExit(f"child for {n} tokens failed:\n{out.stderr[-2000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  {row['tokens']:>9} tokens: peak RSS {row['peak_rss_mb']:.0f} MB (while encoding: "
            f"{row['rss_before_encode_mb']:.0f} -> max {row['max_rss_during_encode_mb']:.0f} MB), "
            f"{row['wall_s']:.1f} s "
            f"({row['tokens_per_s']:.0f} tok/s)",
            flush=True,
        )
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- throughput
def throughput(threads: int, batch: int, rounds: int):
    import torch
    from sentence_transformers import SentenceTransformer

    from lam_mteb_plugins.lam.common.model import base_model_path
    from lam_mteb_plugins.lam.v1.encoder import LamEncoder

    if threads:
        torch.set_num_threads(threads)
    lam = LamEncoder(pooling="mean", device="cpu")
    st = SentenceTransformer(str(base_model_path()), device="cpu")
    st.max_seq_length = 512
    bert = st[0].auto_model.eval()

    ids = [i for p in lam.tokenizer.iter_ids(corpus_text()[:400_000]) for i in p][1:-1]
    windows = [
        [lam.tokenizer.cls_id] + ids[j : j + 510] + [lam.tokenizer.sep_id]
        for j in range(0, 510 * batch * 2, 510)
    ][:batch]
    x = torch.tensor(windows)
    mask = torch.ones_like(x, dtype=torch.float32)
    n_tok = x.numel()
    # texts that are exactly these windows, for the encode-level comparison
    texts = [lam.tokenizer._tok.decode(w[1:-1]) for w in windows]
    lens = [len(t) for t in lam.tokenizer.encode_batch(texts)]

    def lam_fwd():
        with torch.inference_mode():
            lam.model.forward_chunk(x, mask)

    def bert_fwd():
        with torch.inference_mode():
            bert(input_ids=x, attention_mask=mask.long())

    def lam_enc():
        lam.encode(texts, batch_size=batch)

    def st_enc():
        st.encode(texts, batch_size=batch)

    out = {}
    for level, (fa, fb, ntok) in {
        "model": (lam_fwd, bert_fwd, n_tok),
        "encode": (lam_enc, st_enc, sum(min(n, 512) for n in lens)),
    }.items():
        fa(), fb()  # warm up
        ta, tb = [], []
        for _ in range(rounds):
            for f, acc in ((fa, ta), (fb, tb)):
                t0 = time.perf_counter()
                f()
                acc.append(time.perf_counter() - t0)
        out[level] = {
            "lam_tokens_per_s": round(ntok / statistics.median(ta), 1),
            "minilm_tokens_per_s": round(ntok / statistics.median(tb), 1),
            "ratio_median_of_rounds": round(
                statistics.median(b / a for a, b in zip(ta, tb, strict=False)), 3
            ),
            "lam_s": [round(t, 3) for t in ta],
            "minilm_s": [round(t, 3) for t in tb],
            "tokens_per_round": ntok,
        }
        print(
            f"  {level:>6}: LAM {out[level]['lam_tokens_per_s']:.0f} tok/s, MiniLM "
            f"{out[level]['minilm_tokens_per_s']:.0f} tok/s, "
            f"ratio {out[level]['ratio_median_of_rounds']:.3f}",
            flush=True,
        )
    out["batch"] = batch
    out["encode_text_lengths"] = [min(lens), max(lens)]
    return out


def mteb_throughput(lam_name: str, base_name: str, lengths, n_texts: int, rounds: int):
    """Texts of exactly L tokens through ``mteb.get_model(name).encode`` (the path `mteb run`
    takes), default torch threads, interleaved rounds; tokens/s counts the tokens each model reads
    (MiniLM truncates at its max_seq_length, LAM reads every token)."""
    import mteb
    from datasets import Dataset

    from lam_mteb.mteb_compat import create_dataloader
    from lam_mteb_plugins.lam.common.text import LamTokenizer

    tok = LamTokenizer()
    meta = mteb.get_task("STSBenchmark").metadata
    lam, base = mteb.get_model(lam_name), mteb.get_model(base_name)
    base_max = getattr(getattr(base, "encoder", None), "model", None)
    base_max = getattr(base_max, "max_seq_length", 256) or 256
    ids = [i for p in tok.iter_ids(corpus_text()[:2_000_000]) for i in p][1:-1]
    out = {"lam_model": lam_name, "baseline_model": base_name, "baseline_max_seq_length": base_max}
    for L in lengths:
        texts, j = [], 0
        while len(texts) < n_texts:  # decode windows until a text re-tokenises to exactly L tokens
            t = tok._tok.decode(ids[j : j + L - 2])
            j += L - 2
            if len(tok.encode_batch([t])[0]) == L:
                texts.append(t)
        tokens = {"lam": n_texts * L, "base": n_texts * min(L, base_max)}

        def run(model, texts=texts):
            model.encode(
                # mteb's own batching (through lam-mteb's adapter of mteb internals)
                create_dataloader(Dataset.from_dict({"text": texts}), task_metadata=meta),
                task_metadata=meta,
                hf_split="test",
                hf_subset="default",
                batch_size=32,
                show_progress_bar=False,
            )

        run(lam), run(base)  # warm up
        ta, tb = [], []
        for _ in range(rounds):
            for m, acc in ((lam, ta), (base, tb)):
                t0 = time.perf_counter()
                run(m)
                acc.append(time.perf_counter() - t0)
        row = {
            "texts": n_texts,
            "tokens_per_text": L,
            "lam_tokens_per_s": round(tokens["lam"] / statistics.median(ta), 1),
            "minilm_tokens_per_s": round(tokens["base"] / statistics.median(tb), 1),
            "texts_per_s_ratio": round(
                statistics.median(b / a for a, b in zip(ta, tb, strict=False)), 3
            ),
            "lam_s": [round(t, 3) for t in ta],
            "minilm_s": [round(t, 3) for t in tb],
        }
        row["ratio_tokens_read"] = round(
            row["texts_per_s_ratio"] * tokens["lam"] / tokens["base"], 3
        )
        out[str(L)] = row
        print(
            f"  mteb encode, {n_texts} texts of {L} tokens: "
            f"{lam_name} {row['lam_tokens_per_s']:.0f} tok/s, "
            f"{base_name} {row['minilm_tokens_per_s']:.0f} tok/s (reads {min(L, base_max)}); "
            "ratio (tokens read) "
            f"{row['ratio_tokens_read']:.3f}, texts/s ratio {row['texts_per_s_ratio']:.3f}",
            flush=True,
        )
    return out


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    t = result["throughput"]
    levels = ["model", "encode"]
    xs = range(len(levels))
    a.bar(
        [i - 0.2 for i in xs],
        [t[lv]["minilm_tokens_per_s"] for lv in levels],
        0.4,
        label="MiniLM (softmax)",
    )
    a.bar(
        [i + 0.2 for i in xs],
        [t[lv]["lam_tokens_per_s"] for lv in levels],
        0.4,
        label="LAM (DeltaNet)",
    )
    for i, lv in enumerate(levels):
        a.text(
            i,
            max(t[lv]["minilm_tokens_per_s"], t[lv]["lam_tokens_per_s"]) * 1.02,
            f"x{t[lv]['ratio_median_of_rounds']:.2f}",
            ha="center",
        )
    a.set_ylim(
        0, max(max(t[lv]["minilm_tokens_per_s"], t[lv]["lam_tokens_per_s"]) for lv in levels) * 1.12
    )
    a.set_xticks(list(xs), [f"{lv} level" for lv in levels])
    a.set_ylabel("tokens / s (512-token windows)")
    a.set_title(f"Throughput, {result['threads'] or 'default'} CPU thread(s)")
    a.legend(loc="lower right")
    rows = result["memory"]
    toks = [r["tokens"] for r in rows]
    b.plot(toks, [r["peak_rss_mb"] for r in rows], "o-", label="peak RSS of the process (MB)")
    if all("max_rss_during_encode_mb" in r for r in rows):
        b.plot(
            toks,
            [r["max_rss_during_encode_mb"] for r in rows],
            "^:",
            color="tab:green",
            label="max RSS while encoding (MB)",
        )
    b.set_xscale("log")
    b.set_xlabel("document length (tokens, one document)")
    b.set_ylabel("peak RSS (MB)")
    b.set_ylim(0, max(r["peak_rss_mb"] for r in rows) * 1.5)
    b2 = b.twinx()
    b2.plot(toks, [r["wall_s"] for r in rows], "s--", color="tab:red", label="wall time (s)")
    b2.set_ylabel("wall time (s)")
    b.set_title("LAM streaming: memory flat, time linear")
    h1, l1 = b.get_legend_handles_labels()
    h2, l2 = b2.get_legend_handles_labels()
    b.legend(h1 + h2, l1 + l2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    p.add_argument("--batch", type=int, default=8, help="512-token windows per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--sizes", default="8192,65536,262144,1048576")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "lam_speed_memory.json"))
    p.add_argument("--plot", default=str(REPO / "docs" / "lam_speed_memory.png"))
    p.add_argument(
        "--kind", default="v2", choices=["v1", "v2"], help="LAM version for the memory part"
    )
    p.add_argument(
        "--mteb-lam", default="lam-state", help="registry model for the mteb-encode ratios"
    )
    p.add_argument("--mteb-baseline", default="minilm")
    p.add_argument("--mteb-lengths", default="240,512")
    p.add_argument("--mteb-texts", type=int, default=32)
    p.add_argument("--skip-mteb", action="store_true")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.threads, args.kind)
    result = {
        "threads": args.threads,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if Path(args.out).is_file():  # keep the part not re-measured
        old = json.loads(Path(args.out).read_text())
        result.update({k: old[k] for k in ("throughput", "memory", "mteb_encode") if k in old})
    if not args.skip_mteb:  # default torch threads, as `mteb run` uses
        print("throughput through mteb.get_model(...).encode, default threads:", flush=True)
        result["mteb_encode"] = mteb_throughput(
            args.mteb_lam,
            args.mteb_baseline,
            [int(x) for x in args.mteb_lengths.split(",")],
            args.mteb_texts,
            args.rounds,
        )
    if not args.skip_throughput:
        print("throughput (512-token windows):", flush=True)
        result["throughput"] = throughput(args.threads, args.batch, args.rounds)
    if not args.skip_memory:
        print("peak RSS, one document per fresh process:", flush=True)
        result["memory"] = memory([int(s) for s in args.sizes.split(",")], args.threads, args.kind)
        result["memory_kind"] = args.kind
        m = result["memory"]
        result["rss_1m_over_8k"] = round(m[-1]["peak_rss_mb"] / m[0]["peak_rss_mb"], 3)
        result["encode_rss_1m_over_8k"] = round(
            m[-1]["max_rss_during_encode_mb"] / m[0]["max_rss_during_encode_mb"], 3
        )
        print(
            f"  peak RSS largest / smallest: {result['rss_1m_over_8k']}; max RSS while encoding, "
            f"largest / smallest: {result['encode_rss_1m_over_8k']}",
            flush=True,
        )
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if "throughput" in result and "memory" in result:
        plot(result, args.plot)
        print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
