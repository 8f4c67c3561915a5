#!/usr/bin/env bash
# Run the mteb adapter and core bridge tests against other mteb releases inside the current venv (mteb is pure Python,
# so each release is installed with --no-deps into a throwaway target dir and put first on PYTHONPATH).
# Usage: scripts/check_mteb_versions.sh 2.26.20 2.26.24
set -euo pipefail
cd "$(dirname "$0")/.."
for version in "$@"; do
  target=$(mktemp -d)
  python -m pip install -q --no-deps --target "$target" "mteb==$version"
  echo "== mteb $version"
  PYTHONPATH="$target" HF_HUB_OFFLINE=1 python -m pytest -q -p no:cacheprovider \
    tests/test_core_mteb_compat.py tests/test_core_bridge.py tests/test_core_registry.py tests/test_core_cli.py
  rm -rf "$target"
done
