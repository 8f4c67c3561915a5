"""Memory of `chunked` with pool: mean on one long document: 1 M tokens vs 8 k tokens.

Each size runs in its own child process (a fresh interpreter: the peak resident set, VmHWM of
/proc/self/status, is that document's alone; ru_maxrss is not used because a forked child inherits
its parent's high-water mark).  The child builds ``minilm-chunk-mean`` through the registry
(all-MiniLM-L6-v2, 254-token windows, the default window-vector cache; ``--encoder`` wraps another
registered model), encodes one warm-up text,
then one document of N MiniLM tokens made of pseudo-random words (deterministic; no window
repeats, so the cache cannot help and holds every window vector: the worst case).  The RSS is also
sampled every 50 ms while encoding.  Ratios are against the 8 k-token run of the same invocation.

    HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/chunked_memory.py --sizes 8192 1048576 \
        --json benchmarks/chunked_memory.json
    # the same machinery over another registered encoder (here the static model, 256-token windows):
    HF_HUB_OFFLINE=1 python benchmarks/chunked_memory.py --encoder minilm-static --window 256 ...
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

WORDS = [
    "river",
    "mountain",
    "city",
    "history",
    "science",
    "music",
    "people",
    "water",
    "light",
    "system",
    "theory",
    "market",
    "language",
    "garden",
    "winter",
    "summer",
    "ocean",
    "forest",
    "machine",
    "story",
    "road",
    "bridge",
    "window",
    "paper",
    "letter",
    "number",
    "table",
    "village",
    "engine",
    "planet",
    "signal",
    "harvest",
    "lantern",
    "meadow",
    "copper",
    "silver",
    "thunder",
    "canyon",
]


def document(n_tokens: int, tokenizer) -> str:
    """About ``n_tokens`` MiniLM tokens of pseudo-random words (deterministic, seed 0)."""
    rng = random.Random(0)
    sample = " ".join(rng.choice(WORDS) for _ in range(2000))
    per_word = len(tokenizer.encode(sample, add_special_tokens=False).ids) / 2000
    rng = random.Random(0)
    n_words = int(n_tokens / per_word)
    out = []
    for i in range(n_words):
        out.append(rng.choice(WORDS))
        if i % 17 == 16:
            out[-1] += "."
    return " ".join(out)


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """VmHWM: this process's peak RSS since exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(n_tokens: int, threads: int, encoder: str, window: int | None) -> None:
    import gc
    import threading

    import numpy as np
    import torch

    from lam_mteb_plugins.baselines import chunked

    torch.set_num_threads(threads)
    enc = chunked.create_encoder(encoder, window=window, pool="mean")
    enc.encode(["warm up"])
    text = document(n_tokens, enc.tokenizer)
    tokens = sum(
        len(offs)
        for _, _, offs in __import__(
            "lam_mteb_plugins.baselines.chunked", fromlist=["iter_words"]
        ).iter_words(text, enc.tokenizer)
    )
    gc.collect()
    rss_loaded = peak_rss_mb()
    before = current_rss_mb()
    samples, done = [before], threading.Event()

    def sample():
        while not done.wait(0.05):
            samples.append(current_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    vec = enc.encode([text], batch_size=32)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    print(
        json.dumps(
            {
                "encoder": encoder,
                "window": enc.window,
                "target_tokens": n_tokens,
                "tokens": tokens,
                "chars": len(text),
                "windows": enc.cache.misses,
                "wall_s": round(wall, 1),
                "tokens_per_s": round(tokens / wall, 1),
                "peak_rss_before_encode_mb": round(rss_loaded, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "rss_before_encode_mb": round(before, 1),
                "max_rss_during_encode_mb": round(max(samples), 1),
                "finite": bool(np.isfinite(vec).all()),
                "shape": list(vec.shape),
            }
        )
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[8192, 1_048_576])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--encoder", default="minilm", help="registered model wrapped by chunked (default minilm)"
    )
    p.add_argument(
        "--window", type=int, default=None, help="window tokens (default: the encoder's limit)"
    )
    p.add_argument("--json", default=None)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.threads, args.encoder, args.window)
        return 0
    rows = []
    for n in args.sizes:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            str(n),
            "--threads",
            str(args.threads),
            "--encoder",
            args.encoder,
        ] + (["--window", str(args.window)] if args.window else [])
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"},
        )
        if out.returncode != 0:
            raise SystemExit(f"child for {n} tokens failed:\n{out.stderr[-2000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{row['tokens']:>9} tokens, {row['windows']} windows: peak RSS "
            f"{row['peak_rss_mb']:.0f} MB (before encoding {row['peak_rss_before_encode_mb']:.0f}; "
            f"sampled max while encoding {row['max_rss_during_encode_mb']:.0f}), "
            f"{row['wall_s']:.0f} s, {row['tokens_per_s']:.0f} tok/s",
            flush=True,
        )
    base = rows[0]
    for row in rows[1:]:
        print(
            f"{row['tokens']} vs {base['tokens']} tokens: peak RSS ratio "
            f"{row['peak_rss_mb'] / base['peak_rss_mb']:.3f}, sampled max ratio "
            f"{row['max_rss_during_encode_mb'] / base['max_rss_during_encode_mb']:.3f}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "threads": args.threads}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
