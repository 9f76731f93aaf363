"""One strict way to read settings from the environment, shared by every runtime.

Each runtime's `Settings` is a frozen pydantic-settings model assembled from the groups below, so a
variable that several runtimes read (MONGODB_URI, MODEL_NAME, MONITORING_TOKEN, ...) has its name,
type and default written once. Names are case-insensitive, an empty value counts as unset, and a bad
value raises one `SettingsError` whose one-line message names the variable:
`PREDICTION_BATCH_SIZE must be an integer, got 'abc'`.

`Settings.from_env(mapping)` reads a mapping (default: the process environment); plain
construction `Settings(field=...)` reads nothing from the environment, so tests get exactly what
they pass. Only pydantic and pydantic-settings are imported: no pandas, scikit-learn, Flask or
Evidently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from monitoring_core.paths import DEFAULT_DRIFT_CONFIG_PATH, DEFAULT_MODEL_DIR, DEFAULT_REFERENCE_PATH, MODELS_DIR

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_FLAG_RULE = "must be a boolean (1/0, true/false, yes/no, on/off)"


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line naming each bad variable."""


def _flag(value: Any) -> Any:
    # Only the documented spellings: pydantic alone would also take "t"/"y", and the old metrics
    # service parser read any typo ("ture") as false.
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise PydanticCustomError("flag_parsing", _FLAG_RULE)
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
"""A boolean setting: 1/0, true/false, yes/no, on/off in any case; anything else is an error."""


def env(name: str, default: Any, **constraints: Any) -> Any:
    """Declare a setting read from the environment variable `name`, with its default and constraints."""
    return Field(default, validation_alias=name, **constraints)


def port(default: int) -> Any:
    """Declare the server's `PORT` setting with this runtime's default."""
    return env("PORT", default, ge=0, le=65535)


# pydantic's error type -> (operator, the key of the bound in the error's context).
_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}
_RULES = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "int_type": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": _FLAG_RULE,
    "bool_type": _FLAG_RULE,
    "string_type": "must be a string",
    "path_type": "must be a path",
}


def describe(exc: ValidationError) -> str:
    """Return one line naming each bad variable (or field), the rule it breaks and the value it had."""
    problems = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(f"{name} is not a setting")
            continue
        if kind in _BOUNDS:
            operator, key = _BOUNDS[kind]
            bound = error["ctx"][key]
            rule = f"must be {operator} {f'{bound:g}' if isinstance(bound, float) else bound}"
        elif kind in _RULES:
            rule = _RULES[kind]
        elif kind == "value_error":
            rule = str(error["ctx"]["error"])
        else:
            rule = error["msg"][:1].lower() + error["msg"][1:]
        problems.append(f"{name} {rule}, got {error['input']!r}")
    return "; ".join(problems)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Case-insensitive names, and an empty value is unset: how the runtimes always read them.
        return {name.lower(): value for name, value in self._environ.items() if value != ""}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Read only fields declared with `env(...)`; the others are set by code alone."""
        if field.validation_alias is None:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class StrictSettings(BaseSettings):
    """Frozen, typed settings; subclasses declare each field with `env(NAME, default, ...)`."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        case_sensitive=False,
        allow_inf_nan=False,  # "nan" or "inf" is never a sensible timeout or size
        # Defaults are literals written beside their types; a derived default (the prediction
        # service's spool folder) is filled in by a validator after the others are parsed.
        validate_default=False,
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Take only the constructor's arguments: `from_env` is the one place the environment is read."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Parse the settings from `env` (default: os.environ); raise SettingsError naming each bad variable."""
        return cls(**_MappingSource(cls, os.environ if env is None else env)())

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Return each field's environment variable name (fields set only by code are left out)."""
        return {name: str(f.validation_alias) for name, f in cls.model_fields.items() if f.validation_alias}

    def replace(self, **changes: Any) -> Self:
        """Return a copy with `changes` (by field name) applied and validated like the rest."""
        return type(self)(**{**self.model_dump(), **changes})


# The groups of settings several runtimes share: each variable's name and default live here only.


class ModelSettings(StrictSettings):
    """The model a runtime serves or monitors."""

    model_name: str = env("MODEL_NAME", "ride_duration", min_length=1)


class MongoSettings(StrictSettings):
    """Where the prediction service logs and the others read from."""

    mongodb_uri: str = env("MONGODB_URI", "mongodb://127.0.0.1:27017", min_length=1)
    mongodb_database: str = env("MONGODB_DATABASE", "prediction_service", min_length=1)


class TokenSettings(StrictSettings):
    """The bearer token that guards the write endpoints; unset: none required."""

    monitoring_token: str | None = env("MONITORING_TOKEN", None)

    @field_validator("monitoring_token")
    @classmethod
    def _blank_is_unset(cls, token: str | None) -> str | None:
        # "" or spaces would otherwise be a token nobody can send (or, to `if token:`, no token at all):
        # one meaning, unset, and the services say so at start.
        return token if token and token.strip() else None


class ModelDirSettings(StrictSettings):
    """The one model folder a prediction service serves (monitoring_core/model_folder.py)."""

    model_dir: Path = env("MODEL_DIR", DEFAULT_MODEL_DIR)


class ModelsDirSettings(StrictSettings):
    """The folder of model folders the metrics service and the batch flow monitor (subfolders with a model.yaml)."""

    models_dir: Path = env("MODELS_DIR", MODELS_DIR)


class ReferenceSettings(StrictSettings):
    """The reference dataset training writes."""

    reference_path: Path = env("REFERENCE_PATH", DEFAULT_REFERENCE_PATH)


class DriftConfigSettings(StrictSettings):
    """The drift configuration (pinned tests, thresholds, windows) the metrics service and the batch flow share."""

    config_path: Path = env("EVIDENTLY_CONFIG", DEFAULT_DRIFT_CONFIG_PATH)


class ServerSettings(StrictSettings):
    """A server's bind address; each server adds `port: int = port(ITS_DEFAULT)`."""

    host: str = env("HOST", "0.0.0.0", min_length=1)
    # The gunicorn worker (service_common/workers.py): `buffered` reads whole requests before a thread
    # takes them, so slow or idle clients cannot hold the threads (docs/reliability.md).
    worker_class: Literal["buffered", "gthread", "gevent"] = env("WORKER_CLASS", "buffered")

    @field_validator("worker_class", mode="before")
    @classmethod
    def _worker_class_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value
