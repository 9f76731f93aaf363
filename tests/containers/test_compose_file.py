"""docker-compose.yml checked offline with the real Compose v2 binary (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from containers_support import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    EXTERNAL_MONGO_FILE,
    MODELS_MOUNT,
    ONE_SHOT,
    REPO,
    python_modules,
    run_compose,
    shell_steps,
)

from usage_simulation.scenario import scenario_path

# CONTRACT.md "Commands": each container runs exactly what the local run and the tests run.
CONTRACT_COMMANDS = {
    "prediction_service": ["python", "-m", "prediction_service"],
    "prediction_service_health_insurance": ["python", "-m", "prediction_service"],
    "evidently_service": ["python", "-m", "evidently_service"],
    "prefect_flows": ["python", "-m", "prefect_flows.serve"],
}
# The simulator's arguments come from .env; its command starts with the contract's.
CONTRACT_PREFIXES = {"simulator": ["python", "-m", "usage_simulation"]}

# CONTRACT.md "Ports": what a person opens in a browser or points the simulator at. Nothing else is published.
# Services that run another service's image with a different command.
SHARED_IMAGE = {"evidently_ui", "prefect_server"}
PUBLISHED = {
    "prediction_proxy": 9696,  # nginx in front of prediction_service (docker/prediction-proxy-nginx.conf)
    "prometheus": 9090,
    "alertmanager": 9093,
    "grafana": 3000,
    "prefect_server": 4200,
    "evidently_ui": 8000,
    "reports": 8080,
}
INTERNAL_ONLY = {
    "mongo",
    "evidently_service",
    "prefect_flows",
    "alert-webhook",
    "prediction_service",
    "prediction_service_health_insurance",
}
# One prediction service per shipped example (the first behind prediction_proxy), and what each serves.
PREDICTION_SERVICES = {"prediction_service": "ride_duration", "prediction_service_health_insurance": "health_insurance"}
# Where each runtime finds its model folders: one folder (MODEL_DIR) or the folder of folders (MODELS_DIR).
MODEL_LOCATION = ("MODEL_DIR", "MODELS_DIR")
# Variables that name model files or a model, which a runtime may have stopped reading.
MODEL_VARIABLES = {"MODEL_DIR", "MODELS_DIR", "MODEL_PATH", "REFERENCE_PATH", "MODEL_NAME"}
# (runtime, variable) compose sets ahead of a change still under way (the batch flow reading MODELS_DIR on
# branch `batch`). test_pending_model_variables_are_still_unread fails once the code reads it: remove it then.
PENDING_READS: set[tuple[str, str]] = set()
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET")
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)")


def env_example() -> dict[str, str]:
    """Return the NAME=value pairs of .env.example, commented-out examples included (value '')."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            pairs[match.group(1)] = "" if line.lstrip().startswith("#") else match.group(2)
    return pairs


def secret_names() -> list[str]:
    """Return the .env.example variables that hold secrets."""
    return sorted(name for name in env_example() if SECRET_NAME.search(name))


def code_lines(path: Path) -> str:
    """Return a compose file without its comment lines (they may mention `${VAR}` as prose)."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


class _ComposeLoader(yaml.SafeLoader):
    """YAML loader that accepts Compose's merge tags (`!override`, `!reset`) as plain values."""


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: (
            loader.construct_mapping(node)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_sequence(node)
            if isinstance(node, yaml.SequenceNode)
            else loader.construct_scalar(node)
        ),
    )


def load_raw(path: Path) -> dict:
    """Parse a compose file as written, before interpolation."""
    return yaml.load(path.read_text(), Loader=_ComposeLoader)  # noqa: S506 -- a SafeLoader subclass


def test_config_passes_compose_validation():
    result = run_compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_simulate_profile_and_external_mongo_override_validate():
    assert run_compose("--profile", "simulate", "config", "-q").returncode == 0
    result = run_compose(
        "config",
        "-q",
        files=(COMPOSE_FILE, EXTERNAL_MONGO_FILE),
        env={"MONGODB_URI": "mongodb://app:pw@db.example:27017/prediction_service"},
    )
    assert result.returncode == 0, result.stderr


def test_external_mongo_override_drops_the_bundled_database(tmp_path: Path):
    result = run_compose(
        "config",
        "--format",
        "json",
        files=(COMPOSE_FILE, EXTERNAL_MONGO_FILE),
        env={"MONGODB_URI": "mongodb://app:pw@db.example:27017/prediction_service"},
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert "mongo" not in services
    for name in (*PREDICTION_SERVICES, "evidently_service", "prefect_flows"):
        assert "mongo" not in services[name].get("depends_on", {})
        assert services[name]["environment"]["MONGODB_URI"] == "mongodb://app:pw@db.example:27017/prediction_service"
    # Without the URI the override refuses to start rather than falling back to a missing host.
    assert run_compose("config", "-q", files=(COMPOSE_FILE, EXTERNAL_MONGO_FILE)).returncode != 0


@pytest.mark.parametrize("name", secret_names())
def test_each_secret_is_required(tmp_path: Path, name: str):
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_example().items() if k != name and v))
    result = run_compose("config", "-q", env_file=env_file)
    assert result.returncode != 0, f"compose accepted a missing {name}"
    assert name in result.stderr


def test_no_secret_in_the_compose_files():
    for path in (COMPOSE_FILE, EXTERNAL_MONGO_FILE):
        text = code_lines(path)
        for name in secret_names():
            # Required (`:?`), never defaulted (`:-` would put a default password in the file).
            assert f"${{{name}:-" not in text, f"{path.name} gives {name} a default"
            for use in re.findall(rf"\$\{{{name}[^}}]*\}}", text):
                assert use.startswith(f"${{{name}:?"), f"{path.name}: {use} is not required"
        raw = load_raw(path)
        for service, spec in raw["services"].items():
            for key, value in (spec.get("environment") or {}).items():
                if SECRET_NAME.search(key) or key == "MONGODB_URI":
                    assert "${" in str(value), f"{service}.{key} holds a literal value"
    for name in secret_names():
        assert env_example()[name] == "change-me", f".env.example must hold a placeholder for {name}"


def test_env_example_documents_every_variable():
    used = set()
    for path in (COMPOSE_FILE, EXTERNAL_MONGO_FILE):
        used |= set(VARIABLE.findall(code_lines(path)))
    documented = set(env_example())
    assert used - documented == set(), "variables missing from .env.example"
    assert documented - used == set(), ".env.example documents variables compose never reads"


def test_every_long_running_service_has_a_healthcheck(rendered: dict):
    for name, spec in rendered["services"].items():
        if name in ONE_SHOT:
            assert "healthcheck" not in spec or spec["healthcheck"].get("disable"), name
            continue
        check = spec.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_start_order_waits_for_health_not_for_start(rendered: dict):
    services = rendered["services"]
    for name, spec in services.items():
        for dependency, how in spec.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert how["condition"] == expected, f"{name} -> {dependency}"
    for reader in (*PREDICTION_SERVICES, "evidently_service", "prefect_flows"):
        assert "trainer" in services[reader]["depends_on"], f"{reader} would start before the model exists"
    for name in PREDICTION_SERVICES:
        assert {"mongo", "evidently_service"} <= set(services[name]["depends_on"]), name
    assert {*PREDICTION_SERVICES, "evidently_service"} <= set(services["prometheus"]["depends_on"])
    assert "prometheus" in services["grafana"]["depends_on"]


def test_images_are_pinned(rendered: dict):
    for name, spec in rendered["services"].items():
        assert "build" in spec or "image" in spec, name
        if "build" in spec:
            continue
        repository, _, tag = spec["image"].rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {spec['image']} is not pinned"
        assert re.search(r"\d+\.\d+\.\d+", tag), f"{name}: {spec['image']} needs a full version"


def test_built_services_run_as_non_root(rendered: dict, dockerfile_of):
    for name, spec in rendered["services"].items():
        if "build" not in spec:
            continue
        assert spec.get("user") not in (None, "", "0", "root") and not spec["user"].startswith("0:"), name
        assert dockerfile_of(name).last("USER") == spec["user"], f"{name}: compose user differs from the image's"


@pytest.mark.parametrize("service", sorted(CONTRACT_COMMANDS))
def test_command_is_the_contract_command(rendered: dict, dockerfile_of, service: str):
    expected = CONTRACT_COMMANDS[service]
    assert rendered["services"][service]["command"] == expected
    assert dockerfile_of(service).cmd == expected, "the image's own CMD must match too"


def test_simulator_command_uses_real_options(rendered: dict):
    command = rendered["services"]["simulator"]["command"]
    assert command[:3] == CONTRACT_PREFIXES["simulator"]
    help_text = subprocess.run(
        [sys.executable, "-m", "usage_simulation", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    ).stdout
    for option in (word for word in command if word.startswith("--")):
        assert option in help_text, f"usage_simulation has no {option}"
    scenario = command[command.index("--scenario") + 1]
    assert scenario_path(scenario, REPO / "models" / "ride_duration").is_file()
    # The taxi example's folder in the volume (its scenarios and reference), the model the proxy serves.
    assert command[command.index("--url") + 1] == "http://prediction_proxy:9696"
    assert command[command.index("--model-dir") + 1] == f"{MODELS_MOUNT}/ride_duration"


def test_published_ports_are_the_user_facing_ones_on_loopback(rendered: dict):
    published = {}
    for name, spec in rendered["services"].items():
        for port in spec.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} is published beyond loopback"
            published[name] = port["target"]
            assert str(port["published"]).split("-")[0] == str(port["target"]), name
    assert published == PUBLISHED


def test_internal_services_live_on_the_internal_network(rendered: dict):
    assert rendered["networks"]["backend"].get("internal") is True
    for name in INTERNAL_ONLY:
        assert set(rendered["services"][name]["networks"]) == {"backend"}, name
    assert rendered["services"]["trainer"]["network_mode"] == "none"


def test_every_bind_mount_exists_in_the_repository(rendered: dict):
    missing = []
    for name, spec in rendered["services"].items():
        for volume in spec.get("volumes", []):
            if volume["type"] != "bind":
                continue
            source = Path(volume["source"])
            assert source.is_relative_to(REPO), f"{name} mounts {source} from outside the repository"
            wants_file = Path(volume["target"]).suffix in {".yml", ".yaml", ".conf", ".json", ".js"}
            if not (source.is_file() if wants_file else source.is_dir()):
                missing.append(f"{name}: {source.relative_to(REPO)}")
            assert volume.get("read_only"), f"{name} mounts {source} writable"
    assert missing == [], "mounted paths missing from the repository"


def test_every_contract_module_exists():
    for command in [*CONTRACT_COMMANDS.values(), *CONTRACT_PREFIXES.values()]:
        module = command[2]
        path = REPO / Path(*module.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), f"{module} does not exist"


def _listening_port(spec: dict) -> set[int]:
    """Return the ports a service listens on, as far as its compose spec says."""
    ports = {int(p["target"]) for p in spec.get("ports", [])}
    ports |= {int(str(p).split("/")[0]) for p in spec.get("expose", [])}  # internal-only ports
    if "PORT" in (spec.get("environment") or {}):
        ports.add(int(spec["environment"]["PORT"]))
    return ports


def test_prometheus_scrapes_compose_services_it_can_reach(rendered: dict):
    services = rendered["services"]
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t for job in config["scrape_configs"] for group in job.get("static_configs", []) for t in group["targets"]
    ]
    targets += [t for am in config["alerting"]["alertmanagers"] for g in am["static_configs"] for t in g["targets"]]
    # DNS discovery: every address the name resolves to, on the given port.
    targets += [
        f"{n}:{sd['port']}"
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for n in sd["names"]
    ]
    prometheus_networks = set(services["prometheus"]["networks"])
    for target in targets:
        host, _, port = target.rpartition(":")
        if host == "localhost":
            continue
        assert host in services, f"Prometheus target {target} is not a compose service"
        assert prometheus_networks & set(services[host]["networks"]), f"Prometheus cannot reach {host}"
        known = _listening_port(services[host]) or {9093}  # alertmanager listens on its default port
        assert int(port) in known, f"{target}: {host} listens on {known}"


def test_prediction_service_scales_and_every_replica_is_scraped(tmp_path: Path):
    """`docker compose up --scale prediction_service=3`, checked on the config Compose itself renders."""
    override = tmp_path / "scale.yml"
    override.write_text("services:\n  prediction_service:\n    scale: 3\n")
    result = run_compose("config", "--format", "json", files=(COMPOSE_FILE, override))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    replica = services["prediction_service"]
    assert replica["scale"] == 3
    # Nothing that only one container can have: a fixed name or a published host port.
    assert "container_name" not in replica and not replica.get("ports")
    # Prometheus asks DNS for every replica of the service, on the port each one listens on.
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "prediction_service"]
    (sd,) = job["dns_sd_configs"]
    # One job for every prediction service (rules, alerts and dashboards select job="prediction_service").
    assert set(sd["names"]) == set(PREDICTION_SERVICES) and sd["type"] == "A"
    for name in sd["names"]:
        served = services[name]
        assert str(sd["port"]) in served["expose"] and served["environment"]["PORT"] == str(sd["port"]), name
        assert set(services["prometheus"]["networks"]) & set(served["networks"]), name
    # One address for clients: the proxy re-resolves the service name, so it reaches every replica.
    proxy = (REPO / "docker" / "prediction-proxy-nginx.conf").read_text()
    assert "resolver 127.0.0.11" in proxy and f"server prediction_service:{sd['port']} resolve;" in proxy
    assert set(services["prediction_proxy"]["networks"]) & set(replica["networks"])
    # The spool volume is shared by the replicas, so each must lock its own subfolder of it.
    assert any(v["type"] == "volume" and v["source"] == "prediction_spool" for v in replica["volumes"])
    assert replica["environment"]["PREDICTION_SPOOL_PER_REPLICA"] == "true"


def test_grafana_provisioning_matches_the_mounts(rendered: dict):
    grafana = rendered["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    provisioning = mounts["/etc/grafana/provisioning"]
    for source in (provisioning / "datasources").glob("*.y*ml"):
        for datasource in yaml.safe_load(source.read_text()).get("datasources", []):
            if datasource["type"] == "prometheus":
                assert datasource["url"] == "http://prometheus:9090"
    for source in (provisioning / "dashboards").glob("*.y*ml"):
        for provider in yaml.safe_load(source.read_text()).get("providers", []):
            path = provider["options"]["path"]
            assert path in mounts, f"dashboard provider reads {path}, which is not mounted"
            assert list(mounts[path].glob("*.json")), f"no dashboards in {mounts[path]}"


def test_built_services_run_their_image_command(rendered: dict, dockerfile_of):
    for name, spec in rendered["services"].items():
        if "build" in spec and name not in SHARED_IMAGE and name not in CONTRACT_PREFIXES:
            assert spec["command"] == dockerfile_of(name).cmd, f"{name}: compose and Dockerfile disagree"


def test_alertmanager_receivers_are_reachable_compose_services(rendered: dict):
    services = rendered["services"]
    config = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    urls = [hook["url"] for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert urls, "no webhook receivers to check"
    for url in urls:
        host, _, rest = url.removeprefix("http://").partition(":")
        port = int(rest.split("/")[0])
        assert host in services, f"Alertmanager posts to {host}, which is not a compose service"
        assert set(services["alertmanager"]["networks"]) & set(services[host]["networks"])
        command = services[host]["command"]
        assert command[command.index("--port") + 1] == str(port), f"{host} does not listen on {port}"


def test_shared_volumes_are_initialised_by_our_images(rendered: dict):
    """A named volume takes its owner from the first container that mounts it: for volumes our non-root
    services write, that must be one of our images, so third-party readers wait for one and copy nothing."""
    services = rendered["services"]
    for name, spec in services.items():
        if "build" in spec:
            continue
        for volume in spec.get("volumes", []):
            writers = {
                other
                for other, o in services.items()
                if "build" in o
                for v in o.get("volumes", [])
                if v["type"] == "volume" and v["source"] == volume.get("source") and not v.get("read_only")
            }
            if volume["type"] != "volume" or not writers:
                continue
            assert volume.get("volume", {}).get("nocopy"), f"{name} would copy its image's files into {volume}"
            ours = {
                d
                for d in spec.get("depends_on", {})
                if any(
                    v["type"] == "volume" and v["source"] == volume["source"] for v in services[d].get("volumes", [])
                )
            }
            assert ours, f"{name} may mount {volume['source']} before any of our images initialises it"


def test_ports_stay_on_loopback_when_bind_address_is_unset(tmp_path: Path):
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_example().items() if k != "BIND_ADDRESS" and v))
    result = run_compose("config", "--format", "json", env_file=env_file)
    assert result.returncode == 0, result.stderr
    for name, spec in yaml.safe_load(result.stdout)["services"].items():
        assert all(port["host_ip"] == "127.0.0.1" for port in spec.get("ports", [])), name


def test_prometheus_finds_its_rule_files_inside_the_container(rendered: dict):
    """rule_files resolve against the config's path in the container: each glob must hit mounted rule files."""
    mounts = {
        v["target"]: Path(v["source"]) for v in rendered["services"]["prometheus"]["volumes"] if v["type"] == "bind"
    }
    config_target = next(t for t in mounts if t.endswith("prometheus.yml"))
    config = yaml.safe_load(mounts[config_target].read_text())
    assert config.get("rule_files"), "Prometheus would load no alert rules"
    for pattern in config["rule_files"]:
        in_container = Path(config_target).parent / pattern
        mount = next((t for t in mounts if in_container.is_relative_to(t) and t != config_target), None)
        assert mount, f"{in_container} is not under any mount"
        matches = list(mounts[mount].glob(str(in_container.relative_to(mount))))
        assert matches, f"{pattern} matches no file in {mounts[mount]}"


def test_prediction_proxy_fronts_the_service_on_the_published_port(rendered: dict):
    services = rendered["services"]
    proxy, service = services["prediction_proxy"], services["prediction_service"]
    assert "ports" not in service, "clients must reach the service through the proxy"
    assert set(proxy["networks"]) & set(service["networks"]), "the proxy cannot reach the service"
    assert proxy["depends_on"]["prediction_service"]["condition"] == "service_healthy"
    config = next(Path(v["source"]) for v in proxy["volumes"] if v["target"] == "/etc/nginx/conf.d/default.conf")
    text = config.read_text()
    assert "server prediction_service:9696 resolve;" in text and "listen 9696;" in text
    # The slow-client bounds of docs/reliability.md: whole requests only, within these times.
    for directive in ("client_header_timeout 5s;", "client_body_timeout 10s;", "proxy_request_buffering on;"):
        assert directive in text, directive


def test_the_readme_runs_the_batch_flow_now_with_a_compose_service_and_a_real_option(rendered: dict, monkeypatch):
    """Seen: reports stayed empty for up to ~70 min (hourly cron) and the README had no "run it now" command."""
    import shlex

    from prefect_flows import batch_monitoring

    readme = (REPO / "README.md").read_text().splitlines()
    (marker,) = [i for i, line in enumerate(readme) if line.startswith("<!-- compose-batch-now:")]
    assert readme[marker + 1] == "```bash"
    words = shlex.split(readme[marker + 2])
    assert words[:4] == ["docker", "compose", "run", "--rm"]
    service, command = words[4], words[5:]
    assert service in rendered["services"] and "profiles" not in rendered["services"][service]
    assert rendered["services"][service]["environment"]["REPORTS_DIR"] == "/reports"  # the volume nginx serves
    assert command[:3] == ["python", "-m", "prefect_flows.batch_monitoring"]
    seen = {}

    def flow(**parameters):
        seen.update(parameters)
        return {"ride_duration": {"run_id": "r", "message": "", "index": ""}}

    monkeypatch.setattr(batch_monitoring, "batch_monitoring", flow)
    assert batch_monitoring.main(command[3:]) == 0
    assert (seen["end"] - seen["start"]).total_seconds() == 60 * float(command[command.index("--last-minutes") + 1])


# --- the model folders: the trainer fills /models, every runtime reads a folder of it --------------------


def _make_train_steps() -> list[list[str]]:
    """Return the `make train` recipe's commands as [MODULE, ARGS...] (`$(PY) -m MODULE ARGS`)."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("train:"))
    steps = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        words = line.split()
        assert words[:2] == ["$(PY)", "-m"], f"make train runs {line.strip()}, not a python module"
        steps.append(words[2:])
    return steps


def _trained_folders(rendered: dict) -> dict[str, list[str]]:
    """Return {folder inside the container: the step that trains it} from the trainer's command."""
    return {
        step[step.index("--out-dir") + 1]: step
        for step in python_modules(rendered["services"]["trainer"]["command"])
        if "--out-dir" in step
    }


def _mounts_models(spec: dict, *, read_only: bool) -> bool:
    return any(
        v["type"] == "volume"
        and v["source"] == "models"
        and v["target"] == MODELS_MOUNT
        and bool(v.get("read_only")) == read_only
        for v in spec.get("volumes", [])
    )


def test_the_trainer_runs_make_train_into_the_models_volume(rendered: dict):
    """Each `make train` command with the volume's folders, after copying the committed folders in."""
    trainer = rendered["services"]["trainer"]
    steps = shell_steps(trainer["command"])
    assert steps[0] == ["set", "-e"], "the first failing step must fail the job (readers wait for exit 0)"
    assert steps[1] == ["cp", "-R", "models/.", f"{MODELS_MOUNT}/"], "the committed model folders come first"
    local = _make_train_steps()
    container = python_modules(trainer["command"])
    assert [step[0] for step in container] == [step[0] for step in local], "the same modules as `make train`"
    shipped = sorted(p.parent.name for p in (REPO / "models").glob("*/model.yaml"))
    for here, there in zip(local, container, strict=True):
        if here[0].endswith(".train"):  # locally its default folder, models/<name>; here the volume's
            assert here[1:] == [], here
            folder = there[there.index("--out-dir") + 1]
            assert there[1:] == ["--out-dir", folder] and folder.rpartition("/")[0] == MODELS_MOUNT, there
        else:
            assert there[1:] == [MODELS_MOUNT if word == "models" else word for word in here[1:]], there
    assert sorted(f.rpartition("/")[2] for f in _trained_folders(rendered)) == shipped, "every shipped example"
    assert _mounts_models(trainer, read_only=False), "the trainer writes the models volume"
    assert [name for name, s in rendered["services"].items() if _mounts_models(s, read_only=False)] == ["trainer"]


def test_a_model_folder_of_ones_own_reaches_the_models_volume(rendered: dict, dockerfile_of, tmp_path: Path):
    """Seen: README's own-model folder (models/churn) reached the trainer image as model.yaml alone (.dockerignore
    keeps model files and references out of images): `prepare --all` stopped on it and, every service waiting
    for the trainer, the whole stack never started. The trainer copies the repository's folders, mounted."""
    from monitoring_core.prepare import main as prepare_main

    trainer = rendered["services"]["trainer"]
    source = shell_steps(trainer["command"])[1][2].removesuffix("/.")  # `cp -R models/. /models/`
    workdir = dockerfile_of("trainer").last("WORKDIR")
    mounts = {v["target"]: v for v in trainer["volumes"] if v["type"] == "bind"}
    mount = mounts.get(f"{workdir}/{source}")
    assert mount, f"the trainer copies {workdir}/{source} from its image: a folder of one's own has no model there"
    assert Path(mount["source"]) == REPO / "models" and mount.get("read_only")
    # What the image alone would hold for such a folder: its description, nothing else. `prepare --all` refuses it.
    (tmp_path / "churn").mkdir()
    (tmp_path / "churn" / "model.yaml").write_text((REPO / "models/health_insurance/model.yaml").read_text())
    assert prepare_main(["--all", str(tmp_path)]) != 0


def test_every_runtime_reads_folders_the_trainer_fills(rendered: dict):
    services, trained = rendered["services"], _trained_folders(rendered)
    for name in ("evidently_service", "prefect_flows"):
        assert services[name]["environment"]["MODELS_DIR"] == MODELS_MOUNT, f"{name} monitors every folder"
    served = {}
    for name, model in PREDICTION_SERVICES.items():
        folder = services[name]["environment"]["MODEL_DIR"]
        assert folder == f"{MODELS_MOUNT}/{model}" and folder in trained, f"{name} serves {folder}"
        served[folder] = name
    assert set(served) == set(trained), "a trained example no prediction service serves"
    simulator = services["simulator"]["command"]
    assert simulator[simulator.index("--model-dir") + 1] in trained
    readers = [n for n, s in services.items() if set(MODEL_LOCATION) & set(s.get("environment") or {})]
    for name in [*readers, "simulator"]:
        spec = services[name]
        assert _mounts_models(spec, read_only=True), f"{name} must mount the models volume read-only"
        assert spec["depends_on"]["trainer"]["condition"] == "service_completed_successfully", name
        for variable in MODEL_LOCATION:
            value = (spec.get("environment") or {}).get(variable)
            assert value is None or value == MODELS_MOUNT or value in trained, f"{name}: {variable}={value}"


def _code_env() -> dict[str, frozenset[str]]:
    """Return {runtime: variables it reads}, as tests/test_contract.py finds them."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from test_contract import code_env
    finally:
        sys.path.remove(str(REPO / "tests"))
    return code_env()


def _image_env(dockerfile) -> dict[str, str]:
    """Return the final stage's ENV defaults (`ENV K=V K=V`)."""
    values = {}
    for op, args in dockerfile.final_stage:
        if op == "ENV":
            values |= dict(word.split("=", 1) for word in shlex.split(args))
    return values


def test_no_service_sets_a_model_variable_its_runtime_does_not_read(rendered: dict, dockerfile_of):
    """A variable a runtime stopped reading (REFERENCE_PATH, MODEL_NAME) is silently ignored: compose and the
    images' ENV defaults name only what each runtime reads now."""
    read, problems = _code_env(), []
    for name, spec in rendered["services"].items():
        if "build" not in spec:
            continue
        modules = python_modules(spec["command"])
        runtime = modules[0][0].split(".")[0] if len(modules) == 1 else None
        if runtime not in read:
            continue
        given = {**_image_env(dockerfile_of(name)), **(spec.get("environment") or {})}
        for variable in sorted(MODEL_VARIABLES & set(given)):
            if variable not in read[runtime] and (runtime, variable) not in PENDING_READS:
                problems.append(f"{name}: {runtime} does not read {variable}")
    assert problems == []


def test_pending_model_variables_are_still_unread():
    read = _code_env()
    for runtime, variable in sorted(PENDING_READS):
        assert variable not in read[runtime], f"{runtime} reads {variable} now: remove it from PENDING_READS"


def test_image_defaults_name_the_models_volume(dockerfiles: dict):
    for path, dockerfile in dockerfiles.items():
        env = _image_env(dockerfile)
        assert "REFERENCE_PATH" not in env, f"{path}: no runtime reads REFERENCE_PATH from the volume"
        if "MODELS_DIR" in env:
            assert env["MODELS_DIR"] == MODELS_MOUNT, path
        if "MODEL_DIR" in env:
            assert env["MODEL_DIR"] == f"{MODELS_MOUNT}/ride_duration", path
