"""Where the deployment files live, relative to this checkout."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
COMPOSE_DIR = DEPLOY / "compose"
SYSTEMD_UNIT = DEPLOY / "systemd" / "deploy-fetcher.service"
PYPROJECT = ROOT / "pyproject.toml"
