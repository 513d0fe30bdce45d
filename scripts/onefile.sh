# Shared by build_onefile.sh and build_onefile_slim.sh: the build venv and the PyInstaller call.
# Sourced from the checkout's root; PYTHON_BIN picks the interpreter (3.11+, built with a shared
# libpython, which PyInstaller needs), BUILD_VENV the venv (default .venv-build).

BUILD_VENV="${BUILD_VENV:-.venv-build}"

# Create $BUILD_VENV with PYTHON_BIN when missing or made by another interpreter, and keep it in
# step with requirements.txt + requirements-build.txt.
ensure_build_venv() {
  local python="${PYTHON_BIN:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "The binaries need Python 3.11 or newer; '$python' is not. Set PYTHON_BIN." >&2
    exit 2
  fi
  if [ "$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED") or 0)')" != "1" ]; then
    echo "'$python' has no shared libpython, which PyInstaller needs. Use another PYTHON_BIN" >&2
    echo "(Debian's /usr/bin/python3.11 has one; with pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.11)." >&2
    exit 2
  fi
  local interpreter
  interpreter=$("$python" -c 'import sys; print(sys.base_prefix, sys.version.split()[0])')
  if [ -x "$BUILD_VENV/bin/python" ] && [ "$(cat "$BUILD_VENV/.interpreter" 2>/dev/null)" != "$interpreter" ]; then
    echo "Recreating $BUILD_VENV for $python" >&2
    rm -rf "$BUILD_VENV"
  fi
  if [ ! -x "$BUILD_VENV/bin/python" ]; then
    echo "Creating $BUILD_VENV with $python" >&2
    "$python" -m venv "$BUILD_VENV"
    echo "$interpreter" > "$BUILD_VENV/.interpreter"
  fi
  local stamp="$BUILD_VENV/.installed" digest
  digest=$(cat requirements.txt requirements-build.txt | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "Installing requirements-build.txt into $BUILD_VENV" >&2
    "$BUILD_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-build.txt
    echo "$digest" > "$stamp"
  fi
}

# Build dist/<name> from app.py with static/ inside (console/resources.py finds it in
# sys._MEIPASS); further arguments go to PyInstaller. Work files and the spec stay under build/.
build_onefile() {
  local name="$1"
  shift
  local root
  root=$(pwd)
  "$BUILD_VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN --onefile --name "$name" \
    --distpath "$root/dist" --workpath "$root/build/$name" --specpath "$root/build/$name" \
    --paths "$root" --add-data "$root/static:static" "$@" "$root/app.py"
  "$root/dist/$name" --version >/dev/null  # the binary starts, or the build failed
  echo "Built dist/$name ($(du -h "$root/dist/$name" | cut -f1))" >&2
}
