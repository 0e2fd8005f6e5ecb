# syntax=docker/dockerfile:1
#
# deploy-fetcher container image.
#
#   docker build -t deploy-fetcher:0.1.0 .
#   docker run -v fetcher-state:/var/lib/fetcher -v ./config.yaml:/etc/fetcher/config.yaml:ro \
#       -p 8080:8080 deploy-fetcher:0.1.0
#
# Two stages so the runtime image carries the installed package and nothing used to build it: the
# first stage turns the project and every dependency into wheels, the second installs those wheels
# offline (--no-index) from a bind mount, so not even the wheel files stay in a layer.

# One pinned base for both stages: a floating tag would change the interpreter under a running
# deployment on the next rebuild, and a tag can be re-pushed, so the digest pins the very image.
# Bump both deliberately (docs/operations.md, "Supply chain").
ARG PYTHON_IMAGE=python:3.11.12-slim-bookworm@sha256:dbf1de478a55d6763afaa39c2f3d7b54b25230614980276de5cacdde79529d0c

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel is built from (the .dockerignore allow-list says the same).
COPY requirements.lock requirements-build.lock pyproject.toml README.md ./
COPY src ./src
# Every dependency comes from the locks, each file checked against its sha256 (--require-hashes):
# a package replaced on the index, or a new release of a dependency, cannot slip into the image.
# The build backend is locked too and used without isolation (isolation would fetch it unpinned).
# Every runtime dependency ships manylinux wheels, so no compiler is needed here either. The
# postgres extra (psycopg with its bundled libpq) lets one image run with either state backend.
RUN python -m pip install --require-hashes --no-deps -r requirements-build.lock \
 && python -m pip wheel --wheel-dir /wheels --require-hashes --no-deps -r requirements.lock \
 && python -m pip wheel --wheel-dir /wheels --no-deps --no-build-isolation .


FROM ${PYTHON_IMAGE} AS runtime

# The package version; tests/deploy keeps this default equal to src/deploy_fetcher/_version.py.
ARG VERSION=0.1.0
# Redeclared to use the global value in this stage's labels.
ARG PYTHON_IMAGE

LABEL org.opencontainers.image.title="deploy-fetcher" \
      org.opencontainers.image.description="Pulls deployment activity out of GitHub Actions, GitLab and Azure DevOps and forwards it to deployment dashboards." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/deploy-fetcher/deploy-fetcher" \
      org.opencontainers.image.documentation="https://github.com/deploy-fetcher/deploy-fetcher/tree/main/docs" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed uid/gid so volume ownership, Kubernetes runAsUser/fsGroup and host bind mounts can be
# prepared in advance and survive image rebuilds.
RUN groupadd --system --gid 10001 fetcher \
 && useradd --system --uid 10001 --gid fetcher --no-create-home \
        --home-dir /var/lib/fetcher --shell /usr/sbin/nologin fetcher \
 && install -d -o fetcher -g fetcher -m 0750 /var/lib/fetcher \
 && install -d -o root -g root -m 0755 /etc/fetcher

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links=/wheels 'deploy-fetcher[postgres]' \
 && fetcher --version

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only under Kubernetes; nothing may try to
# write .pyc files next to the installed package. The FETCHER_* variables override the config file:
# inside a container the health server must listen on every interface and the state belongs on
# the volume, whatever the mounted config says.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FETCHER_CONFIG=/etc/fetcher/config.yaml \
    FETCHER_STATE__PATH=/var/lib/fetcher/state.db \
    FETCHER_SERVER__HOST=0.0.0.0 \
    FETCHER_LOG__FORMAT=json

# Cursors and the outbox: losing this volume means re-reading the lookback window and re-sending
# whatever was still queued.
VOLUME /var/lib/fetcher
WORKDIR /var/lib/fetcher

# /healthz, /readyz and /metrics (server.port).
EXPOSE 8080

# Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser override.
USER 10001:10001

# The fetcher checks itself (no curl in the image): exit 0 when /healthz answers 200, i.e. while
# its scheduler beats. Liveness, not readiness: one rejected token makes /readyz 503, and marking
# the container unhealthy for it (or restarting it) would fix nothing. The start period covers the
# state migration.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["fetcher", "healthcheck", "--live"]

# The daemon drains in-flight work on SIGTERM within its grace period (20 s by default); give
# `docker stop` a longer timeout than that (`docker stop -t 30`, compose stop_grace_period).
STOPSIGNAL SIGTERM

ENTRYPOINT ["fetcher"]
CMD ["run", "--config", "/etc/fetcher/config.yaml"]
