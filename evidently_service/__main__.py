"""`python -m evidently_service`: serve the metrics service with gunicorn on $PORT (default 8085)."""

from __future__ import annotations

from evidently_service.settings import Settings
from service_common.logging import configure_logging
from service_common.server import serve


def main() -> None:
    """Start gunicorn: one worker process, several threads."""
    configure_logging()
    settings = Settings.from_env()

    serve(
        lambda: _app(settings),
        {
            "bind": f"0.0.0.0:{settings.port}",
            # ONE worker process: each model's window lives in that process's memory, and
            # several workers would each see a part of the rows. Threads serve requests
            # concurrently; evaluation runs in its own thread on a copy of the window.
            "workers": 1,
            "worker_class": "gthread",
            "threads": 8,
            "timeout": 60,
            "graceful_timeout": 10,
            "accesslog": None,
            "loglevel": "warning",
        },
    )


def _app(settings: Settings):
    from evidently_service import create_app

    return create_app(settings)


if __name__ == "__main__":
    main()
