"""The Kubernetes manifests (``deploy/kubernetes/``), rendered and validated offline.

Each overlay is rendered by ``kubectl kustomize`` and every object validated against the
Kubernetes OpenAPI schema (the ``kubernetes-validate`` package, strict: an unknown field
fails) or, for the Prometheus Operator's ServiceMonitor and PrometheusRule, against their
CRDs' ``openAPIV3Schema`` (vendored in ``schemas/``, see ``schemas/SOURCES.md``). Then the
objects must agree with each other and with the image: selectors select the pods, the
grace period covers the drain, Secrets are referenced and never written, every ``VIGIL_*``
variable is a real setting, and the PrometheusRule holds the rules of
``deploy/monitoring/prometheus/rules.yml``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from tests.deploy.dockerfile import arg_default, command, entrypoint, image_env
from tests.deploy.vigil_settings import check_names, load_config_file

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
SCHEMAS = Path(__file__).parent / "schemas"
OVERLAYS = ["embedded", "scaled", "scaled-in-flight", "scaled-grpc"]
GRPC_PORT = 8001
"""The port of the v2 gRPC API where an overlay serves it (components/grpc)."""
KUBERNETES_VERSION = "1.32"
"""The Kubernetes API validated against: kubectl's version here, a release every managed
Kubernetes still offers."""

SECRETS = {
    ("vigil-database", "url"),
    ("vigil-redis", "url"),
    ("vigil-store", "access-key-id"),
    ("vigil-store", "secret-access-key"),
    ("vigil-keys", "capture-hash-key"),
}
"""The Secrets (name, key) the manifests read, as deploy/kubernetes/overlays/scaled's
kustomization.yaml and docs/deploy.md list them."""


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(KUBE / "overlays" / overlay)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def objects(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in render(overlay) if doc["kind"] == kind]


def one(overlay: str, kind: str) -> dict[str, Any]:
    (found,) = objects(overlay, kind)
    return found


def pod_specs(overlay: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for obj in objects(overlay, kind):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


@cache
def crd_validator(kind: str) -> jsonschema.Draft4Validator:
    """A validator of the CRD's ``openAPIV3Schema`` (JSON Schema draft 4 with OpenAPI's
    additions, which validators ignore). The schema itself is not checked against the
    draft's meta-schema: one pattern, ``^(?i)(abort|warn)?$``, is Go's regular-expression
    syntax, which Python's ``re`` refuses; no manifest here sets that field."""
    plural = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}[kind]
    crd = yaml.safe_load((SCHEMAS / f"monitoring.coreos.com_{plural}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft4Validator(version["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_its_schema(overlay: str):
    kinds = []
    for obj in render(overlay):
        kinds.append(obj["kind"])
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            crd_validator(obj["kind"]).validate(obj)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    expected = {
        "ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget",
        "NetworkPolicy", "ServiceMonitor", "PrometheusRule",
    }  # fmt: skip
    if overlay == "embedded":
        expected |= {"PersistentVolumeClaim"}
    else:
        expected |= {"HorizontalPodAutoscaler", "Job"}
    assert sorted(kinds) == sorted(expected)


def test_the_validators_catch_a_mistake():
    """The checks above are not vacuous: a misspelt field fails each validator."""
    deployment = json.loads(json.dumps(one("scaled", "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    monitor = json.loads(json.dumps(one("scaled", "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["interval"] = "fifteen seconds"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("ServiceMonitor").validate(monitor)


def _server(overlay: str) -> dict[str, Any]:
    (container,) = one(overlay, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_the_image_unprivileged_on_a_read_only_root(overlay: str):
    uid = int(arg_default("UID"))
    writable = {image_env()["VIGIL_HOME"], "/tmp"}
    for name, spec in pod_specs(overlay):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == uid, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            mounted = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert mounted == writable, name
            assert "memory" in container["resources"]["limits"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_server_keeps_the_images_entrypoint_and_probes_its_health(overlay: str):
    server = _server(overlay)
    assert "command" not in server  # tini -- vigil serve --host 0.0.0.0: keys forced on
    port = int(command()[1])
    assert server["args"][:2] == ["--port", str(port)] and "--host" not in server["args"]
    assert server["ports"][0] == {"name": "http", "containerPort": port}
    assert entrypoint()[-2:] == ["--host", "0.0.0.0"]
    probes = {p: server[p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes == {
        "startupProbe": {"path": "/readyz", "port": "http"},
        "readinessProbe": {"path": "/readyz", "port": "http"},
        "livenessProbe": {"path": "/livez", "port": "http"},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_covers_pre_stop_and_the_drain(overlay: str):
    deployment = one(overlay, "Deployment")
    server = _server(overlay)
    env = {e["name"]: e.get("value") for e in server["env"]}
    pre_stop = server["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = (
        float(pre_stop[1])
        + float(env["VIGIL_SERVE_SHUTDOWN_DELAY"])
        + float(env["VIGIL_SERVE_DRAIN_TIMEOUT"])
    )
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert needed + 5 <= grace <= needed + 15, (grace, needed)
    comment = (KUBE / "base" / "deployment.yaml").read_text()
    assert f"terminationGracePeriodSeconds: {grace}" in comment


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_written(overlay: str):
    assert objects(overlay, "Secret") == []
    (config,) = objects(overlay, "ConfigMap")
    assert not re.search(r"://[^/\s]*@", config["data"]["vigil.yaml"])  # no user:password@
    refs = set()
    for _, spec in pod_specs(overlay):
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
                elif re.search("URL|PASSWORD|SECRET|KEY|TOKEN", env["name"]):
                    raise AssertionError(f"{env['name']} is written in the manifest")
    assert refs <= SECRETS
    if overlay == "embedded":  # SQLite and local files: only the optional masking key
        assert refs == {("vigil-keys", "capture-hash-key")}
    else:
        assert refs == SECRETS
    listed = (KUBE / "overlays" / "scaled" / "kustomization.yaml").read_text()
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for name, key in SECRETS:
        assert re.search(rf"{name}\s+.*{key}", listed), (name, key)
        assert name in docs and key in docs, (name, key)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_vigil_variable_is_a_setting_and_vigil_yaml_loads(overlay: str, tmp_path: Path):
    variables = set()
    for _, spec in pod_specs(overlay):
        for container in spec["containers"]:
            variables |= {e["name"] for e in container.get("env", [])}
    check_names(variables, f"overlay {overlay}")
    (config,) = objects(overlay, "ConfigMap")
    path = tmp_path / "vigil.yaml"
    # The settings a comment offers (Alertmanager's address) are valid once uncommented.
    offered = re.sub(
        r"^(\s*)# (alertmanagers: .*)$", r"\1\2", config["data"]["vigil.yaml"], flags=re.M
    )
    assert offered != config["data"]["vigil.yaml"]
    path.write_text(offered)
    load_config_file(path)
    mount = next(m for m in _server(overlay)["volumeMounts"] if m["name"] == "config")
    assert {"name": "VIGIL_CONFIG", "value": f"{mount['mountPath']}/vigil.yaml"} in _server(
        overlay
    )["env"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_select_the_server_pods(overlay: str):
    labels = one(overlay, "Deployment")["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    service = one(overlay, "Service")
    assert selects(service["spec"]["selector"])
    assert selects(one(overlay, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    assert selects(one(overlay, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"])
    monitor = one(overlay, "ServiceMonitor")
    assert all(
        service["metadata"]["labels"].get(k) == v
        for k, v in monitor["spec"]["selector"]["matchLabels"].items()
    )
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    policy_ports = {p["port"] for rule in one(overlay, "NetworkPolicy")["spec"]["ingress"]
                    for p in rule["ports"]}  # fmt: skip
    assert policy_ports == {int(command()[1])} | ({GRPC_PORT} if _grpc(overlay) else set())


def _grpc(overlay: str) -> bool:
    return "--grpc-port" in _server(overlay)["args"]


def test_the_grpc_overlay_serves_the_v2_grpc_api_beside_http():
    from typer.testing import CliRunner

    from vigil.cli import app

    assert [_grpc(o) for o in OVERLAYS] == [False, False, False, True]
    args = _server("scaled-grpc")["args"]
    assert args[args.index("--grpc-port") + 1] == str(GRPC_PORT)
    assert "--grpc-port" in CliRunner().invoke(app, ["serve", "--help"]).output
    container = {p["name"]: p["containerPort"] for p in _server("scaled-grpc")["ports"]}
    assert container == {"http": int(command()[1]), "grpc": GRPC_PORT}
    service = {p["name"]: p for p in one("scaled-grpc", "Service")["spec"]["ports"]}
    assert service["grpc"] == {
        "name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"
    }  # fmt: skip
    # The image it needs: the grpc extra, which the component's comment says how to build.
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^grpc = \[", pyproject, re.M)
    component = (KUBE / "components" / "grpc" / "kustomization.yaml").read_text()
    assert "--build-arg EXTRAS=serve,postgres,redis,s3,grpc" in component
    assert arg_default("EXTRAS") == "serve,postgres,redis,s3"


def test_the_embedded_overlay_is_one_pod_on_a_volume():
    deployment = one("embedded", "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = one("embedded", "PersistentVolumeClaim")["metadata"]["name"]
    assert volumes["home"] == {"name": "home", "persistentVolumeClaim": {"claimName": claim}}


@pytest.mark.parametrize("overlay", ["scaled", "scaled-in-flight"])
def test_the_scaled_overlay_autoscales_and_migrates_with_a_job(overlay: str):
    deployment = one(overlay, "Deployment")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    hpa = one(overlay, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 2
    job = one(overlay, "Job")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["vigil", "db", "upgrade"]
    assert migrate["image"] == _server(overlay)["image"] == "vigil:0.1.0"
    database = next(e for e in _server(overlay)["env"] if e["name"] == "VIGIL_DATABASE_URL")
    assert database in migrate["env"]


def test_the_in_flight_variant_scales_on_a_metric_vigil_exports():
    from vigil.serving.metrics import IN_FLIGHT

    (metric,) = one("scaled-in-flight", "HorizontalPodAutoscaler")["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name == IN_FLIGHT.describe()[0].name == "vigil_in_flight_requests"
    (cpu,) = one("scaled", "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert cpu["resource"]["name"] == "cpu"
    adapter = yaml.safe_load(
        (KUBE / "components" / "hpa-in-flight" / "prometheus-adapter-rules.yaml").read_text()
    )
    (rule,) = adapter["rules"]["custom"]
    assert rule["name"]["as"] == name and rule["seriesQuery"].startswith(f"{name}{{")


# -- the PrometheusRule: deploy/monitoring/prometheus/rules.yml, as the operator wants it ---


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prometheusrule", KUBE / "prometheusrule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generator_copies_the_groups_of_a_rule_file():
    rules = {
        "groups": [
            {
                "name": "vigil-serving",
                "rules": [
                    {"record": "vigil:requests:rate5m", "expr": "sum(rate(vigil_requests[5m]))"},
                    {
                        "alert": "VigilReplicaDown",
                        "expr": 'up{job="vigil"} == 0',
                        "for": "2m",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": "a vigil replica is down"},
                    },
                ],
            }
        ]
    }
    manifest = yaml.safe_load(_generator().render(yaml.safe_dump(rules)))
    assert manifest["spec"]["groups"] == rules["groups"]
    crd_validator("PrometheusRule").validate(manifest)


RULES = ROOT / "deploy" / "monitoring" / "prometheus" / "rules.yml"


def test_the_prometheus_rule_holds_exactly_the_rules_of_deploy_monitoring():
    rule = one("scaled", "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert _generator().main(["--check"]) == 0


def test_the_documented_commands_name_real_overlays():
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"-k (deploy/kubernetes/[\w/.-]+)", text))
    assert paths, "docs/deploy.md shows how to apply an overlay"
    assert all((ROOT / p / "kustomization.yaml").is_file() for p in paths), paths
    runs = re.findall(r"kubectl create secret generic (\S+)((?: --from-literal=\S+)+)", text)
    documented = {(name, lit.split("=")[1]) for name, lits in runs for lit in shlex.split(lits)}
    assert documented == SECRETS
