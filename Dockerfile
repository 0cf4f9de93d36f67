# syntax=docker/dockerfile:1
# tagstream worker image: CPU-only PyTorch, non-root, read-only-root-filesystem friendly.
#
#   docker build -t tagstream:0.1.0 .
#   docker run --rm -e TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS=broker:9092 -p 8080:8080 tagstream:0.1.0
#
# Without a Docker engine: `make image` (scripts/image, docs/image.md) builds this file with
# buildah and runs the result. Build arguments:
#   PYTHON_IMAGE     the base of both stages: a Debian-based image with python3 (>= 3.11) and
#                    its venv module; scripts/image makes one with debootstrap when Docker Hub is
#                    out of reach
#   TORCH_INDEX_URL  where torch comes from. Default: PyTorch's CPU-only wheel index (what a real
#                    build uses). --build-arg TORCH_INDEX_URL=https://pypi.org/simple takes PyPI's
#                    build of the same version instead (for machines that reach only PyPI; it
#                    carries the CUDA libraries, several GB more)
#   EXTRAS           tagstream's extras, comma-separated: aws (SASL AWS_MSK_IAM: botocore),
#                    gssapi (SASL GSSAPI: python-gssapi, built against the distribution's
#                    Kerberos libraries, which the runtime stage then carries). Default: none
#
# The install steps live in scripts/image-install, which tests/deploy/test_image.py runs into a
# fresh virtualenv, so CI checks what this build does without a Docker engine.

# Fully qualified, so buildah and podman need no short-name resolution.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

# ---- build: a self-contained virtualenv in /opt/tagstream ----------------------------------
FROM ${PYTHON_IMAGE} AS build
# CPU-only wheels: the default PyPI torch pulls in several GB of CUDA libraries.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.15.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
ARG EXTRAS=""
WORKDIR /src
# python-gssapi has no Linux wheels: the gssapi extra is compiled against libkrb5.
# hadolint ignore=DL3008
RUN case ",${EXTRAS}," in *,gssapi,*) \
        apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libkrb5-dev \
        && rm -rf /var/lib/apt/lists/* ;; esac
# .dockerignore admits only what the install needs (an allowlist).
COPY . .
RUN sh scripts/image-install /opt/tagstream /src

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# What the image is (OCI annotations), and which torch build it carries: cpu (PyTorch's CPU
# index) or cuda (PyPI's build, several GB larger; scripts/image builds it only when asked).
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG TORCH_VARIANT=cpu
LABEL org.opencontainers.image.title="tagstream" \
      org.opencontainers.image.description="Streaming named-entity tagging worker for Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.tagstream.torch.variant="${TORCH_VARIANT}"
ARG EXTRAS=""
# hadolint ignore=DL3008
RUN case ",${EXTRAS}," in *,gssapi,*) \
        apt-get update && apt-get install -y --no-install-recommends libgssapi-krb5-2 \
        && rm -rf /var/lib/apt/lists/* ;; esac
# Same uid/gid as the Helm chart's runAsUser/runAsGroup.
RUN groupadd --system --gid 10001 tagstream \
    && useradd --system --uid 10001 --gid tagstream --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin tagstream
COPY --from=build /opt/tagstream /opt/tagstream
# HOME=/tmp: the only writable place when the root filesystem is read-only. The working
# directory is not writable, so no stray .env file can appear where the worker looks for one.
ENV PATH=/opt/tagstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /opt/tagstream
USER 10001:10001
# /metrics, /healthz, /readyz (TAGSTREAM_HTTP__PORT).
EXPOSE 8080
# For plain `docker run`; Kubernetes uses the chart's probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TAGSTREAM_HTTP__PORT', '8080'), timeout=4)"]
# SIGTERM drains the worker (finish the batch, deliver, commit) within TAGSTREAM_DRAIN_TIMEOUT_S.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tagstream"]
CMD ["run"]
