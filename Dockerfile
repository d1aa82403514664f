# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target serve -t shoprec-api .     slim serving image (numpy, no TensorFlow)
#   docker build --target train -t shoprec-train .   training image (TensorFlow CPU)

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/shoprec
RUN useradd --create-home --uid 10001 shoprec
# requirements.lock pins every dependency (pip constraints; pyproject.toml says which are needed).
COPY pyproject.toml README.md requirements.lock ./
COPY app ./app
COPY models ./models
COPY scripts ./scripts

FROM base AS serve
RUN pip install -c requirements.lock .
USER shoprec
ENV SHOPREC_ARTIFACTS_DIR=/data/artifacts
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]

FROM base AS train
RUN pip install -c requirements.lock '.[train]'
USER shoprec
ENV SHOPREC_ARTIFACTS_DIR=/data/artifacts
CMD ["python", "scripts/retrain.py", "--archive", "/data/feedback-archive"]
