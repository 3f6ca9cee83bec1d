#!/usr/bin/env bash
# The test command of the README: everything Troupe's CI runs, from any directory.
#
#   1. installs what the tests need (kcat, and cmake + libcurl4-openssl-dev for the
#      rdkafka dev-dependency, Node.js and npm, Go and Sarama, from Debian; a Python
#      venv in .venv with tests/python/requirements.txt; tests/js/node_modules with
#      KafkaJS)
#   2. builds the release binary the black-box tests start (target/release/troupe)
#   3. runs the Rust unit and integration tests
#   4. runs the black-box client tests in tests/python against real brokers
#
# Environment:
#   TROUPE_TEST_SKIP_APT=1      do not apt-get install anything
#   TROUPE_TEST_PYTEST_ARGS     extra pytest arguments, e.g. "-k kcat -x"
#   TROUPE_BIN                  broker binary for the Python tests (default: the release build)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

step() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------- 1. system packages
apt_packages=()
command -v kcat >/dev/null 2>&1 || apt_packages+=(kcat)
# Debian's own python3 needs python3-venv for `python3 -m venv` (a pyenv Python has it).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_packages+=(python3-venv)
# The rdkafka dev-dependency (benches/e2e.rs) builds librdkafka from source with cmake,
# and every `cargo test` compiles dev-dependencies: it needs cmake and curl's headers.
command -v cmake >/dev/null 2>&1 || apt_packages+=(cmake)
command -v curl-config >/dev/null 2>&1 || apt_packages+=(libcurl4-openssl-dev)
# KafkaJS tests (tests/js) run on Node.js; npm installs the pinned kafkajs.
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
# Sarama test (tests/go): Go and Debian's Sarama sources (GOPATH mode, no module proxy).
command -v go >/dev/null 2>&1 || apt_packages+=(golang-go)
[ -d /usr/share/gocode/src/github.com/Shopify/sarama ] || apt_packages+=(golang-github-shopify-sarama-dev)
# The status page test (tests/python/test_metrics.py) loads it in headless Chromium.
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
if [ "${TROUPE_TEST_SKIP_APT:-0}" = "1" ]; then
    step "apt: skipped (TROUPE_TEST_SKIP_APT=1)${apt_packages[*]:+; missing: ${apt_packages[*]}}"
elif [ "${#apt_packages[@]}" -gt 0 ]; then
    step "apt: installing ${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
else
    step "apt: nothing to install (kcat, python3-venv, cmake, libcurl4-openssl-dev, node, npm, go, sarama, chromium present)"
fi

# ---------------------------------------------------------------- 2. python venv
step "python: venv .venv + tests/python/requirements.txt"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt

step "node: npm ci in tests/js (kafkajs, pinned by package-lock.json)"
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

# ---------------------------------------------------------------- 3. build
step "cargo build --release --locked"
cargo build --release --locked

# ---------------------------------------------------------------- 4. rust tests
step "cargo test --workspace --locked"
cargo test --workspace --locked

# ---------------------------------------------------------------- 5. client tests
export TROUPE_BIN="${TROUPE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/troupe}"
extra=()
if [ -n "${TROUPE_TEST_PYTEST_ARGS:-}" ]; then
    read -r -a extra <<<"$TROUPE_TEST_PYTEST_ARGS"
fi
step "pytest tests/python (broker: $TROUPE_BIN)"
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=120 tests/python "${extra[@]+"${extra[@]}"}"
