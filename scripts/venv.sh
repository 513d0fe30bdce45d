# Shared by start.sh and test.sh: create .venv and keep it in step with a requirements file.
ensure_venv() {
  local requirements="$1"
  local python="${PYTHON_BIN:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Image Batch Console needs Python 3.11 or newer; '$python' is not. Set PYTHON_BIN." >&2
    exit 2
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $python" >&2
    "$python" -m venv .venv
  fi
  # Reinstall only when the requirement files changed since the last install.
  local stamp=".venv/.installed-$(basename "$requirements")"
  local digest
  digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "Installing $requirements into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$digest" > "$stamp"
  fi
}
