"""`python -m monitoring_core.prepare models/<name>` (or `--all MODELS_DIR`): check a model folder, calibrate its drift.

For each folder: the description is checked against the reference (every described column
present with a compatible dtype, classes matching the target's values, probabilities within
[0, 1]); then the drift calibration (thresholds for every size bucket up to the configured window
size, the power behind each column's minimum rows, for the whole reference and each segment) is
computed with the metrics service's own evaluators and written to `prepared/calibration.json`
with the folder's content hash. The metrics service reads that file when the hash matches, so it
starts with its thresholds instead of simulating them. Exit status 2 with one line on a bad folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from monitoring_core.calibration import SIZE_BUCKETS, CalibrationCache
from monitoring_core.description import DescriptionError
from monitoring_core.model_folder import ModelFolder, discover_models, load_model_folder
from monitoring_core.reference import read_reference

FORMAT_VERSION = 1


def load_prepared(folder: ModelFolder) -> CalibrationCache | None:
    """Return the folder's prepared calibration as an in-memory cache, or None when absent, unreadable or stale."""
    try:
        data = json.loads(folder.calibration_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        return None
    try:
        if data.get("content_hash") != folder.content_hash():
            return None
    except OSError:
        return None
    cache = CalibrationCache(None)  # never written back: the prepared file is `prepare`'s alone
    cache.entries.update(data.get("entries") or {})
    return cache


def up_to_date(folder: ModelFolder, config_path: Path) -> bool:
    """Return whether the folder's prepared files match its description, reference and the config's window size."""
    from monitoring_core.estimation import EstimatorError, load_estimator
    from monitoring_core.monitoring_config import load_config

    if load_prepared(folder) is None:
        return False
    try:
        written = json.loads(folder.calibration_path.read_text()).get("window_size")
        if written != load_config(config_path, {folder.name: folder})[folder.name].window_size:
            return False
        load_estimator(folder)
    except (OSError, ValueError, EstimatorError):
        return False
    return True


def prepare_folder(
    folder: ModelFolder, config_path: Path, say: Callable[[str], None] = print, force: bool = True
) -> Path:
    """Check `folder`, write its drift calibration, return the file; DescriptionError/ConfigError when bad.

    With `force=False` a folder whose prepared files are up to date (same description, reference and window
    size) is left as it is.
    """

    if not force and up_to_date(folder, config_path):
        say(f"{folder.name}: prepared files are up to date ({folder.prepared_dir}) (without --if-stale it redoes them)")
        return folder.calibration_path

    from monitoring_core.monitoring_config import load_config
    from monitoring_core.reference_check import check_reference
    from monitoring_core.reference_data import evaluators_for

    started = time.perf_counter()
    config = load_config(config_path, {folder.name: folder})[folder.name]
    if not config.reference_path.is_file():
        raise DescriptionError(f"{config.reference_path}: no reference file (features, target, prediction rows)")
    reference = read_reference(config.reference_path)
    check_reference(folder.description, reference, str(config.reference_path))
    say(f"{folder.name}: reference {config.reference_path} ({len(reference)} rows) fits {folder.path / 'model.yaml'}")
    if config.calibration is None:
        say(f"{folder.name}: calibration disabled in {config_path}: nothing to prepare")
        return folder.calibration_path
    cache = CalibrationCache(None)
    evaluators = evaluators_for(config, reference, cache)
    if evaluators.duplicates_dropped:
        say(f"{folder.name}: {evaluators.duplicates_dropped} exact duplicate reference rows left out of calibration")
    buckets = [b for b in SIZE_BUCKETS if b <= config.window_size]
    scopes = [("", evaluators.drift), *((f"segment {s}: ", e) for s, e in sorted(evaluators.segments.items()))]
    for scope, evaluator in scopes:
        for column in evaluator.tests:
            column_started = time.perf_counter()
            min_rows = evaluator.min_rows_of(column)
            for bucket in buckets if min_rows is not None else ():  # no verdict: no threshold is ever read
                evaluator.threshold(column, bucket)
            verdict = f"min rows {min_rows}" if min_rows is not None else "reference too small for a verdict"
            say(
                f"{folder.name}: {scope}{column}: {len(buckets)} size buckets up to {buckets[-1] if buckets else 0}, "
                f"{verdict} ({time.perf_counter() - column_started:.1f} s)"
            )
    folder.prepared_dir.mkdir(exist_ok=True)
    body = {
        "format": FORMAT_VERSION,
        "content_hash": folder.content_hash(),
        "window_size": config.window_size,
        "entries": cache.entries,
    }
    tmp = folder.calibration_path.with_name(f"{folder.calibration_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, sort_keys=True))
    tmp.replace(folder.calibration_path)
    say(f"{folder.name}: wrote {folder.calibration_path} in {time.perf_counter() - started:.1f} s")
    prepare_performance_estimator(folder, say)
    return folder.calibration_path


def prepare_performance_estimator(folder: ModelFolder, say: Callable[[str], None] = print) -> None:
    """Fit the performance estimator (quality before labels, monitoring_core/estimation.py) into `prepared/`."""
    from monitoring_core.estimation import estimator_path, prepare_estimator

    started = time.perf_counter()
    say(f"{folder.name}: fitting the performance estimator (quality before labels arrive)")
    try:
        estimator = prepare_estimator(folder)
    except ValueError as exc:  # no target or prediction column, too few labelled rows: no estimate, say why
        say(f"{folder.name}: no performance estimator: {exc}")
        return
    if estimator.reason:  # written all the same: the services read the reason instead of "run prepare"
        say(f"{folder.name}: no performance estimator ({estimator.reason})")
        return
    say(f"{folder.name}: wrote {estimator_path(folder)} in {time.perf_counter() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Prepare the folders named on the command line; exit 2 with one line on the first bad one."""
    parser = argparse.ArgumentParser(prog="python -m monitoring_core.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="model folders (each holding a model.yaml)")
    parser.add_argument("--all", type=Path, metavar="MODELS_DIR", help="prepare every model folder under MODELS_DIR")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="monitoring config (window sizes, calibration); default $EVIDENTLY_CONFIG or monitoring.yaml",
    )
    parser.add_argument(
        "--if-stale", action="store_true", help="skip folders whose prepared files are up to date (make demo does)"
    )
    args = parser.parse_args(argv)
    if not args.folders and args.all is None:
        parser.error("name model folders, or --all MODELS_DIR")
    from monitoring_core.monitoring_config import ConfigError
    from monitoring_core.settings import DriftConfigSettings, SettingsError

    try:
        if args.config is None:  # EVIDENTLY_CONFIG, read like the services read it
            args.config = DriftConfigSettings.from_env().config_path
        folders = [load_model_folder(path) for path in args.folders]
        if args.all is not None:
            folders.extend(discover_models(args.all).values())
        for folder in folders:
            prepare_folder(folder, args.config, say=lambda line: print(line, flush=True), force=not args.if_stale)
    except (DescriptionError, ConfigError, SettingsError) as exc:
        print(f"prepare: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
