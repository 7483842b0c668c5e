#!/usr/bin/env bash
# Install the servers the test suite starts for real when they are missing: Debian's
# redis-server and postgresql (the fixtures in tests/support/services.py run throwaway ones on
# loopback; nothing is started or enabled here), and wrk and h2load for the benchmarks. `make
# test` runs this first.
#
# Without apt-get, or without root or sudo, it says what to install and leaves it there: the
# tests that need a server are then skipped, except under CI=true, where they fail (and so
# does this script).
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
# wrk: the external HTTP load generator the benchmarks (and their tests) drive
command -v wrk >/dev/null || missing+=(wrk)
# h2load (nghttp2-client): the external HTTP/2 load generator that drives gRPC, and HTTP/1.1
# beside it, in the transport benchmark
command -v h2load >/dev/null || missing+=(nghttp2-client)
if ! command -v pg_ctl >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
then
  missing+=(postgresql)
fi
((${#missing[@]})) || exit 0

ci=false
case ${CI:-} in 1 | true | TRUE | True | yes) ci=true ;; esac

cannot() {
  echo "the test suite needs ${missing[*]}: $1; install them, or the tests that need them" \
       "are skipped (they fail under CI=true)" >&2
  if $ci; then exit 1; fi
  exit 0
}

command -v apt-get >/dev/null || cannot "no apt-get on this machine"
as_root=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || cannot "not root and no sudo"
  as_root=(sudo)
fi
echo "installing ${missing[*]} (Debian packages) for the test suite" >&2
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
