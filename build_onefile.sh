#!/usr/bin/env bash
# Build the one-file Linux binary dist/image-batch-console with PyInstaller (see README, Binaries).
# APP_NAME names the file under dist/; PYTHON_BIN picks the interpreter that creates .venv-build.
# The binary takes the same options and environment variables as ./start.sh.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/onefile.sh
ensure_build_venv
build_onefile "${APP_NAME:-image-batch-console}"
