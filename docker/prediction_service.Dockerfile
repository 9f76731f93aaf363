# syntax=docker/dockerfile:1
# Prediction API: `python -m prediction_service` (gunicorn) on port 9696, as a non-root user.
# Build from the repository root: docker build -f docker/prediction_service.Dockerfile .

# --- dependencies: a cached layer that changes only with requirements-base.txt ------------------
FROM python:3.11.11-slim-bookworm AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements-base.txt ./
# Hashed runtime pins, base only (requirements-base.in): no Evidently, Prefect or plotly, which it never imports.
# The lock is complete, so pip installs exactly its files (--no-deps: pip's resolver in hash mode trips over
# extras such as pandas[parquet]) and `pip check` proves every dependency is there.
# This stage is discarded: only /opt/venv is copied on, so build leftovers never reach the final image.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps --require-hashes -r requirements-base.txt \
 && /opt/venv/bin/pip check

# --- runtime: the venv and our code, nothing else ------------------------------------------------
FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
 && useradd --system --no-log-init --uid 10001 --gid app \
      --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
 && install -d -o app -g app /models /var/lib/prediction_service
COPY --from=deps /opt/venv /opt/venv
COPY docker/healthcheck.py /usr/local/lib/healthcheck.py
WORKDIR /app
COPY monitoring_core/ monitoring_core/
COPY models/ models/
COPY ride_duration/ ride_duration/
COPY service_common/ service_common/
COPY prediction_service/ prediction_service/
# Compiled as root at build time: the code stays read-only for the app user and starts faster.
RUN python -m compileall -q /app
USER 10001:10001
ENV PORT=9696 MODEL_DIR=/models/ride_duration PREDICTION_SPOOL_DIR=/var/lib/prediction_service/spool
EXPOSE 9696
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/usr/local/lib/healthcheck.py", "http://127.0.0.1:9696/health"]
CMD ["python", "-m", "prediction_service"]
