#!/usr/bin/env bash
# Release hygiene: the wheel builds, installs into a brand-new venv (nothing of the dev venv), and
# its console script runs: --version and an offline check of config.example.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/dist" .
wheel=$(ls "$work"/dist/deploy_fetcher-*.whl)
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$wheel"

expected=$(.venv/bin/python -c 'from deploy_fetcher import __version__; print(__version__)')
got=$("$work/venv/bin/fetcher" --version)
if [[ "$got" != "deploy-fetcher $expected" ]]; then
  echo "check-wheel: fetcher --version printed '$got', expected 'deploy-fetcher $expected'" >&2
  exit 1
fi
cd "$work"
FETCHER_STATE__PATH="$work/state.db" DASHBOARD_API_KEY=dummy \
  "$work/venv/bin/fetcher" check --offline --config "$OLDPWD/config.example.yaml"
echo "check-wheel: $(basename "$wheel") installs and runs in a clean venv"
