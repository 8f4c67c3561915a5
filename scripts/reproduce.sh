#!/usr/bin/env bash
# Re-run every (model, task) pair of the LAM-state table (docs/lam.md) into results/ (mteb's
# layout), resumable: pairs with a result file are skipped (mteb's only-missing).  One process per
# group so that models sharing an encoder share its vectors: the chunked MiniLM models share the
# in-process window cache, the LAM v2 models the LAM_MTEB_LAM2_CACHE folder.
#   LAM_MTEB_DATA_DIR=../shared/data bash scripts/run_issue23_table.sh [TASK ...]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LAM_MTEB_DATA_DIR:?set LAM_MTEB_DATA_DIR to the data folder (e.g. ../shared/data)}"
export HF_HUB_OFFLINE=1
export LAM_MTEB_LAM2_CACHE="${LAM_MTEB_LAM2_CACHE:-$HOME/.cache/lam_mteb/lam2-parts}"
out="${RESULTS:-results}"
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(STSBenchmark SciFact LEMBQMSumRetrieval LEMBPasskeyRetrieval LEMBNeedleRetrieval)
status=0
run() { lam-mteb run --output-folder "$out" -t "${tasks[@]}" -m "$@" || status=1; }
run minilm
run lam-state-dense lam-state lam-hybrid-dense lam-hybrid lam-mean
run minilm-chunk-mean minilm-chunk-mean-lexical minilm-chunk-max
# bm25 is a search model: retrieval tasks only
retrieval=()
for t in "${tasks[@]}"; do [ "$t" = STSBenchmark ] || retrieval+=("$t"); done
[ ${#retrieval[@]} -eq 0 ] || lam-mteb run --output-folder "$out" -t "${retrieval[@]}" -m bm25 || status=1
exit $status
