# syntax=docker/dockerfile:1.7
# Triton Inference Server with what Temper's Python-backend models import (the ensemble's tokenizer
# step, LLM generation with ONNX Runtime GenAI): the stock image has neither.
#   docker build -f deploy/docker/triton.Dockerfile .
# TRITON_IMAGE is the release in shared/serving/triton_release.env (a test checks they agree): the GPU
# workers build TensorRT engines with the TensorRT inside it.

ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:25.10-py3

FROM ${TRITON_IMAGE} AS wheels
COPY deploy/docker/triton/requirements.txt /wheels/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels --requirement /wheels/requirements.txt

FROM ${TRITON_IMAGE}
# The image's Python is the distribution's (externally managed); the backend stub runs with it.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --break-system-packages --no-index --find-links /wheels \
        --requirement /wheels/requirements.txt
# triton-server (uid 1000) is the image's own non-root user.
USER 1000:1000
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4)"]
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", "--disable-auto-complete-config"]
