"""The Compose stack (``deploy/compose/``), checked offline.

``compose.yaml`` is validated against the Compose Specification's JSON schema (vendored in
``schemas/``, see ``schemas/SOURCES.md``), before and after interpolating the variables
``make-env`` writes; HAProxy's and Prometheus' own checkers read their configuration; and
the pieces must agree: the replicas the load balancer checks on ``/readyz`` are those
Prometheus scrapes, each has its own home volume on a read-only root, every ``VIGIL_*``
variable is a real setting.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tests.deploy.dockerfile import image_env
from tests.deploy.vigil_settings import check_names, load_config_file

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text())
REPLICAS = ["vigil-1", "vigil-2"]


def load(text: str | None = None) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text or (COMPOSE / "compose.yaml").read_text())
    return loaded


def make_env() -> dict[str, str]:
    out = subprocess.run([COMPOSE / "make-env"], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and
    ``$$``; a missing required variable raises with its message."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if kind == "-" else ""

    return _VARIABLE.sub(value, text)


def test_compose_yaml_follows_the_compose_specification():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(load(), SCHEMA, cls=jsonschema.Draft7Validator)
    text = (COMPOSE / "compose.yaml").read_text()
    jsonschema.validate(load(interpolate(text, make_env())), SCHEMA, cls=jsonschema.Draft7Validator)


def test_every_password_is_required_and_make_env_writes_each_once():
    text = (COMPOSE / "compose.yaml").read_text()
    required = {m.group(1) for m in _VARIABLE.finditer(text) if m.group(2) == "?"}
    env = make_env()
    assert set(env) == required
    assert len(set(env.values())) == len(env) and all(len(v) == 32 for v in env.values())
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(text, {})  # no default credentials: `up` fails without them
    # No literal password anywhere: each is a variable.
    for service in load()["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET", key):
                assert str(value).startswith("${"), key


def test_the_replicas_run_the_image_read_only_each_with_its_own_home():
    services = load()["services"]
    home = image_env()["VIGIL_HOME"]
    volumes = []
    for name in REPLICAS:
        replica = services[name]
        assert replica["image"].startswith("${VIGIL_IMAGE:-vigil:")
        assert replica["build"]["context"] == "../.."
        assert replica["read_only"] is True and replica["tmpfs"] == ["/tmp"]
        (volume,) = replica["volumes"]
        assert volume.endswith(f":{home}")
        volumes.append(volume)
        assert replica["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
    assert len(set(volumes)) == len(REPLICAS)  # capture segments are per replica


def test_stopping_waits_for_the_drain():
    for name in REPLICAS:
        replica = load()["services"][name]
        env = replica["environment"]
        needed = float(env["VIGIL_SERVE_SHUTDOWN_DELAY"]) + float(env["VIGIL_SERVE_DRAIN_TIMEOUT"])
        grace = float(replica["stop_grace_period"].removesuffix("s"))
        assert grace >= needed + 5, (grace, needed)


def test_the_setup_job_migrates_then_makes_a_first_key_into_its_volume():
    setup = load()["services"]["setup"]
    script = setup["command"][0]
    assert script.startswith("vigil db upgrade\n")
    assert "vigil key create --role admin" in script and "> /var/lib/vigil/" in script
    assert setup["volumes"] == ["keys:/var/lib/vigil"] and setup["restart"] == "no"


def test_every_vigil_variable_is_a_setting_and_vigil_yaml_loads():
    variables = set()
    for service in load()["services"].values():
        if "vigil" in str(service.get("image", "")):
            variables |= set(service.get("environment") or {})
    check_names(variables, "deploy/compose/compose.yaml")
    load_config_file(COMPOSE / "vigil.yaml")


def test_local_files_exist_and_monitoring_files_come_from_deploy_monitoring():
    compose = load()
    files = [c["file"] for c in compose["configs"].values()]
    for service in compose["services"].values():
        files += [v.split(":")[0] for v in service.get("volumes", []) if v.startswith(".")]
    local = [f for f in files if f.startswith("./")]
    assert sorted(local) == ["./haproxy.cfg", "./prometheus.yml", "./vigil.yaml"]
    assert all((COMPOSE / f).is_file() for f in local)
    others = sorted(f for f in files if not f.startswith("./"))
    assert others == [
        "../monitoring/alertmanager/alertmanager.yml",
        "../monitoring/grafana/dashboards",
        "../monitoring/grafana/provisioning",
        "../monitoring/prometheus/rules.yml",
    ]


def test_the_monitoring_files_compose_mounts_exist():
    compose = load()
    files = [c["file"] for c in compose["configs"].values()]
    files += [v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])]
    for path in (f for f in files if f.startswith("../monitoring/")):
        assert (COMPOSE / path).exists(), path


def test_haproxy_checks_readyz_of_every_replica():
    config = (COMPOSE / "haproxy.cfg").read_text()
    assert "option httpchk GET /readyz" in config and "http-check expect status 200" in config
    servers = re.findall(r"^\s*server (\S+) (\S+):8000 check$", config, re.M)
    assert [s for s, _ in servers] == REPLICAS and [h for _, h in servers] == REPLICAS
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    checked = subprocess.run([haproxy, "-c", "-f", COMPOSE / "haproxy.cfg"], capture_output=True)
    assert checked.returncode == 0, checked.stderr.decode()
    (lb,) = [s for s in load()["services"].values() if s["image"].startswith("haproxy:")]
    assert lb["configs"][0]["target"] == "/usr/local/etc/haproxy/haproxy.cfg"


def test_prometheus_scrapes_every_replica_and_loads_the_rules_mounted():
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (vigil,) = [job for job in config["scrape_configs"] if job["job_name"] == "vigil"]
    assert vigil["static_configs"][0]["targets"] == [f"{r}:8000" for r in REPLICAS]
    prometheus = load()["services"]["prometheus"]
    (rules,) = [c for c in prometheus["configs"] if c["source"] == "prometheus-rules"]
    assert Path(rules["target"]).match(config["rule_files"][0])
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    checked = subprocess.run(
        [promtool, "check", "config", "--syntax-only", COMPOSE / "prometheus.yml"],
        capture_output=True,
    )
    assert checked.returncode == 0, checked.stderr.decode()


def test_grafana_gets_the_provisioning_and_dashboards_of_deploy_monitoring():
    grafana = load()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("../"))
    assert mounts == {
        "../monitoring/grafana/provisioning": "/etc/grafana/provisioning",
        "../monitoring/grafana/dashboards": "/var/lib/grafana/dashboards/vigil",
    }
    assert grafana["depends_on"] == ["prometheus"]  # the data source's http://prometheus:9090
