"""Wall time of one grid (models x tasks) run sequentially, on a local process pool and on Ray.

Each configuration is the real command line, ``lam-mteb run ... --output-folder OUT/<config>``,
started in a fresh process with the same CPU budget (``--cpus`` threads for the sequential run,
``--cpus`` jobs of 1 thread for the pool and for Ray), one after another in the same session.
Reported: wall seconds, speed-up against the sequential run (the baseline), whether every pair's
main score equals the sequential one, and the wall time of an identical second run (which must
find every pair stored and run none).

    HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/grid_executors.py --data-dir ../shared/data \\
        --models minilm lam-mean --tasks STSBenchmark --out /work/results/14
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


def run(cmd: list[str], env: dict, log: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False
        ).returncode
    return time.perf_counter() - t0, rc


def scores(folder: Path) -> dict[str, float]:
    out = {}
    for path in sorted(folder.glob("results/*/*/*.json")):
        if path.name == "model_meta.json":
            continue
        data = json.loads(path.read_text())
        values = [s["main_score"] for split in data["scores"].values() for s in split]
        out[f"{path.parent.parent.name} x {data['task_name']}"] = sum(values) / len(values)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["minilm", "lam-mean"])
    ap.add_argument("--tasks", nargs="+", default=["STSBenchmark"])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument(
        "--out", required=True, help="folder for the result folders, logs and grid_executors.json"
    )
    ap.add_argument("--cpus", type=int, default=2, help="CPU budget of every configuration")
    ap.add_argument("--configs", nargs="+", default=["sequential", "local-jobs", "ray"])
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = [
        lam_mteb_bin(),
        "run",
        "-m",
        *args.models,
        "-t",
        *args.tasks,
        "--data-dir",
        args.data_dir,
    ]
    configs = {
        "sequential": (
            ["--executor", "local", "--jobs", "1"],
            {"OMP_NUM_THREADS": str(args.cpus), "MKL_NUM_THREADS": str(args.cpus)},
        ),
        "local-jobs": (
            ["--executor", "local", "--jobs", str(args.cpus), "--cpus-per-job", "1"],
            {},
        ),
        "ray": (["--executor", "ray", "--cpus-per-job", "1"], {"RAY_ADDRESS": ""}),
    }
    rows = []
    for name in args.configs:
        extra, env_extra = configs[name]
        folder = out / name
        if folder.exists():
            raise SystemExit(f"{folder} exists: give a fresh --out (results are never overwritten)")
        env = {**os.environ, **env_extra}
        if name != "sequential":
            env.pop("OMP_NUM_THREADS", None)
            env.pop("MKL_NUM_THREADS", None)
        cmd = [*base, "--output-folder", str(folder), *extra]
        print("+", " ".join(cmd), flush=True)
        wall, rc = run(cmd, env, out / f"{name}.log")
        again, rc2 = run(cmd, env, out / f"{name}.rerun.log")
        rows.append(
            {
                "config": name,
                "command": " ".join(cmd),
                "wall_s": round(wall, 1),
                "rc": rc,
                "rerun_wall_s": round(again, 1),
                "rerun_rc": rc2,
                "scores": scores(folder),
                "rerun_ran_nothing": " done " not in (out / f"{name}.rerun.log").read_text(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    seq = next((r for r in rows if r["config"] == "sequential"), None)
    for r in rows:
        if seq:
            r["speedup_vs_sequential"] = round(seq["wall_s"] / r["wall_s"], 2)
            r["same_scores_as_sequential"] = all(
                abs(r["scores"].get(k, -1) - v) < 1e-6 for k, v in seq["scores"].items()
            )
    (out / "grid_executors.json").write_text(
        json.dumps(
            {
                "models": args.models,
                "tasks": args.tasks,
                "cpus": args.cpus,
                "nproc": os.cpu_count(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(
        "\n| config | wall s | x sequential | same scores | 2nd run s (runs nothing) "
        "|\n|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['config']} | {r['wall_s']} | {r.get('speedup_vs_sequential', '-')} | "
            f"{r.get('same_scores_as_sequential', '-')} | {r['rerun_wall_s']} "
            f"({r['rerun_ran_nothing']}) |"
        )
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
