# syntax=docker/dockerfile:1
# vllama on NVIDIA GPUs: the vLLM backend for Hugging Face safetensors models.
#   docker build -f docker/cuda.Dockerfile -t vllama:cuda .
#   docker run -d --gpus all --ipc host -p 11434:11434 -v vllama-models:/models vllama:cuda
# Needs the NVIDIA driver and the NVIDIA Container Toolkit on the host. vLLM's wheel brings its
# own CUDA libraries (through torch's nvidia-* packages): the base image only supplies the
# toolkit's settings, so BASE may name another CUDA base image (see docs/deploy.md).
# Not built by the project's tests (no GPU and no CUDA wheels there); its install is
# scripts/setup --serve cuda, which the tests do check.
ARG BASE=nvidia/cuda:12.8.1-base-ubuntu24.04

FROM ${BASE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No --locked: constraints.txt records the CPU build of torch and vLLM that the tests ran.
RUN --mount=type=cache,target=/root/.cache/pip \
    PIP_FIND_LINKS=/src/wheels ./scripts/setup --serve cuda --venv /opt/vllama

FROM ${BASE}
# gcc, libc6-dev, python3-dev: Triton (under vLLM) compiles its GPU launchers against Python's headers when a model loads.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-dev gcc libc6-dev libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1001 --create-home --home-dir /home/vllama vllama \
    && mkdir /models && chown vllama: /models
COPY --from=build /opt/vllama /opt/vllama
ENV PATH=/opt/vllama/bin:$PATH \
    VLLAMA_HOST=0.0.0.0:11434 \
    VLLAMA_MODELS=/models \
    HF_HOME=/models/huggingface
USER vllama
VOLUME /models
EXPOSE 11434
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:11434/api/version', timeout=4)"]
CMD ["vllama", "serve"]
