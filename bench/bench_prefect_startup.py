"""The batch flow's command under CPU load: does Prefect's temporary API server start every time?

`python -m bench prefect_startup [--runs 10] [--busy 4] [--parallel 1] [--empty] [--startup-timeout SECONDS]`.
Starts `--busy` busy-loop processes (a CPU load of that many on top of whatever else runs), then runs
`python -m prefect_flows.batch_monitoring` `--runs` times (`--parallel` at a time, each starting its own
temporary server: more load still), each in a fresh process with a fresh Prefect
home (the temporary server migrates its database first: the slowest start) and without any Prefect
variable set, so the defaults prefect_flows sets before importing Prefect apply. `--startup-timeout 20`
sets Prefect's own default explicitly, to compare. The model is a small regressor of scikit-learn's
diabetes data written into a temporary MODELS_DIR; its 142 held-out rows are logged to nx-27017
(`--empty`: the runs read the next hour, which has none: "not enough data", no Evidently report, the
same server start for a shorter run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DB = "prediction_service"
START = datetime(2026, 3, 2, 9, tzinfo=UTC)
DESCRIPTION = """name: diabetes
task: regression
target: {name: progression, unit: points}
features:
  - {name: age, kind: numerical}
  - {name: bmi, kind: numerical}
  - {name: bp, kind: numerical}
  - {name: s5, kind: numerical}
"""


def _model_folder(models_dir: Path) -> object:
    """Write a ridge regressor's folder (description, reference); return its held-out rows with predictions."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    features = ["age", "bmi", "bp", "s5"]
    model = Ridge().fit(frame[features].iloc[:300], frame["progression"].iloc[:300])
    frame["prediction"] = model.predict(frame[features])
    folder = models_dir / "diabetes"
    folder.mkdir(parents=True)
    (folder / "model.yaml").write_text(DESCRIPTION)
    frame.iloc[:300].to_parquet(folder / "reference.parquet", index=False)
    return frame.iloc[300:]


def _clean_env(**extra: str) -> dict[str, str]:
    """Return this environment without any Prefect variable (nor DO_NOT_TRACK), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "DO_NOT_TRACK"}
    return {**env, **extra}


def main(argv: list[str]) -> int:
    """Run the flow's command `--runs` times under `--busy` busy loops; print each run; fail if any failed."""
    parser = argparse.ArgumentParser(prog="python -m bench prefect_startup", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="flow commands to run")
    parser.add_argument("--busy", type=int, default=4, help="busy-loop processes kept running meanwhile")
    parser.add_argument("--parallel", type=int, default=1, help="flow commands running at the same time")
    parser.add_argument("--empty", action="store_true", help="run over an hour without logged rows (shorter runs)")
    parser.add_argument(
        "--startup-timeout", help="set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (default: unset)"
    )
    args = parser.parse_args(argv)

    from local_stack.components import start_mongo
    from local_stack.logged_predictions import insert_documents, logged_documents
    from monitoring_core.model_folder import load_model_folder

    work = Path(tempfile.mkdtemp(prefix="bench-prefect-startup-"))
    held_out = _model_folder(work / "models")
    (work / "monitoring.yaml").write_text("defaults:\n  calibration: {enabled: false}\n")
    description = load_model_folder(work / "models" / "diabetes").description
    proc, uri = start_mongo(work / "mongo")
    busy: list[subprocess.Popen] = []
    failures = 0
    try:
        insert_documents(uri, DB, logged_documents(description, held_out, START, START + timedelta(hours=1)))
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        time.sleep(5)  # let the load average climb before the first run
        extra = (
            {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": args.startup_timeout} if args.startup_timeout else {}
        )
        start = START + timedelta(hours=1) if args.empty else START
        print(
            f"[bench] {args.runs} runs, {args.parallel} at a time, {args.busy} busy loops, "
            f"startup timeout {args.startup_timeout or 'unset'}, period {start.isoformat()}"
        )
        print("run  exit  seconds  load_1m_before  load_1m_after  outcome", flush=True)

        def one(run: int) -> tuple[int, subprocess.CompletedProcess, float, float]:
            env = _clean_env(
                MONGODB_URI=uri,
                MONGODB_DATABASE=DB,
                MODELS_DIR=str(work / "models"),
                EVIDENTLY_CONFIG=str(work / "monitoring.yaml"),
                REPORTS_DIR=str(work / f"reports-{run}"),
                PREFECT_HOME=str(work / f"prefect-{run}"),  # fresh: the server migrates its database first
                PREFECT_LOGGING_LEVEL="WARNING",
                **extra,
            )
            command = [sys.executable, "-m", "prefect_flows.batch_monitoring", "--start", start.isoformat()]
            load_before = os.getloadavg()[0]
            began = time.perf_counter()
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
            return run, done, time.perf_counter() - began, load_before

        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            for future in as_completed([pool.submit(one, run) for run in range(1, args.runs + 1)]):
                run, done, seconds, load_before = future.result()
                if done.returncode == 0:
                    outcome = next((line for line in done.stdout.splitlines() if line.startswith("diabetes_")), "ok")
                else:
                    failures += 1
                    timed_out = "Timed out while attempting to connect to ephemeral Prefect API server" in done.stderr
                    outcome = "FAILED: server start-up timeout" if timed_out else f"FAILED: {done.stderr[-300:]!r}"
                print(
                    f"{run:<4} {done.returncode:<5} {seconds:7.1f}  {load_before:14.1f}  {os.getloadavg()[0]:13.1f}  "
                    f"{outcome}",
                    flush=True,
                )
        print(f"[bench] {args.runs - failures} of {args.runs} runs succeeded")
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()
        proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
