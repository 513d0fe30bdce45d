#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite: ./test.sh [pytest options].
# Installs the dev requirements into .venv, and Debian's chromium for the browser tests when
# it is missing and apt-get can be used (root, or sudo without a password).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
ensure_venv requirements-dev.txt

# Debian packages the tests use: chromium (browser tests), a CJK font (readable Chinese
# screenshots), openssl (the TLS proxy test makes its certificate with it).
if { [ ! -x /usr/bin/chromium ] || ! command -v openssl >/dev/null; } && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
  echo "Installing Debian's chromium and openssl for the tests" >&2
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei openssl >/dev/null \
    || echo "warning: could not install chromium/openssl; browser and TLS proxy tests will fail" >&2
fi

exec .venv/bin/python -m pytest "$@"
