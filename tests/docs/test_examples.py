"""Every example in README.md and docs/*.md runs as written, against a real ``vigil serve``.

Each fenced block is extracted (:mod:`tests.docs.blocks`) and run in the world its doc
assumes (:mod:`tests.docs.world`: the ``churn`` and ``fraud`` models, data files, API
keys, a server), one world and one server per doc file, blocks in the doc's order:

* ``bash``: the whole block in ``bash -euo pipefail``; it must exit 0 (``curl`` fails on
  an HTTP error), and :data:`CHECKS` look at what it printed or changed.
* ``console``: each ``$ command``; the lines shown under it must appear in its output, in
  order (``…`` and numbers stand for anything); a shown ``error: ...`` must be the
  command's failure.
* ``python``: the block in a fresh interpreter, after the names it assumes
  (:data:`PY_NAMES`).
* ``yaml``: the file a doc asks you to write, written and used (:data:`CONFIG_FILES`).
* ``json``, ``text`` and ``toml`` show what vigil answers or reads: :data:`MIRRORS` produce
  the real thing and compare.

What is changed before running is declared in :data:`SUBSTITUTIONS`; what does not run
here is in :data:`NOT_RUN`, with the reason. A block in neither fails
:func:`test_every_block_is_run_or_listed`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from tests.docs.blocks import ROOT, Block, all_blocks, output_pattern, steps
from tests.docs.world import Ran, World

pytestmark = pytest.mark.slow

Key = tuple[str, str]
"""``(doc, first line of the block)``: see :attr:`tests.docs.blocks.Block.key`."""

SUBSTITUTIONS: list[tuple[str | None, str, str, str]] = [
    # (doc, or None for every doc; regex in the doc; what runs, with {PORT}, {TOKEN},
    # {KEY_ID}, {REQUEST_ID} and {ROW} filled from the world; why). The values are plain
    # text, so a substitution works in bash, console and Python blocks alike.
    (None, r"localhost:8000", "localhost:{PORT}", "the harness's server is on a free port"),
    (None, r"\bhost:8000", "localhost:{PORT}", "'host' stands for the server's name"),
    (None, r"--port 8000", "--port {PORT}", "the harness's server is on a free port"),
    ("README.md", r"--json '\.\.\.'", "--json '{ROW}'", "the body is elided: the tour's row"),
    (None, r"9f2c(\.\.\.|…)", "{REQUEST_ID}", "a request id the server answered"),
    (None, r"vk_…", "{TOKEN}", "a predict key the harness created"),
    (None, r"\bKEY_ID\b", "{KEY_ID}", "a spare key the harness created (revoking it is safe)"),
    ("README.md", r"--num-cpus 8", "--num-cpus 2", "CI has 2 cores; 8 Ray workers only queue"),
    (
        "docs/serving.md",
        r"localhost:4318",
        "localhost:{OTLP_PORT}",
        "the harness's OTLP receiver (a collector's port) is on a free port",
    ),
    (
        "docs/deploy-monitoring.md",
        r"\bdeploy/monitoring/",
        f"{ROOT}/deploy/monitoring/",
        "the harness works outside the repository, whose files the checks read",
    ),
]
"""``$TOKEN`` (README) is the harness's predict key, in the environment of every example."""

NOT_RUN: dict[Key, str] = {
    (
        "README.md",
        "make demo   # install what the demo runs into .venv, then train, register, serve, monitor, retrain and experiment",
    ): (
        "installs a virtualenv and the demo extra: `make demo` has its own test from a fresh "
        "copy of the tree (tests/test_demo.py), and `make test` runs this suite"
    ),
    (
        "README.md",
        "export VIGIL_HOME=$PWD/vigil-demo",
    ): (
        "looks around what `make demo` left: tests/test_demo.py runs every command the demo "
        "suggests, exactly as printed, after the demo"
    ),
    (
        "README.md",
        "pip install vigil                 # the CLI and Python API: register, load, predict, drift, report, monitor, experiments",
    ): (
        "installs packages from the index; tests/test_readme_install.py checks the extras it "
        "names against pyproject.toml"
    ),
    (
        "README.md",
        "cli",
    ): "the layer diagram: tests/test_architecture.py checks it against pyproject.toml",
    ("docs/serving.md", "import os"): (
        "the gRPC client example needs a gRPC port and a four-feature model: "
        "tests/serving/test_grpc_serve.py::test_the_documented_example_runs runs it as "
        "written against `vigil serve --grpc-port` with keys on"
    ),
    (
        "docs/deploy.md",
        "docker build -t vigil:0.1.0 .                                    # extras: serve, postgres, redis, s3",
    ): (
        "needs a container engine (none here): tests/deploy/test_image.py runs the image's "
        "entrypoint and command as its user, and checks the `docker run` lines mount its volume"
    ),
    ("docs/deploy.md", "apt-get install -y podman runc debootstrap"): (
        "installs packages: tests/deploy/test_image.py::"
        "test_the_image_builds_serves_read_only_and_stops_cleanly runs the same podman steps"
    ),
    ("docs/deploy.md", "cd deploy/compose"): (
        "needs a container engine and images from a registry: tests/deploy/test_compose.py "
        "validates compose.yaml against the Compose schema and each service's configuration"
    ),
    (
        "docs/deploy.md",
        "kubectl create secret generic vigil-database --from-literal=url=postgresql+psycopg://vigil:PASSWORD@postgres:5432/vigil",
    ): (
        "needs a cluster: tests/deploy/test_kubernetes.py renders the overlays it applies, "
        "validates every object, and checks the Secrets it creates are the ones read"
    ),
    (
        "docs/monitoring.md",
        "churn v1 (native_predict): the current window (1h or 1000) is incomplete, 982 rows so far; it closes after 18 more rows or at 2025-06-02 15:01 UTC",
    ): (
        "a message quoted with made-up counts and times: tests/monitor/test_cli.py asserts "
        "its exact wording from a real run"
    ),
}

UNSAFE = re.compile(
    r"^\s*(\$ )?(sudo|pip|python3? -m pip|make|apt-get|apt|kubectl|helm|docker|aws|gcloud)\b",
    re.M,
)
"""Commands that install software or reach beyond this machine: a block holding one is
never run here; it must be in :data:`NOT_RUN` with the reason."""

PY_NAMES: dict[Key, str] = {
    # The names an example assumes the reader holds, defined before it runs.
    ("README.md", "import vigil"): (
        "import pandas as pd\n"
        "from tests.docs.world import churn_model\n"
        "train_df = pd.read_parquet('train.parquet')\n"
        "model = churn_model(train_df)\n"
        "rows = train_df[['tenure', 'plan']].head(3)\n"
    ),
}

CONFIG_FILES: dict[Key, tuple[str, str]] = {
    # A yaml block -> (the file it is written to before the doc's first block, how it is used)
    ("docs/serving.md", "serve:"): (
        "vigil.yaml",
        "vigil serve --config vigil.yaml\n"
        "curl -s localhost:$PORT/v1/models/churn | grep -q '\"version\":1'",  # churn=canary
    ),
    ("docs/monitoring.md", "monitor:"): (
        "monitoring.yaml",
        "export VIGIL_CONFIG=monitoring.yaml\n"
        "vigil monitor run churn\n"
        "python -c 'from vigil.monitor.settings import load_monitor_settings as load; "
        "s = load(); print([r.name for r in s.rules], s.window, int(s.interval_s))' "
        "| grep -qx \"\\['churn_drift', 'missing_age'\\] 1h 300\"",
    ),
    ("docs/fairness.md", "monitor:"): (
        "fairness.yaml",
        "export VIGIL_CONFIG=fairness.yaml\n"
        "python -c 'from vigil.monitor.settings import load_monitor_settings as load; "
        's = load(); f = s.fairness["churn"]; '
        "print([a.column for a in f.attributes], f.min_group_size, [r.name for r in s.rules])' "
        "| grep -qx \"\\['feature.plan', 'passthrough.region', 'feedback.segment'\\] 30 "
        "\\['fairness_disparity', 'tpr_gap'\\]\"",
    ),
    ("docs/policies.md", "model: churn"): (
        "policy.yaml",
        "vigil policy set churn -f policy.yaml | grep -q 'update policy of churn'\n"
        "vigil policy show churn --json | python -c 'import json, sys; "
        'assert json.load(sys.stdin)["triggers"]["schedule"] == "0 3 * * 1"\'',
    ),
    ("docs/policies.md", "policy:"): (
        "policy-vigil.yaml",
        "VIGIL_CONFIG=policy-vigil.yaml python -c 'from vigil.policy.settings import "
        "PolicySettings as S; s = S(); print(s.interval_s, [p.model for p in s.policies])' "
        "| grep -qx \"10.0 \\['churn'\\]\"",
    ),
    ("docs/experiments.md", "name: checkout"): (
        "canary.yaml",
        # The doc's first example created (and concluded) an endpoint named checkout.
        "vigil endpoint delete checkout\n"
        "vigil endpoint create --file canary.yaml | grep -q 'created endpoint checkout'",
    ),
}


def _doc_json(block: Block) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(block.text)
    return parsed


def _validation_error(world: World, block: Block) -> None:
    """serving.md's example problem body is what a quoted integer gets."""
    world.serve()
    r = httpx.post(
        f"http://127.0.0.1:{world.port}/v1/models/churn/predict",
        json={"instances": [{"tenure": "3", "plan": "basic"}]},
        timeout=30,
    )
    assert r.status_code == 422, r.text
    shown, got = _doc_json(block), r.json()
    assert set(got) == set(shown)
    for key in shown.keys() - {"request_id"}:
        assert got[key] == shown[key], key


def _unsupported_media_type(world: World, block: Block) -> None:
    """serving.md's 415 message is what `curl -d` on a state change gets."""
    world.serve()
    ran = world.bash(
        "command curl -s -X POST "
        "localhost:$PORT/v1/admin/models/churn/aliases/production/rollback -d '{}'"
    )
    assert json.loads(ran.output)["message"] == block.text.strip()


def _wildcards(text: str) -> object:
    """A shown JSON body with ``…`` placeholders, parsed: ``{…}`` and strings holding
    ``…`` stand for any value (:func:`_same`)."""
    return json.loads(text.replace("{…}", '"…"'))


def _same(shown: object, got: object, where: str = "") -> None:
    if isinstance(shown, str) and "…" in shown:
        return
    if isinstance(shown, dict):
        assert isinstance(got, dict) and set(got) == set(shown), (where, shown, got)
        for key in shown:
            _same(shown[key], got[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(got, list) and len(got) == len(shown), (where, shown, got)
        for i, (a, b) in enumerate(zip(shown, got, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif "At" not in where:  # times are the example's
        assert got == shown, (where, shown, got)


def _alertmanager_payload(world: World, block: Block) -> None:
    """monitoring.md's webhook body is what the default dataset-drift rule posts for churn
    v3 (the body of a real firing event, built by the code that posts it)."""
    from datetime import UTC, datetime

    from vigil.monitor.alerts import AlertEvent
    from vigil.monitor.notify import alert_payload
    from vigil.monitor.rules import default_rules

    (rule,) = [r for r in default_rules() if r.name == "dataset_drift"]
    labels = {"model": "churn", "version": "3", "route": "native_predict"}
    at = datetime(2025, 5, 1, 10, tzinfo=UTC)
    event = AlertEvent(
        1, "6f1c", rule.name, "firing", rule.severity, rule.describe(labels, 1.0),
        {"alertname": rule.name, "severity": rule.severity, **labels}, at, None, at, "o",
        1.0, rule.threshold, rule.metric,
    )  # fmt: skip
    _same(_wildcards(block.text), json.loads(json.dumps(alert_payload(event))))


def _prometheus_config(world: World, block: Block) -> None:
    """deploy-monitoring.md's prometheus.yml, with the rules mounted where it says
    (``vigil/`` beside it), passes ``promtool check config``."""
    where = world.root / "prometheus"
    where.mkdir()
    (where / "prometheus.yml").write_text(block.text)
    (where / "vigil").symlink_to(ROOT / "deploy" / "monitoring" / "prometheus")
    ran = world.bash(f"promtool check config {where / 'prometheus.yml'}")
    assert ran.returncode == 0 and "SUCCESS: 1 rule files found" in ran.output, ran.output


def _flavor_plugin(world: World, block: Block) -> None:
    """registry.md's entry point, installed as a distribution's metadata says, is a flavor
    vigil finds and loads."""
    import tomllib

    group = tomllib.loads(block.text)["project"]["entry-points"]["vigil.flavors"]
    site = world.root / "site"
    info = site / "vigil_catboost-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vigil-catboost\nVersion: 0.1\n")
    entries = "".join(f"{name} = {target}\n" for name, target in group.items())
    (info / "entry_points.txt").write_text(f"[vigil.flavors]\n{entries}")
    (site / "vigil_catboost.py").write_text(
        "class Flavor:\n    name = 'catboost'\n\nflavor = Flavor()\n"
    )
    ran = world.python(
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "from vigil.bundle.flavors import get_flavor, supported_flavors\n"
        "print(supported_flavors(), get_flavor('catboost').name)\n"
    )
    assert ran.returncode == 0 and "'catboost'] catboost" in ran.output, ran.output


MIRRORS: dict[Key, Callable[[World, Block], None]] = {
    (
        "docs/monitoring.md",
        '{"version": "4", "receiver": "vigil", "status": "firing", "groupKey": "6f1c…",',
    ): _alertmanager_payload,
    ("docs/deploy-monitoring.md", "global:"): _prometheus_config,
    ("docs/registry.md", '[project.entry-points."vigil.flavors"]'): _flavor_plugin,
    ("docs/serving.md", '{"error": "validation_error",'): _validation_error,
    (
        "docs/serving.md",
        "send Content-Type: application/json (state-changing operations need it, even "
        "without a body, so that no web page's form can call them); got "
        "'application/x-www-form-urlencoded'; with curl, use --json '{...}' or add "
        "-H 'Content-Type: application/json' (-d alone sends "
        "application/x-www-form-urlencoded)",
    ): _unsupported_media_type,
}


def _production(world: World, model: str = "churn") -> int:
    ran = world.bash(f"vigil model show models:/{model}@production --json")
    assert ran.returncode == 0, ran.output
    version: int = json.loads(ran.output)["version"]
    return version


def _tour(ran: Ran, world: World) -> None:
    # Registered as version 5 with production on it, promoted to 3, rolled back to 5.
    assert _production(world) == 5
    assert "churn" in ran.output


def _native_predictions(ran: Ran, world: World) -> None:
    first, _ = json.JSONDecoder().raw_decode(ran.output)  # curl prints no newline
    # The comment under it in the doc: {"request_id":..,"model":"churn","version":3,...}
    assert first["model"] == "churn" and first["version"] == 3
    assert first["classes"] == [0, 1] and len(first["probabilities"][0]) == 2


def _registered_from_python(ran: Ran, world: World) -> None:
    # vigil.register(..., alias="production") made version 6 (after the tour's 5).
    assert _production(world) == 6


def _keys(ran: Ran, world: World) -> None:
    # "prints the token once: vk_<id>_<secret>"; the spare key is revoked.
    assert re.search(r"\bvk_\w+_\w+", ran.output), ran.output
    listed = world.bash("vigil key list --json")  # revoked keys are not listed
    assert world.env["KEY_ID"] not in listed.output and "frontend" in listed.output


def _feedback(ran: Ran, world: World) -> None:
    # "Both answer how many were accepted, duplicates, unknown and late."
    assert ran.output.count("accepted") >= 2, ran.output


TRACING: Key = (
    "docs/serving.md",
    "VIGIL_SERVE_TRACING=true OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 vigil serve",
)
_EXPORTS: list[bytes] = []
"""What the OTLP receiver of serving.md's tracing example received (protobuf bodies)."""


def _otlp_receiver(world: World) -> None:
    """A collector's OTLP/HTTP endpoint for serving.md's tracing example: it keeps what
    it receives (for :func:`_traced`) and answers 200; it runs until the session ends."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            _EXPORTS.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    world.env["OTLP_PORT"] = str(receiver.server_port)
    world.env["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # exported within 0.2 s, not 5 s


def _traced(ran: Ran, world: World) -> None:
    # The comment under it: the answer names the caller's trace; the spans reach the
    # collector (exported in the background, every few seconds).
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert re.search(rf"traceresponse: 00-{trace_id}-[0-9a-f]{{16}}-01", ran.output), ran.output

    def names() -> set[str]:
        found = set()
        for body in list(_EXPORTS):
            for resource in ExportTraceServiceRequest.FromString(body).resource_spans:
                for scope in resource.scope_spans:
                    found |= {s.name for s in scope.spans if s.trace_id.hex() == trace_id}
        return found

    deadline = time.monotonic() + 30
    while not {"POST /v1/models/{name}/predict", "predict"} <= names():
        assert time.monotonic() < deadline, f"spans received: {sorted(names())}"
        time.sleep(0.2)


def _capture_key(ran: Ran, world: World) -> None:
    # A key file of one AES-256 key with id k1, owner-only, and the key never printed.
    from vigil.capture.crypt import KeyRing

    path = world.work / "capture-keys.txt"
    assert KeyRing.from_file(path).ids == ["k1"] and path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().split(":", 1)[1].strip() not in ran.output


def _erased_by_feedback_field(ran: Ran, world: World) -> None:
    # The audit's content: the condition's field, as the feedback store names it.
    done = json.loads(ran.output)
    assert done["fields"] == ["field.customer_id"] and done["complete"] is True, done


CHECKS: dict[Key, Callable[[Ran, World], None]] = {
    TRACING: _traced,
    ("docs/privacy.md", "vigil capture erase --where field.customer_id=c-7 --json"): (
        _erased_by_feedback_field
    ),
    ("docs/privacy.md", "vigil capture keygen k1 --file capture-keys.txt"): _capture_key,
    ("README.md", "import vigil"): _registered_from_python,
    (
        "README.md",
        "vigil key create --role predict --name frontend   # prints the token once: "
        "vk_<id>_<secret>",
    ): _keys,
    (
        "README.md",
        """curl -s localhost:8000/v1/feedback --json '{"request_id": "9f2c...", "label": 1}'   """
        """# or {"feedback": [...]}""",
    ): _feedback,
    ("docs/feedback.md", "curl -s localhost:8000/v1/feedback -H 'Authorization: Bearer vk_…' \\"): (
        _feedback
    ),
    (
        "README.md",
        "vigil register churn model.skops --reference train.parquet --target churned \\",
    ): _tour,
    ("docs/serving.md", "curl -s localhost:8000/v1/models/churn/predict \\"): _native_predictions,
}


def _corrupt_customers(world: World) -> None:
    """batch.md shows the error a text in the integer column ``tenure`` gets."""
    frame = pd.read_csv(world.work / "customers.csv")
    frame["tenure"] = frame["tenure"].astype(object)
    frame.loc[1234, "tenure"] = "abc"
    frame.to_csv(world.work / "customers.csv", index=False)


def _serve_on_loopback(world: World) -> None:
    """The API-keys example serves off loopback with keys; the tour's next examples call
    the loopback server without one, as its earlier ones do."""
    ran = world.bash("vigil serve --port $PORT")
    assert ran.returncode == 0, ran.output


def _serve_staging_too(world: World) -> None:
    """serving.md's native calls need churn's staging version served (the doc says so)."""
    ran = world.bash(
        "vigil serve --port 8000 --model models:/churn@production --model models:/churn@staging".replace(
            "8000", "$PORT"
        )
    )
    assert ran.returncode == 0, ran.output


def _policy_file(world: World) -> None:
    # The tour names a policy file; docs/policies.md shows (and runs) a whole one.
    (world.work / "policy.yaml").write_text(
        "triggers: {alerts: [dataset_drift]}\naction: {kind: command, argv: [python, retrain.py]}\n"
    )


BEFORE: dict[Key, Callable[[World], None]] = {
    TRACING: _otlp_receiver,
    (
        "README.md",
        "vigil policy set churn -f policy.yaml    # triggers, retrain action, gate, rollout",
    ): _policy_file,
    ("docs/serving.md", "curl -s localhost:8000/v1/models/churn/predict \\"): _serve_staging_too,
    ("docs/batch.md", "$ vigil predict churn customers.csv -o scores.parquet"): (
        _corrupt_customers
    ),
}
AFTER: dict[Key, Callable[[World], None]] = {
    (
        "README.md",
        "vigil key create --role predict --name frontend   # prints the token once: "
        "vk_<id>_<secret>",
    ): _serve_on_loopback,
}


def substitute(block: Block, text: str, world: World) -> str:
    values = {k: world.env[k] for k in ("PORT", "TOKEN", "KEY_ID", "REQUEST_ID", "ROW")}
    values["OTLP_PORT"] = world.env.get("OTLP_PORT", "4318")
    for doc, pattern, replacement, _why in SUBSTITUTIONS:
        if doc in (None, block.doc):
            text = re.sub(pattern, lambda _m, r=replacement: r.format_map(values), text)
    return text


BLOCKS = all_blocks()
RUN = [b for b in BLOCKS if b.key not in NOT_RUN]


@pytest.fixture(scope="session")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], World]]:
    """One world per doc, built when its first block runs; the previous doc's server is
    stopped then, so one server runs at a time."""
    built: dict[str, World] = {}

    def world(doc: str) -> World:
        if doc not in built:
            for other in built.values():
                other.stop()
            made = World(tmp_path_factory.mktemp(Path(doc).stem)).build()
            for block in BLOCKS:
                if block.doc == doc and block.key in CONFIG_FILES:
                    (made.work / CONFIG_FILES[block.key][0]).write_text(block.text)
            built[doc] = made
        return built[doc]

    yield world
    for made in built.values():
        made.stop()


def _run_console(world: World, block: Block) -> None:
    for step in steps(block.text):
        ran = world.bash(substitute(block, step.command, world))
        failing = bool(step.output) and step.output[0].startswith("error:")
        assert (ran.returncode != 0) == failing, f"$ {step.command}\n{ran.output}"
        at = 0
        for shown in step.output:
            found = output_pattern(shown).search(ran.output, at)
            assert found, f"$ {step.command}\nshown: {shown}\ngot:\n{ran.output}"
            at = found.end()


def _run(world: World, block: Block) -> Ran | None:
    if block.key in MIRRORS:
        MIRRORS[block.key](world, block)
        return None
    if block.key in CONFIG_FILES:
        return world.bash(CONFIG_FILES[block.key][1])
    if block.lang == "bash":
        return world.bash(substitute(block, block.text, world))
    if block.lang == "python":
        code = substitute(block, block.text, world)
        return world.python(PY_NAMES.get(block.key, "") + code)
    if block.lang == "console":
        _run_console(world, block)
        return None
    raise AssertionError(
        f"{block.id}: no way to run a {block.lang or 'plain'} block: add it to MIRRORS, "
        "CONFIG_FILES or NOT_RUN (with the reason)"
    )


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_example(block: Block, worlds: Callable[[str], World]) -> None:
    unsafe = UNSAFE.search(block.text)
    assert unsafe is None, (
        f"{block.id} runs {unsafe.group(0).strip()!r} (installs software or reaches beyond "
        "this machine): list it in NOT_RUN with the reason, or mirror it"
    )
    world = worlds(block.doc)
    text = substitute(block, block.text, world)
    calls, served = text.find("curl "), text.find("vigil serve")
    if calls >= 0 and not 0 <= served < calls:
        world.serve()  # the server the example calls, unless it starts one itself first
    if world.env["REQUEST_ID"] in text or "labels.csv" in text:
        world.predict()  # the predictions whose request ids the example labels
    if block.key in BEFORE:
        BEFORE[block.key](world)
    try:
        ran = _run(world, block)
        if ran is not None:
            assert ran.returncode == 0, (
                f"{block.id} failed:\n{ran.output}\n{world.server_log()[-3000:]}"
            )
            if block.key in CHECKS:
                CHECKS[block.key](ran, world)
    finally:  # so that one broken example does not break the next ones too
        if block.key in AFTER:
            AFTER[block.key](world)


def test_every_block_is_run_or_listed() -> None:
    keys = {b.key for b in BLOCKS}
    for table in (NOT_RUN, PY_NAMES, CONFIG_FILES, MIRRORS, CHECKS, BEFORE, AFTER):
        stale = set(table) - keys
        assert not stale, f"entries naming no block (edit the table): {sorted(stale)}"
    runnable = {"bash", "console", "python"}
    for block in RUN:
        assert block.lang in runnable or block.key in MIRRORS or block.key in CONFIG_FILES, (
            f"{block.id} is neither run nor listed in NOT_RUN"
        )
    # docs/deploy.md's four need a container engine, a cluster or a system install.
    assert len(NOT_RUN) <= 10, "keep the list of examples that do not run short"
    for doc, pattern, _replacement, why in SUBSTITUTIONS:
        used = any(re.search(pattern, b.text) for b in RUN if doc in (None, b.doc))
        assert used, f"the substitution {pattern!r} ({why}) changes no example: remove it"
