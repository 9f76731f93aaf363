# syntax=docker/dockerfile:1
# Alert receiver: logs every Alertmanager notification as a JSON line (`docker compose logs alert-webhook`).
# Stdlib only, so a single stage with nothing installed. Build from the repository root:
# docker build -f docker/alert_webhook.Dockerfile .
FROM python:3.11.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
 && useradd --system --no-log-init --uid 10001 --gid app \
      --create-home --home-dir /home/app --shell /usr/sbin/nologin app
COPY docker/healthcheck.py /usr/local/lib/healthcheck.py
COPY docker/alert_webhook.py /usr/local/lib/alert_webhook.py
USER 10001:10001
EXPOSE 5001
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["python", "/usr/local/lib/healthcheck.py", "http://127.0.0.1:5001/health"]
CMD ["python", "/usr/local/lib/alert_webhook.py", "--port", "5001"]
