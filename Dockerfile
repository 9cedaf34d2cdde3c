# The medstream image for docker-compose.yml (worker, receivers, topic set-up). CPU-only Python:
# inference runs in the Triton container.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY producers ./producers
COPY triton_models ./triton_models
RUN pip install --no-cache-dir . && useradd --uid 10001 --create-home medstream \
    && install -d -o medstream /var/lib/medstream
USER medstream
CMD ["medstream", "--help"]
