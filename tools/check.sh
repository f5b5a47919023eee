#!/usr/bin/env bash
# Static checks run by CI (`make check`): ruff over the whole tree, and mypy on snnc.ir + snnc.backends,
# which must have no error at all, and on snnc.compiler at the error count recorded in
# tools/mypy_baseline.txt. That count may only go down: a new error fails the check; a lower count
# asks for the baseline to be lowered.
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

check_group() {  # name, then the packages; a group without a baseline line may have no error
  local name=$1; shift
  local baseline out count args=()
  baseline=$(awk -v n="$name" '$1 == n {print $2}' tools/mypy_baseline.txt)
  baseline=${baseline:-0}
  for p in "$@"; do args+=(-p "$p"); done
  echo "== mypy $* (baseline $baseline)"
  out=$("$PY" -m mypy "${args[@]}" 2>&1)
  count=$(printf '%s\n' "$out" | grep -c ': error:')
  if [ "$count" -gt "$baseline" ]; then
    printf '%s\n' "$out" | grep ': error:' | tail -40
    echo "mypy: $count errors in $*, more than the baseline $baseline: fix the new ones"
    status=1
  else
    echo "mypy: $count errors in $* (baseline $baseline)"
    if [ "$count" -lt "$baseline" ]; then echo "  lower '$name' in tools/mypy_baseline.txt to $count"; fi
  fi
}
check_group ir_backends snnc.ir snnc.backends
check_group compiler snnc.compiler
exit $status
