# The canary controller image: ghcr.io/canary-dev/canary:<version> (docs/image.md).
#
#   docker build -t ghcr.io/canary-dev/canary:0.1.0 .
#
# Two stages on one Python base: the first builds the project's wheel and installs it with
# its runtime dependencies (and nothing of the dev extra) into a virtualenv; the second copies
# that virtualenv alone, so no compiler, build backend or source tree reaches the image.
# tests/image builds this file with buildah from a Debian base (Debian's python3, no registry).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# pip's own settings, for a build away from PyPI: a mirror (PIP_INDEX_URL) or a folder of wheels
# mounted into the build (PIP_FIND_LINKS=/wheels PIP_NO_INDEX=1, what tests/image does).
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY canary ./canary
COPY policies ./policies
# pip and setuptools are only needed here: they leave the virtualenv before it is copied.
RUN python3 -m venv /opt/canary \
    && /opt/canary/bin/pip install --no-compile . \
    && /opt/canary/bin/python -m compileall -q /opt/canary/lib \
    && /opt/canary/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="canary" \
      org.opencontainers.image.description="Progressive delivery controller: canary, A/B and blue/green rollouts judged by sound statistics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/canary-dev/canary" \
      org.opencontainers.image.documentation="https://github.com/canary-dev/canary/tree/main/docs" \
      org.opencontainers.image.vendor="canary-dev"
# A fixed numeric user, so that Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN useradd --system --user-group --uid 65532 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin --no-log-init canary
COPY --from=build /opt/canary /opt/canary
# Read-only root filesystem: bytecode is compiled above and never written at run time;
# matplotlib (the Slack plots) keeps its cache in /tmp, the one place the chart mounts writable.
ENV PATH=/opt/canary/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["canary"]
CMD ["controller"]
