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
# the tokensmith-<x> distributions a pyproject.toml's [project] dependencies name, as folder names
first_party_deps() {
  python - "$1" <<'PY'
import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb")).get("project", {}).get("dependencies", [])
for dep in deps:
    m = re.match(r"tokensmith-([A-Za-z0-9_.-]+?)(?:[<>=!~ ;\[]|$)", dep)
    if m:
        print(m.group(1))
PY
}
# a plugin's build needs only setuptools: with it in this env, pip skips making a fresh
# build environment for every plugin (~4 s each)
build_flags=()
if python -c "import setuptools" 2>/dev/null; then build_flags=(--no-build-isolation); fi
failed=()
for name in "${plugins[@]}"; do
  # the first-party plugins it declares as dependencies (tokensmith-datasets, -baselines...)
  # are not on PyPI: they come from their folders, in the same pip call
  deps=()
  while read -r dep; do
    [ -n "$dep" ] && [ "$dep" != "$name" ] && deps+=("plugins/$dep")
  done < <(first_party_deps "plugins/$name/pyproject.toml")
  echo "=== isolation: tokensmith-$name (core + this plugin${deps[*]:+ + ${deps[*]#plugins/}})"
  python -m pip install -q "${build_flags[@]}" "plugins/$name" "${deps[@]}"
  # the pytest script, not `python -m pytest`: that would put the source tree's tokensmith/ first.
  # This is the one run of each plugin's own tests (py311 runs the core's and the cross-plugin
  # ones with everything installed), with the full hypothesis settings.
  if ! pytest -q -p no:cacheprovider "plugins/$name/tests"; then
    failed+=("$name")
  fi
  python -m pip freeze 2>/dev/null | grep -io '^tokensmith[-_][a-z0-9_.-]*' | sort -u | xargs -r python -m pip uninstall -q -y
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "isolation: failed: ${failed[*]}" >&2
  exit 1
fi
echo "isolation: ${#plugins[@]} plugin(s) passed on their own"
