"""`lam-mteb encode`: peak memory against corpus size (streaming), and Ray Data against local.

Builds plain-text corpora (one sentence a line, from the STS Benchmark train/dev sentences, repeated
to reach each size) and runs the real command on each, in a fresh process:

- local streaming at ``--sizes`` (e.g. 2 000 and 20 000 documents): wall time, docs/s and the
  process's peak RSS (VmHWM from /proc, sampled until it exits); the ratio of peak RSS between the
  largest and the smallest corpus is the streaming check (about 1.0 means memory does not grow);
- Ray (``--executor ray``, a local Ray of ``--cpus`` CPUs, one model replica per actor) on the
  largest corpus, against local with the same thread budget: wall time, ratio, and whether both
  wrote the same vectors for the same ids.

    HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/encode_stream.py --sts \\
        ../shared/data/stsbenchmark \\
        --model minilm --sizes 2000 20000 --out /work/results/14/encode
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def lam_mteb_bin() -> str:
    here = Path(sys.executable).parent / "lam-mteb"
    return str(here) if here.exists() else "lam-mteb"


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run(cmd: list[str], env: dict, log: Path) -> dict:
    t0 = time.perf_counter()
    peak = 0.0
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            peak = max(peak, vm_hwm_mb(proc.pid) or 0.0)
            time.sleep(0.2)
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "rc": proc.returncode,
        "peak_rss_mb": round(peak, 1),
    }


def sentences(sts: Path) -> list[str]:
    out = []
    for name in ("sts-train.csv", "sts-dev.csv"):
        for line in (sts / name).read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 7:
                out.extend(p.strip() for p in parts[5:7] if p.strip())
    return out


def vectors(path: Path) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return dict(
        zip(
            table.column("id").to_pylist(),
            np.asarray(table.column("embedding").to_pylist(), dtype="float32"),
            strict=True,
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sts", required=True, help="the stsbenchmark/ raw folder (train/dev sentences)"
    )
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pool = sentences(Path(args.sts))
    report = {"model": args.model, "cpus": args.cpus, "rows": args.rows, "runs": []}
    for n in sorted(args.sizes):
        corpus = out / f"corpus_{n}.txt"
        corpus.write_text("\n".join(pool[i % len(pool)] for i in range(n)) + "\n", encoding="utf-8")
    base_env = {**os.environ, "OMP_NUM_THREADS": str(args.cpus), "MKL_NUM_THREADS": str(args.cpus)}
    for n in sorted(args.sizes):
        target = out / f"local_{n}.parquet"
        cmd = [
            lam_mteb_bin(),
            "encode",
            "-m",
            args.model,
            "--input",
            str(out / f"corpus_{n}.txt"),
            "--output",
            str(target),
            "--rows",
            str(args.rows),
            "--overwrite",
        ]
        print("+", " ".join(cmd), flush=True)
        row = {
            "mode": "local",
            "docs": n,
            "command": " ".join(cmd),
            **run(cmd, base_env, out / f"local_{n}.log"),
        }
        row["docs_per_s"] = round(n / row["wall_s"], 1)
        report["runs"].append(row)
        print(json.dumps(row), flush=True)
    largest = max(args.sizes)
    if not args.no_ray:
        target = out / f"ray_{largest}.parquet"
        cmd = [
            lam_mteb_bin(),
            "encode",
            "-m",
            args.model,
            "--input",
            str(out / f"corpus_{largest}.txt"),
            "--output",
            str(target),
            "--rows",
            str(args.rows),
            "--executor",
            "ray",
            "--cpus-per-worker",
            "1",
            "--overwrite",
        ]
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAY_ADDRESS")
        }
        print("+", " ".join(cmd), flush=True)
        row = {
            "mode": "ray",
            "docs": largest,
            "command": " ".join(cmd),
            **run(cmd, env, out / f"ray_{largest}.log"),
        }
        row["docs_per_s"] = round(largest / row["wall_s"], 1)
        if row["rc"] == 0:
            import numpy as np

            a, b = vectors(out / f"local_{largest}.parquet"), vectors(target)
            row["same_ids"] = sorted(a) == sorted(b)
            row["max_abs_diff"] = (
                float(max(np.abs(a[k] - b[k]).max() for k in a)) if row["same_ids"] else None
            )
        report["runs"].append(row)
        print(json.dumps(row), flush=True)
    local = {r["docs"]: r for r in report["runs"] if r["mode"] == "local"}
    small, big = min(local), max(local)
    report["peak_rss_ratio_largest_vs_smallest"] = round(
        local[big]["peak_rss_mb"] / local[small]["peak_rss_mb"], 3
    )
    ray_row = next((r for r in report["runs"] if r["mode"] == "ray"), None)
    if ray_row:
        report["ray_speedup_vs_local"] = round(local[big]["wall_s"] / ray_row["wall_s"], 2)
    (out / "encode_stream.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    return 0 if all(r["rc"] == 0 for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
