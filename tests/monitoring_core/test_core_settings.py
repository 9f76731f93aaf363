"""The one settings mechanism: strict parsing, one line naming the variable, shared names defined once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from evidently_service.settings import Settings as MetricsSettings
from monitoring_core.settings import Flag, SettingsError, StrictSettings, env
from prediction_service.settings import Settings as PredictionSettings
from prefect_flows.settings import BatchSettings

REPO = Path(__file__).resolve().parents[2]
RUNTIMES = [PredictionSettings, MetricsSettings, BatchSettings]


class Example(StrictSettings):
    """A small settings class exercising every kind of field the runtimes use."""

    flag: Flag = env("EXAMPLE_FLAG", False)
    size: int = env("EXAMPLE_SIZE", 10, ge=1)
    seconds: float = env("EXAMPLE_SECONDS", 1.0, ge=0)
    name: str = env("EXAMPLE_NAME", "x", min_length=1)
    token: str | None = env("EXAMPLE_TOKEN", None)
    code_only: bool = True  # no env(...): never read from the environment


@pytest.mark.parametrize("word", ["1", "true", "True", "TRUE", "yes", "Yes", "on", "ON", " true "])
def test_true_spellings(word: str) -> None:
    assert Example.from_env({"EXAMPLE_FLAG": word}).flag is True


@pytest.mark.parametrize("word", ["0", "false", "False", "no", "NO", "off", "Off", " 0 "])
def test_false_spellings(word: str) -> None:
    assert Example.from_env({"EXAMPLE_FLAG": "1"}).flag is True
    assert Example.from_env({"EXAMPLE_FLAG": word}).flag is False


@pytest.mark.parametrize("word", ["ture", "flase", "t", "f", "y", "n", "2", "-1", "enabled", "yes please", "none"])
def test_other_spellings_are_refused(word: str) -> None:
    with pytest.raises(SettingsError) as error:
        Example.from_env({"EXAMPLE_FLAG": word})
    assert str(error.value) == f"EXAMPLE_FLAG must be a boolean (1/0, true/false, yes/no, on/off), got {word!r}"


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("EXAMPLE_SIZE", "abc", "must be an integer"),
        ("EXAMPLE_SIZE", "1.5", "must be an integer"),
        ("EXAMPLE_SIZE", "0", "must be >= 1"),
        ("EXAMPLE_SIZE", "-5", "must be >= 1"),
        ("EXAMPLE_SECONDS", "soon", "must be a number"),
        ("EXAMPLE_SECONDS", "-0.5", "must be >= 0"),
        ("EXAMPLE_SECONDS", "nan", "must be a finite number"),
        ("EXAMPLE_SECONDS", "inf", "must be a finite number"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name: str, value: str, rule: str) -> None:
    with pytest.raises(SettingsError) as error:
        Example.from_env({name: value})
    assert str(error.value) == f"{name} {rule}, got {value!r}"
    assert isinstance(error.value, ValueError)  # what the __main__ modules catch


def test_every_bad_variable_is_named_on_one_line() -> None:
    with pytest.raises(SettingsError) as error:
        Example.from_env({"EXAMPLE_SIZE": "big", "EXAMPLE_FLAG": "ture", "EXAMPLE_SECONDS": "2"})
    message = str(error.value)
    assert "\n" not in message and "EXAMPLE_SIZE" in message and "EXAMPLE_FLAG" in message
    assert "EXAMPLE_SECONDS" not in message


def test_names_are_case_insensitive_and_empty_is_unset() -> None:
    settings = Example.from_env({"example_size": "3", "Example_Seconds": "2.5", "EXAMPLE_TOKEN": ""})
    assert (settings.size, settings.seconds, settings.token) == (3, 2.5, None)
    assert Example.from_env({"EXAMPLE_SIZE": "", "EXAMPLE_NAME": ""}) == Example()


def test_from_env_reads_the_process_environment_by_default(monkeypatch) -> None:
    monkeypatch.setenv("EXAMPLE_SIZE", "7")
    assert Example.from_env().size == 7


def test_plain_construction_reads_nothing_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("EXAMPLE_SIZE", "7")
    monkeypatch.setenv("PORT", "1")
    assert Example().size == 10 and Example(size=4).size == 4
    assert PredictionSettings().port == 9696 and MetricsSettings().port == 8085


def test_fields_without_a_variable_are_set_by_code_only() -> None:
    assert Example.from_env({"CODE_ONLY": "false", "code_only": "false"}).code_only is True
    assert Example(code_only=False).code_only is False
    assert "code_only" not in Example.env_names()


def test_construction_is_validated_frozen_and_rejects_unknown_fields() -> None:
    with pytest.raises(SettingsError, match=r"^size must be >= 1, got 0$"):
        Example(size=0)
    with pytest.raises(SettingsError, match=r"^sizes is not a setting$"):
        Example(sizes=3)
    settings = Example()
    with pytest.raises(ValidationError, match="frozen"):
        settings.size = 3  # type: ignore[misc]


def test_replace_validates_like_construction() -> None:
    settings = Example.from_env({"EXAMPLE_SIZE": "3"})
    assert settings.replace(seconds=4).seconds == 4.0 and settings.replace(seconds=4).size == 3
    with pytest.raises(SettingsError, match="size must be >= 1"):
        settings.replace(size=-1)


def test_each_runtime_reads_every_field_from_its_own_variable() -> None:
    for runtime in RUNTIMES:
        names = runtime.env_names()
        assert len(set(names.values())) == len(names), runtime  # no variable feeds two fields


def test_a_variable_several_runtimes_read_has_one_default() -> None:
    """MONGODB_URI, MODEL_NAME, EVIDENTLY_CONFIG, ... are declared once, so every runtime agrees on them."""
    defaults: dict[str, set] = {}
    for runtime in RUNTIMES:
        for field, name in runtime.env_names().items():
            defaults.setdefault(name, set()).add(repr(runtime.model_fields[field].default))
    shared = {name for name in defaults if sum(name in r.env_names().values() for r in RUNTIMES) > 1}
    assert {"MONGODB_URI", "MONGODB_DATABASE", "EVIDENTLY_CONFIG", "HOST"} <= shared
    assert {name: defaults[name] for name in shared if len(defaults[name]) > 1} == {"PORT": {"9696", "8085"}}


def test_settings_import_nothing_heavy() -> None:
    """Parsing settings must not pull in pandas, scikit-learn, Flask or Evidently."""
    code = (
        "import sys, monitoring_core.settings, prediction_service.settings, prefect_flows.settings\n"
        "print(sorted(m for m in ('pandas', 'numpy', 'sklearn', 'flask', 'evidently', 'prefect') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
