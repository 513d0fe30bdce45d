#!/usr/bin/env bash
# Build the smaller one-file binary dist/image-batch-console-slim: what the console never imports
# is left out (tkinter/Tcl/Tk, the test and build packages, Pillow's font, colour-management and
# GUI bridges) and symbols are stripped. APP_NAME and PYTHON_BIN as in build_onefile.sh.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/onefile.sh
ensure_build_venv
# Checked against a running server's sys.modules (tests/test_binaries.py runs both binaries).
excluded=(
  tkinter _tkinter turtle turtledemo idlelib
  test unittest doctest pydoc_data lib2to3 distutils ensurepip
  pip setuptools pkg_resources wheel PyInstaller _pytest pytest hypothesis playwright
  xmlrpc curses
  PIL.ImageTk PIL._imagingtk PIL.ImageQt PIL.ImageFont PIL._imagingft PIL.ImageCms PIL._imagingcms
)
args=(--strip)
for module in "${excluded[@]}"; do
  args+=(--exclude-module "$module")
done
build_onefile "${APP_NAME:-image-batch-console-slim}" "${args[@]}"
