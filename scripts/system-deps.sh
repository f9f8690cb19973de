#!/usr/bin/env bash
# Installs the Debian packages that chainyard and its tests need, when they are missing: bubblewrap
# (the local runtime's replica sandbox, docs/security.md), PostgreSQL (the store tests) and
# Chromium (the dashboard's browser test drives /usr/bin/chromium with Playwright; a font so that
# its screenshots show text). `system-deps.sh serve`: only what the server itself uses;
# `system-deps.sh bench`: only what the benchmarks add (wrk, for bench/data_plane.py and bench/async.py).
set -euo pipefail
only_serve=${1:-}

have_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

missing=()
if [ "$only_serve" = bench ]; then
  command -v wrk >/dev/null || missing+=(wrk)
else
  command -v bwrap >/dev/null || missing+=(bubblewrap)
  if [ "$only_serve" != serve ]; then
    have_postgres || missing+=(postgresql)
    [ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
  fi
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "chainyard needs: ${missing[*]} (run as root or install them: apt-get install ${missing[*]})" >&2
  # The server starts without bubblewrap (and says so); the tests need everything.
  [ "$only_serve" = serve ] && exit 0
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
