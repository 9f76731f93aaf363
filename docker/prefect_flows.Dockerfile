# syntax=docker/dockerfile:1
# Batch monitoring flow served on its schedule: `python -m prefect_flows.serve`, non-root (also runs `prefect server`).
# Build from the repository root: docker build -f docker/prefect_flows.Dockerfile .

# --- dependencies: a cached layer that changes only with requirements-flows.txt -----------------
FROM python:3.11.11-slim-bookworm AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements-flows.txt ./
# Hashed runtime pins: the whole runtime lock plus the Dask path's (requirements-flows.in), no test tooling.
# The lock is complete, so pip installs exactly its files (--no-deps: pip's resolver in hash mode trips over
# extras such as pandas[parquet]) and `pip check` proves every dependency is there.
# This stage is discarded: only /opt/venv is copied on, so build leftovers never reach the final image.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps --require-hashes -r requirements-flows.txt \
 && /opt/venv/bin/pip check

# --- runtime: the venv and our code, nothing else ------------------------------------------------
FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
 && useradd --system --no-log-init --uid 10001 --gid app \
      --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
 && install -d -o app -g app /models /reports /home/app/.prefect
COPY --from=deps /opt/venv /opt/venv
COPY docker/healthcheck.py /usr/local/lib/healthcheck.py
WORKDIR /app
COPY monitoring_core/ monitoring_core/
COPY ride_duration/ ride_duration/
# The batch flow reads the metrics service's drift config (monitoring_core/monitoring.yaml) through its loader.
COPY prefect_flows/ prefect_flows/
# Compiled as root at build time: the code stays read-only for the app user and starts faster.
RUN python -m compileall -q /app
USER 10001:10001
# The runner's own webserver gives the serving process a real /health (loopback only).
ENV MODELS_DIR=/models REPORTS_DIR=/reports PREFECT_HOME=/home/app/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 \
    PREFECT_RUNNER_SERVER_ENABLE=true PREFECT_RUNNER_SERVER_HOST=127.0.0.1 PREFECT_RUNNER_SERVER_PORT=8484
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "/usr/local/lib/healthcheck.py", "http://127.0.0.1:8484/health"]
CMD ["python", "-m", "prefect_flows.serve"]
