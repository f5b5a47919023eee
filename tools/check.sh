#!/usr/bin/env bash
# Static checks run by CI (`make check`): ruff over the whole tree, mypy clean on snnc.ir and
# snnc.backends, and mypy on snnc.compiler at a recorded baseline that may only go down.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
status=0

echo "== ruff"
"$PY" -m ruff check --no-cache ir backends compiler tests examples benchmarks tools || status=1

# mypy resolves `snnc.*` through a symlinked package (the repo maps snnc.ir -> ir/ etc. in pyproject).
src=build/mypy_src/snnc
mkdir -p "$src" && touch "$src/__init__.py"
for d in ir backends compiler; do ln -sfn "../../../$d" "$src/$d"; done
export MYPYPATH=build/mypy_src

echo "== mypy snnc.ir snnc.backends (must be clean)"
"$PY" -m mypy -p snnc.ir -p snnc.backends || status=1

echo "== mypy snnc.compiler (baseline: tools/mypy_baseline.txt)"
baseline=$(cat tools/mypy_baseline.txt)
out=$("$PY" -m mypy -p snnc.compiler 2>&1)
count=$(printf '%s\n' "$out" | grep -c ': error:')
if [ "$count" -gt "$baseline" ]; then
  printf '%s\n' "$out" | grep ': error:' | tail -40
  echo "mypy: $count errors in snnc.compiler, more than the baseline $baseline: fix the new ones"
  status=1
else
  echo "mypy: $count errors in snnc.compiler (baseline $baseline)"
  [ "$count" -lt "$baseline" ] && echo "  lower tools/mypy_baseline.txt to $count"
fi
exit $status
