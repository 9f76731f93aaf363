"""README "Monitor your own model", run as printed: the five steps on a classifier built here.

The block is taken from README.md by its marker, so the test fails when the printed steps and the tested
ones differ. Each line runs in bash in a scratch folder holding `my_model.pkl` and `my_reference.parquet`
(a scikit-learn classifier on the breast-cancer data with a string category), with `python` the project's
interpreter; the last line starts the prediction service, which must answer a prediction with
probabilities (MongoDB absent: it spools, as it must).
"""

from __future__ import annotations

import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml

from local_stack.processes import port_open, wait_until

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- readme-own-model -->"

pytestmark = pytest.mark.integration


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(re.escape(MARKER) + r"\n```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its 'Monitor your own model' block"
    return [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def _write_inputs(folder: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data = load_breast_cancer(as_frame=True)
    frame = data.frame[["mean radius", "mean texture", "mean smoothness", "worst area"]].copy()
    frame.columns = ["radius", "texture", "smoothness", "area"]
    frame["clinic"] = np.where(frame.index % 3 == 0, "north", np.where(frame.index % 3 == 1, "south", "east"))
    frame["churned"] = np.where(data.target == 1, "yes", "no")
    features = ["radius", "texture", "smoothness", "area", "clinic"]
    model = make_pipeline(
        ColumnTransformer(
            [("num", StandardScaler(), features[:4]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["clinic"])]
        ),
        LogisticRegression(max_iter=500),
    ).fit(frame[features], frame["churned"])
    reference = frame.copy()
    reference["prediction"] = model.predict(frame[features])
    for index, label in enumerate(model.classes_):
        reference[f"proba_{label}"] = model.predict_proba(frame[features])[:, index]
    (folder / "my_model.pkl").write_bytes(pickle.dumps(model))
    reference.to_parquet(folder / "my_reference.parquet", index=False)


def test_the_readme_steps_monitor_a_model_of_ones_own(tmp_path: Path) -> None:
    lines = readme_block()
    assert len(lines) == 7 and lines[-1].endswith("python -m prediction_service")
    _write_inputs(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        # One small window keeps `prepare` short here; the README's line reads the default config otherwise.
        "EVIDENTLY_CONFIG": str(tmp_path / "monitoring.yaml"),
    }
    (tmp_path / "monitoring.yaml").write_text(yaml.safe_dump({"defaults": {"window_size": 200}}))
    for line in lines[:-1]:
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
    description = yaml.safe_load((tmp_path / "models" / "churn" / "model.yaml").read_text())
    assert description["task"] == "classification" and sorted(description["classes"]) == ["no", "yes"]
    assert (tmp_path / "models" / "churn" / "prepared" / "calibration.json").is_file()
    port = int(re.search(r"PORT=(\d+)", lines[-1]).group(1))
    if port_open(port):
        pytest.fail(f"port {port} of the README's line is taken on this machine")
    server = subprocess.Popen(
        ["bash", "-c", f"exec env {lines[-1]}"],
        cwd=tmp_path,
        env={
            **env,
            "HOST": "127.0.0.1",
            "PREDICTION_SPOOL_DIR": str(tmp_path / "spool"),
            "PREDICTION_FORWARD_TO_METRICS": "false",
        },
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: port_open(port), 90, "the prediction service of the README's line")
        row = {"radius": 14.1, "texture": 19.3, "smoothness": 0.096, "area": 880.0, "clinic": "south"}
        answer = requests.post(f"{url}/predict", json=row, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["prediction"] in {"yes", "no"} and set(body["probabilities"]) == {"yes", "no"}
        refused = requests.post(f"{url}/predict", json={**row, "radius": "wide"}, timeout=10)
        assert refused.status_code == 400 and refused.json()["details"][0]["field"] == "radius"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    assert shlex.split(lines[-1])[0] == "MODEL_DIR=models/churn"
