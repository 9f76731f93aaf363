"""`python -m prediction_service`: serve the API under gunicorn (several workers, prometheus multiprocess mode)."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import traceback
from pathlib import Path

from prediction_service.settings import Settings
from service_common.auth import open_endpoints_warning
from service_common.logging import configure_logging
from service_common.workers import GUNICORN_WORKER_CLASS, prepare_process

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> Path:
    """Point prometheus-client at an empty folder, shared by the workers (wiped: old files are stale counts)."""
    directory = Path(os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="prediction_service_metrics_"))
    directory.mkdir(parents=True, exist_ok=True)
    # Only prometheus-client's own files: the variable might name a folder that holds other things.
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def child_exit(server, worker) -> None:
    """Drop the dead worker's live gauges (runs in the master)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    """Start the worker's background writer now, so spooled records are replayed even without traffic."""
    from prediction_service import EXTENSION

    state = worker.wsgi.extensions.get(EXTENSION)
    if state is not None:
        state.monitoring.start()


# A disk that is full now (or a quota reached) is a condition of the moment, not a setting to fix.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def spool_problem(settings: Settings) -> tuple[str | None, str | None]:
    """Return (why the spool folder cannot keep records, a warning to print), each None when there is none.

    The service refuses to start rather than run degraded when the folder cannot be written at all (its
    permissions, a read-only mount): without a spool and write-ahead log, a MongoDB outage or a crash
    would drop every answered prediction. A full disk only warns: it is what the running service meets
    too, and serves through (`PREDICTION_UNLOGGED`, /health `degraded`); refusing to start on it turned a
    restart during a full-disk incident into an outage of serving.
    """
    from prediction_service.spool import Spool

    for directory in (settings.spool_dir, settings.spool_dir / "wal"):
        try:
            Spool(directory, 0).check_writable()
        except OSError as exc:
            if exc.errno in DISK_FULL and directory.is_dir():  # a folder it cannot even create: refused below
                return None, (
                    f"warning: PREDICTION_SPOOL_DIR {settings.spool_dir} is full ({exc.strerror}): serving anyway "
                    f"(PREDICTION_UNLOGGED={settings.unlogged}); /health says degraded until it has room"
                )
            return (
                f"PREDICTION_SPOOL_DIR {settings.spool_dir} is not writable ({exc.strerror or exc}): "
                "records could not be kept while MongoDB is away; fix its permissions or point it elsewhere"
            ), None
    return None, None


def check_model_folder(settings: Settings) -> int:
    """Load and check the served model (this process); print one line and return 2 when it cannot serve, else 0."""
    from monitoring_core.description import DescriptionError
    from monitoring_core.model_folder import load_model_folder
    from prediction_service.model_loader import ModelLoadError, load_served_model

    try:
        served = load_served_model(load_model_folder(settings.model_dir), settings.model_path)
    except (DescriptionError, ModelLoadError) as exc:
        print(f"prediction_service: {exc}", file=sys.stderr)
        return 2
    if served.reference_check.get("message"):  # served anyway (a reference may be older than its model): said
        print(
            f"prediction_service: warning: {settings.model_dir}: {served.reference_check['message']}", file=sys.stderr
        )
    return 0


def check_in_child(settings: Settings) -> int:
    """Run check_model_folder in a forked child and return its exit code.

    Never in the master itself: predicting starts the native thread pools of the model's libraries
    (OpenMP for HistGradientBoosting, LightGBM, XGBoost), and GNU OpenMP's pool does not survive fork:
    every gunicorn worker forked after it would hang in its first prediction, the port accepting
    connections that are never answered.
    """
    pid = os.fork()
    if pid == 0:  # the child: check, report by exit code, never return into the master's code
        code = 1
        try:
            code = check_model_folder(settings)
        except BaseException:  # noqa: BLE001 - anything else: its traceback, and a failed start
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) and 2


def load_model_here(settings: Settings) -> int:
    """Load (never run) the model in this process; print one line and return 2 when it cannot be, else 0.

    Loading imports the modules a pickle names and builds the objects; no native thread pool starts
    before a prediction. The check's child and the gunicorn workers, forked after it, inherit those
    imports: loaded only in the child, every worker imported pandas, scikit-learn... itself, and the
    first requests waited for that behind an open port.
    """
    from monitoring_core.description import DescriptionError
    from monitoring_core.model_folder import load_model_folder
    from prediction_service.model_loader import ModelLoadError, load_model

    try:
        folder = load_model_folder(settings.model_dir)
        path = settings.model_path or folder.model_path
        if path is not None:  # none: the check says so
            load_model(path, folder.description)
    except (DescriptionError, ModelLoadError) as exc:
        print(f"prediction_service: {exc}", file=sys.stderr)
        return 2
    return 0


def main() -> int:
    """Validate the settings, then run gunicorn until SIGTERM."""
    configure_logging()
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"prediction_service: {exc}", file=sys.stderr)
        return 2
    # Read the description and load (and check) the model once before any worker, so a folder that cannot
    # serve stops the start with one line instead of every gunicorn worker failing to boot over and over.
    code = load_model_here(settings) or check_in_child(settings)
    if code:
        return code
    if settings.spool_per_replica:
        from prediction_service.replica import claim_slot

        # The lock's descriptor stays open in this master (and its workers) until the replica exits.
        spool_dir, _lock = claim_slot(settings.spool_dir)
        settings = settings.model_copy(update={"spool_dir": spool_dir})
        print(f"prediction_service: spooling in {spool_dir}", file=sys.stderr)
    if settings.log_to_mongodb:
        problem, warning = spool_problem(settings)
        if problem:
            print(f"prediction_service: {problem}", file=sys.stderr)
            return 2
        if warning:
            print(f"prediction_service: {warning}", file=sys.stderr)
    if not settings.monitoring_token:
        print(open_endpoints_warning("prediction_service", "POST /feedback"), file=sys.stderr)
    prepare_multiprocess_dir()
    # Before the app's imports: gevent patches the standard library they use.
    try:
        prepare_process(settings.worker_class)
    except RuntimeError as exc:
        print(f"prediction_service: {exc}", file=sys.stderr)
        return 2
    from prediction_service import EXTENSION, create_app
    from service_common.server import closing_worker_exit, serve

    serve(
        lambda: create_app(settings),
        {
            "bind": f"{settings.host}:{settings.port}",
            "workers": settings.workers,
            "worker_class": GUNICORN_WORKER_CLASS[settings.worker_class],
            "threads": settings.threads,  # not for gevent
            "timeout": 30,
            "graceful_timeout": 15,
            "child_exit": child_exit,
            # Flush the worker's queues on shutdown: MongoDB records are written or spooled, never lost.
            "worker_exit": closing_worker_exit(EXTENSION),
            "post_worker_init": post_worker_init,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
