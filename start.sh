#!/usr/bin/env bash
# Run Image Batch Console from a checkout: ./start.sh [app.py options, see --help].
# Creates .venv on first use and reinstalls requirements only when they change.
# PYTHON_BIN picks the interpreter that creates the venv (default: python3, 3.11+).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
ensure_venv requirements.txt
exec .venv/bin/python app.py "$@"
