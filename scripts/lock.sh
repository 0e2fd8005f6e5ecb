#!/usr/bin/env bash
# Regenerate the hash-locked requirements the container image is built from:
#   requirements.lock        the runtime dependencies (pyproject.toml, with the postgres extra)
#   requirements-build.lock  the build backend (requirements-build.in)
# Needs pip-tools (pip install pip-tools) and the package index. Run it after changing a
# dependency in pyproject.toml, review the diff, commit both files. Then run scripts/audit.py.
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links)
pip-compile "${common[@]}" --extra postgres --output-file requirements.lock pyproject.toml
pip-compile "${common[@]}" --output-file requirements-build.lock requirements-build.in
