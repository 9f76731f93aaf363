"""`python -m evidently_service`: serve the metrics service with gunicorn on $PORT (default 8085)."""

from __future__ import annotations

import sys

from evidently_service.settings import Settings
from monitoring_core.description import DescriptionError
from monitoring_core.monitoring_config import ConfigError
from service_common.auth import open_endpoints_warning
from service_common.logging import configure_logging
from service_common.workers import GUNICORN_WORKER_CLASS, prepare_process


def check_models(settings: Settings) -> None:
    """Refuse to start on a bad description, config or reference: one line naming the file and the key or column."""
    from evidently_service.app import check_folder_reference, load_models

    _, configs = load_models(settings)
    for config in configs.values():
        check_folder_reference(config)


def main() -> int:
    """Check the settings and config, then run gunicorn (one worker process, several threads) until SIGTERM."""
    configure_logging()
    try:
        settings = Settings.from_env()
        check_models(settings)
    except (ValueError, ConfigError, DescriptionError) as exc:  # DescriptionError is a ValueError too
        print(f"evidently_service: {exc}", file=sys.stderr)
        return 2

    # Before the app's imports (and gunicorn's): gevent patches the standard library they use.
    try:
        prepare_process(settings.worker_class)
    except RuntimeError as exc:
        print(f"evidently_service: {exc}", file=sys.stderr)
        return 2
    if not settings.monitoring_token:
        print(open_endpoints_warning("evidently_service", "POST /iterate and /feedback"), file=sys.stderr)

    from evidently_service import EXTENSION, create_app
    from service_common.server import closing_worker_exit, serve

    serve(
        lambda: create_app(settings),
        {
            "bind": f"{settings.host}:{settings.port}",
            # ONE worker process: each model's window lives in that process's memory, and
            # several workers would each see a part of the rows. Threads (gevent: greenlets)
            # serve requests concurrently; evaluation runs in its own on a copy of the window.
            "workers": 1,
            "worker_class": GUNICORN_WORKER_CLASS[settings.worker_class],
            "threads": 8,  # not for gevent
            "timeout": 60,
            "graceful_timeout": 10,
            # Stop the evaluation threads of the exiting worker.
            "worker_exit": closing_worker_exit(EXTENSION),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
