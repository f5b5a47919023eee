#!/usr/bin/env bash
# Print the path of a working Python 3.10 interpreter (Lava 0.10.0 needs exactly 3.10).
set -u
candidates=("${PYTHON310:-}" python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10)
for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 /opt/python*/bin/python3.10; do
  candidates+=("$d")
done
for c in "${candidates[@]}"; do
  [ -n "$c" ] || continue
  if "$c" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then
    command -v "$c" 2>/dev/null || echo "$c"
    exit 0
  fi
done
echo "snnc needs Python 3.10 (Lava 0.10.0 fails on 3.11+). Install it (e.g. 'pyenv install 3.10' or your distribution's python3.10) or set PYTHON310=/path/to/python3.10." >&2
exit 1
