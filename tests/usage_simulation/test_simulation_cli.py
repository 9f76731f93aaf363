"""The command line as a user runs it: a real subprocess, Ctrl-C, the summary and the JSON result."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from local_stack.processes import wait_until
from monitoring_core.model_folder import load_model_folder
from monitoring_core.paths import MODELS_DIR
from usage_simulation.cli import main


def test_ctrl_c_stops_cleanly_and_still_prints_the_summary(recorder, taxi_reference: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "usage_simulation",
            "--url",
            recorder.url,
            "--scenario",
            "covariate_shift",
            "--data",
            str(taxi_reference),
            "--duration",
            "60",
            "--rps",
            "50",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(recorder.predictions) >= 20, timeout=30, what="first requests")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "scenario covariate_shift: INTERRUPTED after" in out
    sent = int(out.split("  sent ")[1].split()[0])
    assert sent >= 20 and sent == len(recorder.predictions)


def test_json_result_and_exit_status(recorder, tmp_path: Path, capsys, taxi_reference: Path) -> None:
    out = tmp_path / "run.json"
    assert (
        main(
            [
                "--url",
                recorder.url,
                "--scenario",
                "schema_change",
                "--data",
                str(taxi_reference),
                "--duration",
                "1",
                "--rps",
                "40",
                "--no-progress",
                "--feedback-delay",
                "0.2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert data["scoring"] is None
    run = data["run"]
    assert run["sent"] == run["ok"] + run["rejected"] and run["rejected"] > 0
    assert [p["name"] for p in run["phases"]] == ["clean", "renamed_and_retyped"]
    assert "rejected" in capsys.readouterr().out


def test_unknown_scenario_exits_2_naming_the_choices(capsys) -> None:
    assert main(["--scenario", "nope"]) == 2
    assert "baseline" in capsys.readouterr().err


def test_list_scenarios(capsys) -> None:
    assert main(["--list-scenarios"]) == 0
    assert "segment_degradation" in capsys.readouterr().out


def test_a_classifier_model_folder_by_option(recorder, insurance_dir: Path, tmp_path: Path) -> None:
    recorder.description = load_model_folder(insurance_dir).description
    out = tmp_path / "run.json"
    argv = ["--model-dir", str(insurance_dir), "--url", recorder.url, "--scenario", "mix_shift", "--rows", "60"]
    assert main([*argv, "--rps", "60", "--no-progress", "--feedback-delay", "0.1", "--json", str(out)]) == 0
    run = json.loads(out.read_text())["run"]
    assert run["ok"] == run["sent"] == 60 and [p["name"] for p in run["phases"]] == ["clean", "westward"]
    late = [body["region"] for _, body in recorder.predictions[35:]]
    assert late.count("west") > len(late) / 2


def test_a_model_folder_without_its_reference_exits_2_saying_so(tmp_path: Path, capsys) -> None:
    (tmp_path / "model.yaml").write_text((MODELS_DIR / "health_insurance" / "model.yaml").read_text())
    assert main(["--model-dir", str(tmp_path), "--scenario", "baseline", "--rows", "5", "--no-progress"]) == 2
    assert "reference.parquet: no such file" in capsys.readouterr().err


def test_model_dir_defaults_to_the_model_dir_variable(monkeypatch, insurance_dir: Path, capsys) -> None:
    monkeypatch.setenv("MODEL_DIR", str(insurance_dir))
    assert main(["--list-scenarios"]) == 0
    assert "mix_shift" in capsys.readouterr().out
