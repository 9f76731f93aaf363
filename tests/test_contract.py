"""The code's names against docs/contract.md: alerts, metrics, environment variables, routes and ports.

Names are read from what runs wherever possible: both Flask apps are built by their `create_app()`
from an environment in a fresh interpreter (so nothing this test session imported leaks in) and
their `url_map` and `/metrics` are read; the batch flow's pushed registries are generated; the
settings classes are read at import. Environment reads outside the settings are found in the source.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_stack.components import models_dir_for

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "contract.md"
CATALOGUE = ROOT / "docs" / "metrics.md"
RULES_DIR = ROOT / "prometheus" / "rules"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"

# What docs/contract.md promises and the code does not do YET: other changes are building these now.
# A name here may be missing from the code; a behaviour here is an expected failure. Each check turns
# into a FAILURE once its subject exists ("remove it from PENDING"), so this set empties as those
# changes merge. Never add an entry to silence a failure of something that used to work.
PENDING: dict[str, str] = {}

# Where each runtime's settings live. Both ways of declaring a variable are found: pydantic-settings
# classes are read at import (their `env_names()`, else field names with env_prefix, validation_alias,
# AliasChoices), and the module's source is scanned for upper-case string literals (`env("NAME", ...)`).
SETTINGS_MODULES: dict[str, tuple[str, ...]] = {
    "prediction_service": ("prediction_service.settings",),
    "evidently_service": ("evidently_service.settings",),
    "prefect_flows": ("prefect_flows.settings",),
}
# Packages scanned for direct environment reads (os.environ / os.getenv), and the runtimes that
# run their code: a read in service_common is a read of both services.
PACKAGES: dict[str, tuple[str, ...]] = {
    "prediction_service": ("prediction_service",),
    "evidently_service": ("evidently_service",),
    "prefect_flows": ("prefect_flows",),
    "usage_simulation": ("usage_simulation",),
    "service_common": ("prediction_service", "evidently_service"),
    "monitoring_core": ("prediction_service", "evidently_service", "prefect_flows"),
    "ride_duration": ("prediction_service", "evidently_service"),
}
# The two Flask apps: package with `create_app()`, and the environment that builds one offline.
APPS: dict[str, dict[str, str]] = {
    "prediction_service": {
        "MODEL_DIR": "{artifacts}",
        "PREDICTION_LOG_TO_MONGODB": "false",
        "PREDICTION_FORWARD_TO_METRICS": "false",
        "PREDICTION_SPOOL_DIR": "{tmp}/spool",
    },
    "evidently_service": {"MODELS_DIR": "{models}"},
}
# Standard metrics of prometheus-client's default registry, not the project's names.
STANDARD_METRIC_PREFIXES = ("process_", "python_")
_CREATED_BY = {"counter", "histogram", "summary"}
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")  # PORT, MONGODB_URI; not a prefix like "BATCH_"

# Run in a fresh interpreter: build the app from the environment, print its routes and /metrics.
_INSPECT_APP = """
import json, os, sys
from {package} import create_app
app = create_app()
rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
routes = [[sorted(r.methods - {{"HEAD", "OPTIONS"}}), r.rule] for r in rules]
metrics = app.test_client().get("/metrics").get_data(as_text=True)
print("\\n" + json.dumps({{"routes": routes, "metrics": metrics}}))
sys.stdout.flush()
os._exit(0)  # background threads (evaluations) need no orderly stop here
"""


# --- reading docs/contract.md ---------------------------------------------------------------------


def sections(text: str, level: int = 2) -> dict[str, str]:
    """Return {heading: body} of the markdown headings of `level` in `text`."""
    marker = "#" * level + " "
    parts = re.split(rf"^{marker}(.+)$", text, flags=re.M)
    return {heading.strip(): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def tables(body: str) -> list[list[dict[str, str]]]:
    """Return every markdown table in `body` as rows of {header: cell}."""
    found, lines = [], body.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-| ]+\|$", lines[i + 1]):
            header = _cells(lines[i])
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, _cells(lines[i]), strict=True)))
                i += 1
            found.append(rows)
        else:
            i += 1
    return found


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def ticked(cell: str) -> list[str]:
    """Return the `backticked` names in a table cell."""
    return re.findall(r"`([^`]+)`", cell)


def doc_alerts(text: str) -> dict[str, str]:
    """Return {alert: severity} from the contract's alert table."""
    (rows,) = tables(sections(text)["Alerts"])
    return {ticked(row["alert"])[0]: row["severity"] for row in rows}


def doc_metrics(text: str) -> dict[str, dict[str, str]]:
    """Return {exporter: {metric: type}} from the contract's metric tables."""
    exporters = sections(sections(text)["Prometheus metrics"], 3)
    return {
        heading.split()[0]: {ticked(row["name"])[0]: row["type"] for rows in tables(body) for row in rows}
        for heading, body in exporters.items()
    }


def doc_env(text: str) -> dict[str, set[str]]:
    """Return {runtime: variables documented for it}: its own table plus the shared rows naming it."""
    by_runtime: dict[str, set[str]] = {}
    for heading, body in sections(sections(text)["Environment variables"], 3).items():
        for rows in tables(body):
            for row in rows:
                runtimes = [heading] if heading != "Shared" else [r.strip() for r in row["used by"].split(",")]
                for runtime in runtimes:
                    by_runtime.setdefault(runtime, set()).update(ticked(row["name"]))
    return by_runtime


def doc_routes(text: str) -> dict[str, set[tuple[str, str]]]:
    """Return {service: {(method, path)}} from the contract's endpoint tables."""
    services = sections(sections(text)["HTTP endpoints"], 3)
    return {
        heading.split()[0]: {
            (ticked(row["method"])[0], ticked(row["path"])[0]) for rows in tables(body) for row in rows
        }
        for heading, body in services.items()
    }


def doc_ports(text: str) -> dict[str, int]:
    """Return {component: default port} from the contract's port table."""
    (rows,) = tables(sections(text)["Ports (defaults)"])
    return {ticked(row["component"])[0]: int(row["port"]) for row in rows}


def pending(kind: str) -> set[str]:
    """Return the names of one kind ("env", "metric") that PENDING allows to be missing."""
    return {key.split(" ", 1)[1] for key in PENDING if key.startswith(kind + " ")}


# --- reading the code ----------------------------------------------------------------------------


def rule_alerts() -> dict[str, str]:
    """Return {alert: severity} of every alerting rule in prometheus/rules/."""
    alerts = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            alerts |= {rule["alert"]: rule["labels"]["severity"] for rule in group["rules"] if "alert" in rule}
    return alerts


def exposed_types(text: str) -> dict[str, str]:
    """Return {metric: type} from the `# TYPE` lines of a Prometheus text exposition."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    # prometheus-client writes an unlabelled counter's or histogram's creation time as a gauge of its own.
    created = {f"{name.removesuffix('_total')}_created" for name, kind in types.items() if kind in _CREATED_BY}
    return {
        name: kind
        for name, kind in types.items()
        if not name.startswith(STANDARD_METRIC_PREFIXES) and not (name in created and kind == "gauge")
    }


def batch_flow_metrics() -> dict[str, str]:
    """Return {metric: type} of everything a batch run pushes, success and failure."""
    from prometheus_client import generate_latest

    from prefect_flows import run_metrics

    summary = {"rows": {"period": 10}, "drift": {"dataset_drift": False}}
    registries = [run_metrics.success_registry(summary, 1.0, 2.0), run_metrics.failure_registry(2.0)]
    return {name: kind for r in registries for name, kind in exposed_types(generate_latest(r).decode()).items()}


def settings_env_names(module_name: str) -> set[str]:
    """Return the variables a settings module reads: pydantic-settings fields and upper-case literals."""
    module = importlib.import_module(module_name)
    names = {
        node.value
        for node in ast.walk(ast.parse(Path(module.__file__).read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value)
    }
    try:
        from pydantic import AliasChoices
        from pydantic_settings import BaseSettings
    except ImportError:  # not installed: only hand-written parsers to read
        return names
    classes = [obj for obj in vars(module).values() if isinstance(obj, type) and issubclass(obj, BaseSettings)]
    # Only the classes the runtime instantiates: a base class's fields are read under its subclass's prefix.
    leaves = [cls for cls in classes if not any(other is not cls and issubclass(other, cls) for other in classes)]
    for obj in leaves:
        if callable(getattr(obj, "env_names", None)):  # the project's own answer (monitoring_core/settings.py)
            names |= set(obj.env_names().values())
        elif obj is not BaseSettings:
            prefix = obj.model_config.get("env_prefix", "")
            for field_name, info in obj.model_fields.items():
                alias = info.validation_alias or info.alias
                if isinstance(alias, str):
                    names.add(alias.upper())
                elif isinstance(alias, AliasChoices):
                    names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
                else:
                    names.add((prefix + field_name).upper())
    return names


def _string_constants(tree: ast.AST) -> dict[str, str]:
    constants = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            constants |= {target.id: node.value.value for target in node.targets if isinstance(target, ast.Name)}
    return constants


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def direct_env_reads(package: str) -> set[str]:
    """Return the variables `package` reads with os.environ.get/[...]/setdefault or os.getenv."""
    trees = [ast.parse(path.read_text()) for path in sorted((ROOT / package).rglob("*.py"))]
    constants: dict[str, str] = {}
    for tree in trees:  # names like MULTIPROC_ENV, defined in one module and imported by another
        constants |= _string_constants(tree)
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            key = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                reads_environ = node.func.attr in {"get", "setdefault", "pop"} and _is_environ(node.func.value)
                if reads_environ or node.func.attr == "getenv":
                    key = node.args[0]
            elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
                key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
            elif isinstance(key, ast.Name) and key.id in constants:
                names.add(constants[key.id])
    return names


@cache
def code_env() -> dict[str, frozenset[str]]:
    """Return {runtime: variables its settings or its code read}."""
    by_runtime: dict[str, set[str]] = {}
    for runtime, modules in SETTINGS_MODULES.items():
        for module in modules:
            by_runtime.setdefault(runtime, set()).update(settings_env_names(module))
    for package, runtimes in PACKAGES.items():
        reads = direct_env_reads(package)
        for runtime in runtimes:
            by_runtime.setdefault(runtime, set()).update(reads)
    return {runtime: frozenset(names) for runtime, names in by_runtime.items()}


def field_default(module_name: str, field: str) -> Any:
    """Return the default of `field` on the settings class of `module_name` (dataclass or pydantic)."""
    module = importlib.import_module(module_name)
    for obj in vars(module).values():
        if not isinstance(obj, type) or obj.__module__ != module.__name__:
            continue
        fields = getattr(obj, "model_fields", None)
        if isinstance(fields, dict) and field in fields:
            return fields[field].get_default(call_default_factory=True)
        if dataclasses.is_dataclass(obj):
            for candidate in dataclasses.fields(obj):
                if candidate.name == field:
                    return candidate.default
    raise LookupError(f"no settings class with a {field!r} field in {module_name}")


@pytest.fixture(scope="module")
def apps(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Build each app with `create_app()` in a fresh interpreter; return its routes and /metrics text."""
    documented = set().union(*doc_env(CONTRACT.read_text()).values())
    inspected = {}
    for package, overrides in APPS.items():
        tmp = tmp_path_factory.mktemp(package)
        # The developer's own settings (a PORT, a token) never reach the app under test.
        env = {k: v for k, v in os.environ.items() if k not in documented}
        # The metrics service monitors a MODELS_DIR: the taxi description beside the session's reference.
        models = models_dir_for(artifacts_dir / "reference.parquet", tmp)
        env |= {k: v.format(artifacts=artifacts_dir, tmp=tmp, models=models) for k, v in overrides.items()}
        result = subprocess.run(
            [sys.executable, "-c", _INSPECT_APP.format(package=package)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        inspected[package] = json.loads(result.stdout.strip().splitlines()[-1])
    return inspected


# --- the checks -----------------------------------------------------------------------------------


def alert_differences(text: str) -> list[str]:
    """Return how the contract's alert table and the rule files disagree (names both ways, severity)."""
    documented, defined = doc_alerts(text), rule_alerts()
    problems = [
        f"alert {name} is in the rules but not in docs/contract.md" for name in sorted(set(defined) - set(documented))
    ]
    problems += [
        f"alert {name} is in docs/contract.md but no rule defines it" for name in sorted(set(documented) - set(defined))
    ]
    problems += [
        f"alert {name}: severity {documented[name]} in docs/contract.md, {defined[name]} in the rules"
        for name in sorted(set(documented) & set(defined))
        if documented[name] != defined[name]
    ]
    return problems


def metric_differences(text: str, exported: dict[str, dict[str, str]]) -> list[str]:
    """Return how the contract's metric tables and the exported metrics disagree (names both ways, type)."""
    documented = doc_metrics(text)
    problems = []
    for exporter in sorted(set(documented) | set(exported)):
        doc, code = documented.get(exporter, {}), exported.get(exporter, {})
        problems += [f"{exporter} exports {name}, not in docs/contract.md" for name in sorted(set(code) - set(doc))]
        problems += [
            f"{exporter}: {name} is in docs/contract.md but not exported"
            for name in sorted(set(doc) - set(code) - pending("metric"))
        ]
        problems += [
            f"{exporter}: {name} is a {code[name]}, docs/contract.md says {doc[name]}"
            for name in sorted(set(doc) & set(code))
            if doc[name] != code[name]
        ]
    return problems


def env_differences(text: str, read: dict[str, frozenset[str]]) -> list[str]:
    """Return how the contract's variables and the variables each runtime reads disagree (both ways)."""
    documented = doc_env(text)
    problems = []
    for runtime in sorted(set(documented) | set(read)):
        doc, code = documented.get(runtime, set()), read.get(runtime, frozenset())
        problems += [f"{runtime} reads {name}, not documented for it" for name in sorted(code - doc)]
        problems += [
            f"{runtime}: {name} is documented for it but never read" for name in sorted(doc - code - pending("env"))
        ]
    return problems


def route_differences(text: str, routes: dict[str, set[tuple[str, str]]]) -> list[str]:
    """Return how the contract's endpoint tables and the apps' url_maps disagree (both ways)."""
    documented = doc_routes(text)
    problems = []
    for service in sorted(set(documented) | set(routes)):
        doc, code = documented.get(service, set()), routes.get(service, set())
        problems += [f"{service} serves {m} {p}, not in docs/contract.md" for m, p in sorted(code - doc)]
        problems += [f"{service}: {m} {p} is in docs/contract.md but not served" for m, p in sorted(doc - code)]
    return problems


def flask_routes(apps: dict[str, dict[str, Any]]) -> dict[str, set[tuple[str, str]]]:
    """Return {service: {(method, path)}} of the inspected apps."""
    return {
        service: {(method, rule) for methods, rule in found["routes"] for method in methods}
        for service, found in apps.items()
    }


def exported_metrics(apps: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Return {exporter: {metric: type}}: both apps' /metrics and the batch flow's pushes."""
    exported = {service: exposed_types(found["metrics"]) for service, found in apps.items()}
    exported["prefect_flows"] = batch_flow_metrics()
    return exported


def test_alert_names_and_severities_match_the_rule_files() -> None:
    problems = alert_differences(CONTRACT.read_text())
    assert not problems, "\n".join(problems)


def test_every_documented_metric_is_exported_and_every_exported_one_documented(apps: dict) -> None:
    problems = metric_differences(CONTRACT.read_text(), exported_metrics(apps))
    assert not problems, "\n".join(problems)


def test_the_metric_catalogue_lists_the_contract_names() -> None:
    # docs/metrics.md says what each metric means; it must cover exactly the contract's names.
    contract = set().union(*doc_metrics(CONTRACT.read_text()).values())
    catalogued = set(re.findall(r"^\| `(\w+)` \|", CATALOGUE.read_text(), re.M))
    assert catalogued - contract == set(), "in docs/metrics.md only"
    assert contract - catalogued == set(), "in docs/contract.md only"


def test_every_variable_a_runtime_reads_is_documented_for_it() -> None:
    problems = env_differences(CONTRACT.read_text(), code_env())
    assert not problems, "\n".join(problems)


def test_routes_of_both_apps_match_the_contract(apps: dict) -> None:
    problems = route_differences(CONTRACT.read_text(), flask_routes(apps))
    assert not problems, "\n".join(problems)


def test_default_ports_match_the_settings_and_the_scrape_config() -> None:
    ports = doc_ports(CONTRACT.read_text())
    for runtime in APPS:
        (module, *_) = SETTINGS_MODULES[runtime]
        assert field_default(module, "port") == ports[runtime], runtime
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in config["scrape_configs"]:
        if "dns_sd_configs" in job:  # every replica of a scaled service, on its one port
            (discovery,) = job["dns_sd_configs"]
            assert discovery["port"] == ports[job["job_name"]], job["job_name"]
            continue
        (target,) = job["static_configs"][0]["targets"]
        assert int(target.rsplit(":", 1)[1]) == ports[job["job_name"]], job["job_name"]
    (alertmanager,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert int(alertmanager.rsplit(":", 1)[1]) == ports["alertmanager"]


def test_pending_names_are_still_missing(apps: dict) -> None:
    # Once a pending name exists the check above covers it: the entry must go.
    text = CONTRACT.read_text()
    exported = set().union(*exported_metrics(apps).values())
    read = set().union(*code_env().values())
    arrived = [f"metric {n}" for n in pending("metric") & exported] + [f"env {n}" for n in pending("env") & read]
    assert arrived == [], f"remove from PENDING in tests/test_contract.py: {arrived}"
    documented = set().union(*doc_metrics(text).values()) | set().union(*doc_env(text).values())
    assert pending("metric") | pending("env") <= documented, "a pending name must be in docs/contract.md"


# --- the checks can fail: each finds one name removed from a copy of the contract ---------------


def _without_row(text: str, name: str) -> str:
    changed = re.sub(rf"^\| `{re.escape(name)}` \|.*\n", "", text, count=1, flags=re.M)
    assert changed != text, name
    return changed


def test_a_missing_or_extra_alert_is_reported() -> None:
    text = CONTRACT.read_text()
    assert alert_differences(_without_row(text, "Watchdog")) == [
        "alert Watchdog is in the rules but not in docs/contract.md"
    ]
    extra = text.replace("| `Watchdog` |", "| `Imaginary` | warning | - |\n| `Watchdog` |")
    assert alert_differences(extra) == ["alert Imaginary is in docs/contract.md but no rule defines it"]
    wrong = text.replace("| `Watchdog` | none |", "| `Watchdog` | critical |")
    assert alert_differences(wrong) == ["alert Watchdog: severity critical in docs/contract.md, none in the rules"]


def test_a_missing_metric_variable_or_route_is_reported(apps: dict) -> None:
    text = CONTRACT.read_text()
    exported = exported_metrics(apps)
    assert metric_differences(_without_row(text, "evidently_window_rows"), exported) == [
        "evidently_service exports evidently_window_rows, not in docs/contract.md"
    ]
    lost = {**exported, "prediction_service": dict(exported["prediction_service"])}
    del lost["prediction_service"]["prediction_feedback_total"]
    assert metric_differences(text, lost) == [
        "prediction_service: prediction_feedback_total is in docs/contract.md but not exported"
    ]
    assert env_differences(_without_row(text, "BATCH_MAX_ROWS"), code_env()) == [
        "prefect_flows reads BATCH_MAX_ROWS, not documented for it"
    ]
    routes = flask_routes(apps)
    assert route_differences(text.replace("| `GET` | `/openapi.json` |", "| `GET` | `/openapi` |"), routes) == [
        "prediction_service serves GET /openapi.json, not in docs/contract.md",
        "prediction_service: GET /openapi is in docs/contract.md but not served",
    ]


def test_direct_environment_reads_are_found() -> None:
    assert {"PROMETHEUS_MULTIPROC_DIR", "HOST", "LOG_LEVEL"} <= set().union(*code_env().values())
    assert "MONITORING_TOKEN" in direct_env_reads("usage_simulation")


# --- behaviour the contract promises (pending ones are expected to fail until they exist) -------

RIDE = {
    "lpep_pickup_datetime": "2021-01-05T08:30:00",
    "PULocationID": 43,
    "DOLocationID": 151,
    "trip_distance": 2.4,
    "passenger_count": 1,
}


def pending_behaviour(name: str) -> pytest.MarkDecorator:
    """Mark a behaviour check as an expected failure while `name` is in PENDING (strict: a pass fails)."""
    key = f"behaviour {name}"
    return pytest.mark.xfail(
        key in PENDING,
        reason=f"pending ({PENDING.get(key)}): remove {key!r} from PENDING once it passes",
        raises=AssertionError,
        strict=True,
    )


@pytest.fixture
def prediction_client(artifacts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A test client of the prediction service built by `create_app()` from the environment, offline."""
    for name in set().union(*doc_env(CONTRACT.read_text()).values()):
        monkeypatch.delenv(name, raising=False)
    for name, value in APPS["prediction_service"].items():
        monkeypatch.setenv(name, value.format(artifacts=artifacts_dir, tmp=tmp_path))
    from prediction_service import create_app

    return create_app().test_client()


def _fields_named(body: Any) -> list[str]:
    if isinstance(body, dict):
        return [str(v) for k, v in body.items() if k == "field"] + [f for v in body.values() for f in _fields_named(v)]
    if isinstance(body, list):
        return [f for item in body for f in _fields_named(item)]
    return []


def test_predict_answers_and_errors_as_the_contract_says(prediction_client) -> None:
    answer = prediction_client.post("/predict", json={**RIDE, "request_id": "contract-1"})
    assert answer.status_code == 200
    # `prediction` for every model; `duration` is the taxi description's answer key (existing clients).
    assert set(answer.json) == {"request_id", "prediction", "duration", "model_version"}
    assert answer.json["request_id"] == "contract-1" and answer.json["duration"] == answer.json["prediction"]
    bad = prediction_client.post("/predict", json={**RIDE, "trip_distance": "far"})
    assert bad.status_code == 400
    assert isinstance(bad.json["error"], str)
    assert any(d["field"].endswith("trip_distance") and d["message"] for d in bad.json["details"])


@pending_behaviour("unknown fields are served")
def test_fields_outside_the_schema_are_served(prediction_client) -> None:
    tlc_row = {**RIDE, "VendorID": 2, "store_and_fwd_flag": "N", "fare_amount": 9.5}
    answer = prediction_client.post("/predict", json=tlc_row)
    assert answer.status_code == 200, answer.json
    assert answer.json["duration"] > 0


@pending_behaviour("a client id is the request id")
def test_a_client_id_is_the_request_id(prediction_client) -> None:
    answer = prediction_client.post("/predict", json={**RIDE, "id": "client-id-7"})
    assert answer.status_code == 200, answer.json
    assert answer.json["request_id"] == "client-id-7"


@pending_behaviour("feedback answers per item")
def test_one_bad_feedback_item_never_voids_the_others(prediction_client) -> None:
    served = prediction_client.post("/predict", json={**RIDE, "request_id": "contract-fb-1"})
    assert served.status_code == 200
    answer = prediction_client.post(
        "/feedback", json=[{"request_id": "contract-fb-1", "duration": 12.5}, {"request_id": "x", "duration": -3}]
    )
    assert answer.status_code in (200, 202), answer.json
    # The invalid item is reported with its field, in the contract's error-detail shape.
    assert any(field.endswith("duration") for field in _fields_named(answer.json)), answer.json
