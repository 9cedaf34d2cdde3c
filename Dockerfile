# The medstream image (worker, receivers, producers, topic set-up): the wheel and its runtime
# dependencies, no extras, no source tree. CPU-only Python: inference runs in the Triton container.
# Base pinned to an exact patch release (its digest could not be verified from the build machines).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# Builder: the project's wheel plus a wheel of every runtime dependency.
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY producers ./producers
COPY medstream_delivery ./medstream_delivery
COPY medstream_tools ./medstream_tools
COPY medstream_training ./medstream_training
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime: installs the wheels only (no index, no compiler, no sources), runs as a non-root user.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MEDSTREAM_STATE_DIR=/var/lib/medstream
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/medstream-*.whl \
    && useradd --uid 10001 --create-home medstream \
    && install -d -o medstream /var/lib/medstream
USER 10001
WORKDIR /home/medstream
# The worker's liveness (/health on MEDSTREAM_WEB_PORT); compose/Kubernetes override it for
# the receivers, whose listeners are not HTTP.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MEDSTREAM_WEB_PORT', '6066') + '/health', timeout=4)"]
CMD ["medstream", "--help"]
