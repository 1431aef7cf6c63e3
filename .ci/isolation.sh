#!/usr/bin/env bash
# Isolation: each first-party plugin installed alone on the core, its tests run, then removed.
# One environment holds the core and its heavy dependencies (torch, transformers) once, so a
# plugin costs its own install (seconds), not a new environment (a minute). Usage:
#   isolation.sh [PLUGIN ...]      (default: every folder under plugins/)
set -euo pipefail
cd "$(dirname "$0")/.."
plugins=("$@")
if [ ${#plugins[@]} -eq 0 ]; then
  for dir in plugins/*/; do
    [ -f "$dir/pyproject.toml" ] && plugins+=("$(basename "$dir")")
  done
fi
installed=$(python -m pip list --format=freeze 2>/dev/null | grep -ci '^tokensmith-' || true)
if [ "$installed" != "0" ]; then
  echo "isolation: a tokensmith plugin is already installed in this env; start from a fresh one" >&2
  python -m pip list 2>/dev/null | grep -i '^tokensmith-' >&2
  exit 2
fi
failed=()
for name in "${plugins[@]}"; do
  echo "=== isolation: tokensmith-$name (core + this plugin only)"
  python -m pip install -q "plugins/$name"
  # the pytest script, not `python -m pytest`: that would put the source tree's tokensmith/ first.
  # This run checks that the plugin works on the core alone; the depth of its properties is
  # py311's job (full hypothesis settings), so fewer examples here.
  if ! pytest -q -p no:cacheprovider --hypothesis-profile=tokensmith-quick "plugins/$name/tests"; then
    failed+=("$name")
  fi
  python -m pip uninstall -q -y "tokensmith-$name"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "isolation: failed: ${failed[*]}" >&2
  exit 1
fi
echo "isolation: ${#plugins[@]} plugin(s) passed on their own"
