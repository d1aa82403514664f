# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target serve -t shoprec-api .     slim serving image (numpy, no TensorFlow, no Redis)
#   docker build --target train -t shoprec-train .   training image (TensorFlow CPU)
# Dependencies are installed before any code is copied, so a code change rebuilds only the
# last layers; they are the ones pyproject.toml lists, at the versions requirements.lock pins.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/shoprec
RUN useradd --create-home --uid 10001 shoprec
COPY pyproject.toml requirements.lock ./
# The serving dependencies ([project] dependencies: no extras).
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/serve.txt \
    && pip install -c requirements.lock -r /tmp/serve.txt

FROM base AS serve
COPY README.md ./
COPY app ./app
COPY models ./models
COPY scripts ./scripts
RUN pip install --no-deps .
USER shoprec
ENV SHOPREC_ARTIFACTS_DIR=/data/artifacts
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
# One worker per core: WEB_CONCURRENCY (default 1); app.serve forks them (shared memory).
CMD ["python", "-m", "app.serve", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]

FROM base AS train
# The train extra on top of the serving dependencies.
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['train'], sep='\n')" > /tmp/train.txt \
    && pip install -c requirements.lock -r /tmp/train.txt
COPY README.md ./
COPY app ./app
COPY models ./models
COPY scripts ./scripts
RUN pip install --no-deps '.[train]'
USER shoprec
ENV SHOPREC_ARTIFACTS_DIR=/data/artifacts
CMD ["python", "scripts/retrain.py", "--archive", "/data/feedback-archive"]
