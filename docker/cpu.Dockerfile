# syntax=docker/dockerfile:1
# vllama on CPUs: the llama.cpp backend for GGUF models and the offline starter model smollm2:135m.
#   docker build -f docker/cpu.Dockerfile -t vllama:cpu .
#   docker run -d -p 11434:11434 -v vllama-models:/models vllama:cpu
# The install is scripts/setup's, with the versions in constraints.txt (see docs/deploy.md).

FROM debian:bookworm-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# llama-cpp-python compiles here (about 10 minutes on 2 cores); the cache mount keeps the wheel for
# later builds. Wheels put in ./wheels beforehand (pip wheel -w wheels ...) are used instead.
RUN --mount=type=cache,target=/root/.cache/pip \
    PIP_FIND_LINKS=/src/wheels ./scripts/setup --serve cpu --venv /opt/vllama --locked

FROM debian:bookworm-slim
# libgomp1: llama.cpp's threads (OpenMP).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --home-dir /home/vllama vllama \
    && mkdir /models && chown vllama: /models
COPY --from=build /opt/vllama /opt/vllama
ENV PATH=/opt/vllama/bin:$PATH \
    VLLAMA_HOST=0.0.0.0:11434 \
    VLLAMA_MODELS=/models \
    HF_HOME=/models/huggingface
USER vllama
VOLUME /models
EXPOSE 11434
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:11434/api/version', timeout=4)"]
CMD ["vllama", "serve"]
