#!/usr/bin/env bash
# Re-run every evaluation behind the published numbers into results/ (mteb's layout), then
# regenerate the tables from the files.  Resumable: a (model, task) pair that already has a result
# file is skipped (mteb's only-missing), so a second run only fills what is missing.  One process
# per group so that models sharing an encoder share its vectors: the chunked MiniLM models share
# the in-process window cache, the LAM v2 models the LAM_MTEB_LAM2_CACHE folder.
#   LAM_MTEB_DATA_DIR=../shared/data scripts/reproduce.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LAM_MTEB_DATA_DIR:?set LAM_MTEB_DATA_DIR to the data folder (e.g. ../shared/data)}"
export HF_HUB_OFFLINE=1
export LAM_MTEB_LAM2_CACHE="${LAM_MTEB_LAM2_CACHE:-$HOME/.cache/lam_mteb/lam2-parts}"
tasks=(STSBenchmark SciFact LEMBQMSumRetrieval LEMBPasskeyRetrieval LEMBNeedleRetrieval)
status=0
run() { lam-mteb run --output-folder results "$@" || status=1; }
run -t "${tasks[@]}" -m minilm minilm-static
run -t "${tasks[@]}" -m lam-state-dense lam-state lam-hybrid-dense lam-hybrid lam-mean
run -t "${tasks[@]}" -m minilm-chunk-mean minilm-chunk-mean-lexical minilm-chunk-max
run -t "${tasks[@]:1}" -m bm25 # a search model: the retrieval tasks only
run -t LVMNextVector -m minilm lvm-t amn lvm-r
lam-mteb leaderboard --results results --out leaderboard
python scripts/results_table.py
exit $status
