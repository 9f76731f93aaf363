"""Load and validate the monitoring config (`monitoring.yaml` or `$EVIDENTLY_CONFIG`): windows, verdicts, stat tests.

The config says how to monitor (window sizes, calibration rates, per-model overrides); what is
monitored comes from each model's folder (monitoring_core/model_folder.py): its description's
columns and drift tests, and its reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitoring_core.calibration import CalibrationSettings
from monitoring_core.description import MODEL_NAME_PATTERN, DriftOverride, DriftTest, Kind, ModelDescription
from monitoring_core.drift import MULTIPLE_TESTING
from monitoring_core.model_folder import ModelFolder
from monitoring_core.paths import DEFAULT_DRIFT_CONFIG_PATH

DEFAULT_CONFIG_PATH = DEFAULT_DRIFT_CONFIG_PATH


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid."""


class _Calibration(BaseModel):
    """How drift thresholds and minimum sizes are derived from the reference (monitoring_core/calibration.py)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None  # false: the pinned thresholds at every size, no derived minimum (not advised)
    false_alarm_rate: float | None = Field(default=None, gt=0, lt=1)
    dataset_false_alarm_rate: float | None = Field(default=None, gt=0, lt=1)
    detectable_shift: float | None = Field(default=None, ge=1)
    min_power: float | None = Field(default=None, gt=0, lt=1)
    draws: int | None = Field(default=None, ge=100, le=100_000)
    power_draws: int | None = Field(default=None, ge=50, le=100_000)
    seed: int | None = Field(default=None, ge=0)


class _ModelSection(BaseModel):
    """Every key optional: a model entry overrides `defaults`, which override the built-in ones."""

    model_config = ConfigDict(extra="forbid")
    reference_path: str | None = None
    window_size: int | None = Field(default=None, ge=1, le=1_000_000)
    min_rows: int | None = Field(default=None, ge=1)
    evaluation_period_seconds: float | None = Field(default=None, gt=0, le=3600)
    dataset_drift_share: float | None = Field(default=None, gt=0, le=1)
    multiple_testing: Literal[MULTIPLE_TESTING] | None = None  # type: ignore[valid-type]
    min_labelled_rows: int | None = Field(default=None, ge=1)
    segment_min_rows: int | None = Field(default=None, ge=1)
    segment_min_labelled_rows: int | None = Field(default=None, ge=1)
    max_pending_labels: int | None = Field(default=None, ge=0)
    features: dict[str, DriftOverride] = Field(default_factory=dict)
    calibration: _Calibration = Field(default_factory=_Calibration)

    def check_features(self, description: ModelDescription, where: str) -> None:
        """Refuse overrides of columns the model does not monitor."""
        known = description.drift_tests()
        unknown = set(self.features) - set(known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown monitored column(s) {sorted(unknown)} for model {description.name!r}; "
                f"known: {sorted(known)}"
            )
        for column, override in self.features.items():
            if override.unseen_floor is not None and description.column_kind(column) is not Kind.CATEGORICAL:
                raise ConfigError(f"{where}: features.{column}.unseen_floor applies to categorical features only")


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: _ModelSection = Field(default_factory=_ModelSection)
    models: dict[str, _ModelSection | None] = Field(default_factory=dict)


# The built-in defaults, used for any key neither the model entry nor `defaults` sets.
# min_rows and segment_min_rows have none: they are derived from the drift calibration.
BUILTIN = _ModelSection(
    window_size=2000,
    evaluation_period_seconds=10.0,
    dataset_drift_share=0.5,
    multiple_testing="none",
    min_labelled_rows=100,
    segment_min_labelled_rows=50,
    max_pending_labels=10_000,
)
_OPTIONAL = {"min_rows", "segment_min_rows"}


@dataclass(frozen=True)
class ModelConfig:
    """Everything the service needs to monitor one model."""

    name: str
    reference_path: Path
    description: ModelDescription
    calibration_path: Path | None
    window_size: int
    min_rows: int | None  # None: derived from the calibration; a value can only raise the derived one
    evaluation_period_seconds: float
    dataset_drift_share: float
    multiple_testing: str
    min_labelled_rows: int
    segment_min_rows: int | None  # the same, per segment
    segment_min_labelled_rows: int
    max_pending_labels: int
    tests: dict[str, DriftTest]
    calibration: CalibrationSettings | None  # None: pinned thresholds at every size


def _calibration(entry: _ModelSection, defaults: _ModelSection) -> CalibrationSettings | None:
    values: dict[str, Any] = {}
    for section in (defaults, entry):  # the model entry wins over `defaults`
        values.update(section.calibration.model_dump(exclude_none=True))
    if not values.pop("enabled", True):
        return None
    try:
        return CalibrationSettings(**values)
    except ValueError as exc:
        raise ConfigError(f"invalid calibration: {exc}") from exc


def _merge(folder: ModelFolder, entry: _ModelSection, defaults: _ModelSection, base: Path) -> ModelConfig:
    def pick(key: str) -> Any:
        for section in (entry, defaults, BUILTIN):
            value = getattr(section, key)
            if value is not None:
                return value
        if key in _OPTIONAL:
            return None
        raise ConfigError(f"no value for {key}")

    name = folder.name
    description = folder.description
    defaults.check_features(description, "defaults")
    entry.check_features(description, f"models.{name}")
    tests = dict(description.drift_tests())
    for section in (defaults, entry):  # the model entry wins over `defaults`
        for column, override in section.features.items():
            current = tests[column]
            tests[column] = DriftTest(
                override.stattest or current.method,
                override.threshold or current.threshold,
                override.unseen_floor or current.unseen_floor,
            )
    path = folder.reference_path
    if entry.reference_path:  # relative to the config file, like any path written in it
        path = Path(entry.reference_path) if Path(entry.reference_path).is_absolute() else base / entry.reference_path
    config = ModelConfig(
        name=name,
        reference_path=path,
        description=description,
        calibration_path=folder.calibration_path,
        tests=tests,
        calibration=_calibration(entry, defaults),
        **{
            key: pick(key)
            for key in ModelConfig.__dataclass_fields__
            if key not in {"name", "reference_path", "description", "calibration_path", "tests", "calibration"}
        },
    )
    if config.min_rows is not None and config.min_rows > config.window_size:
        raise ConfigError(f"model {name!r}: min_rows ({config.min_rows}) exceeds window_size ({config.window_size})")
    return config


def load_config(path: Path, folders: dict[str, ModelFolder]) -> dict[str, ModelConfig]:
    """Read `path` and return the configuration of every model folder given, by name.

    An entry under `models:` overrides `defaults` for the model of that name; an entry naming no
    model folder is refused (a typo would otherwise leave a model on the defaults silently).
    """
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        parsed = _ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {path}: {exc}") from exc
    base = Path(path).resolve().parent
    for name in parsed.models:
        if re.fullmatch(MODEL_NAME_PATTERN, name) is None:
            raise ConfigError(f"invalid model name {name!r}: use letters, digits, '_', '.', '-'")
        if name not in folders:
            raise ConfigError(f"{path}: models.{name}: no model folder has that name (models: {sorted(folders)})")
    return {
        name: _merge(folder, parsed.models.get(name) or _ModelSection(), parsed.defaults, base)
        for name, folder in folders.items()
    }


@dataclass(frozen=True)
class DriftSettings:
    """What decides a drift verdict for one model: the same for the metrics service and the batch flow."""

    description: ModelDescription
    tests: dict[str, DriftTest]
    dataset_drift_share: float
    multiple_testing: str
    reference_path: Path
    calibration: CalibrationSettings | None = None


def drift_settings(config_path: Path | None, folder: ModelFolder) -> DriftSettings:
    """Return the drift settings of one model folder from the monitoring config (default: monitoring.yaml)."""
    path = config_path or DEFAULT_CONFIG_PATH
    config = load_config(path, {folder.name: folder})[folder.name]
    return DriftSettings(
        config.description,
        dict(config.tests),
        config.dataset_drift_share,
        config.multiple_testing,
        config.reference_path,
        config.calibration,
    )
