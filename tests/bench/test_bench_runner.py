"""`python -m bench NAME [OPTIONS]` runs the named benchmark with its options; unknown names are refused."""

from __future__ import annotations

import ast
import subprocess
import sys


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=120)


def test_every_benchmark_module_is_listed() -> None:
    # Through the command, as a user runs it (tests import nothing from bench/).
    result = _bench("nope")
    available = ast.literal_eval(result.stderr.rsplit("available: ", 1)[1].strip())
    assert {"prediction_load", "drift_evaluation", "batch_flow", "soak", "reliability"} <= set(available)


def test_unknown_benchmark_is_refused() -> None:
    result = _bench("nope")
    assert result.returncode == 2
    assert "nope" in result.stderr


def test_options_reach_the_named_benchmark() -> None:
    # bench_soak parses its options before starting anything: an unknown option must reach it and be refused.
    result = _bench("soak", "--no-such-option")
    assert result.returncode != 0
    assert "--no-such-option" in result.stderr and "python -m bench soak" in result.stderr
