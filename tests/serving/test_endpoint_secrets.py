"""An endpoint's webhooks and salt are secrets: shown redacted to every role, kept across a
read-modify-write, never in the audit trail; and a webhook may not point inside the
network. Over a real socket, authentication on, with read and admin keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import bearer, make_tokens, register_churn
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.cli import app as cli
from vigil.errors import UnsafeWebhookError
from vigil.experiments.store import EndpointStore
from vigil.experiments.tables import EndpointRow
from vigil.monitor.webhooks import webhook_label
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider

TOKEN = "xoxb-S3CRET-T0KEN"
SLACK = f"https://hooks.slack.com/services/T0/B0/{TOKEN}"
OTHER = f"https://alerts.example.com/hook?key={TOKEN}"
SALT = "pepper-S3CRET"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vigil, ServerThread]]:
    vigil = register_churn(tmp_path_factory.mktemp("endpoint-secrets-home"))
    provider = RegistryProvider(vigil, poll_interval=0.2, settings=ServingSettings(auth="on"))
    with ServerThread(vigil.serving_app(provider)) as server:
        yield vigil, server


@pytest.fixture(scope="module")
def tokens(served: tuple[Vigil, ServerThread]) -> dict[str, str]:
    return make_tokens(served[0])


@pytest.fixture
def http(served: tuple[Vigil, ServerThread]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1].url, timeout=30) as client:
        yield client


def config(**extra: Any) -> dict[str, Any]:
    return {
        "variants": [
            {"name": "a", "model": "models:/churn@production"},
            {"name": "b", "model": "models:/churn/2"},
        ],
        "policy": {"kind": "split", "weights": {"a": 1, "b": 1}},
        **extra,
    }


def stored_row(vigil: Vigil, name: str) -> dict[str, Any]:
    with vigil.database.session() as session:
        row = session.scalars(select(EndpointRow).where(EndpointRow.name == name)).one()
        return dict(row.config)


def test_every_role_sees_webhooks_redacted_and_no_salt(
    http: httpx.Client, tokens: dict[str, str], served: tuple[Vigil, ServerThread]
) -> None:
    admin = bearer(tokens["admin"])
    body = config(alert_webhooks=[SLACK, OTHER], salt=SALT)
    created = http.put("/v1/admin/endpoints/secret", json=body, headers=admin)
    assert created.status_code == 201, created.text
    shown = [webhook_label(SLACK), webhook_label(OTHER)]
    assert shown[0].startswith("https://hooks.slack.com/…#")
    for role in ("read", "predict", "admin"):
        for path in ("/v1/admin/endpoints/secret", "/v1/admin/endpoints"):
            r = http.get(path, headers=bearer(tokens[role]))
            assert r.status_code == 200
            assert TOKEN not in r.text and SALT not in r.text, (role, path)
        one = http.get("/v1/admin/endpoints/secret", headers=bearer(tokens[role])).json()
        assert one["alert_webhooks"] == shown and "salt" not in one
    assert TOKEN not in created.text and SALT not in created.text
    # Stored as given: the controller needs the whole URL to call it.
    row = stored_row(served[0], "secret")
    assert (row["alert_webhooks"], row["salt"]) == ([SLACK, OTHER], SALT)
    # The audit trail, which admins read, has them redacted too.
    trail = http.get("/v1/admin/audit", headers=admin).text
    assert TOKEN not in trail and SALT not in trail and shown[0] in trail


def test_what_was_shown_can_be_sent_back(
    http: httpx.Client, tokens: dict[str, str], served: tuple[Vigil, ServerThread]
) -> None:
    admin = bearer(tokens["admin"])
    http.put("/v1/admin/endpoints/roundtrip", json=config(alert_webhooks=[SLACK]), headers=admin)
    salt = stored_row(served[0], "roundtrip")["salt"]
    document = http.get("/v1/admin/endpoints/roundtrip", headers=admin).json()
    changed = {
        k: v
        for k, v in document.items()
        if k not in ("revision", "created_at", "created_by", "updated_at", "updated_by", "live")
    }
    changed["policy"]["weights"] = {"a": 3, "b": 1}
    r = http.put("/v1/admin/endpoints/roundtrip", json=changed, headers=admin)
    assert r.status_code == 200, r.text
    row = stored_row(served[0], "roundtrip")
    assert (row["alert_webhooks"], row["salt"]) == ([SLACK], salt)
    assert row["policy"]["weights"] == {"a": 3.0, "b": 1.0}
    # A label nothing stored matches cannot be called: the full URL is needed.
    changed["alert_webhooks"] = [webhook_label(OTHER)]
    r = http.put("/v1/admin/endpoints/roundtrip", json=changed, headers=admin)
    assert r.status_code == 422 and "give its full URL" in r.json()["message"]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "private"),
        ("http://127.0.0.1:8000/v1/admin/models", "loopback"),
        ("http://localhost:6379/", "loopback"),
        ("http://10.0.0.7/hook", "private"),
    ],
)
def test_a_webhook_inside_the_network_is_refused(
    http: httpx.Client,
    tokens: dict[str, str],
    served: tuple[Vigil, ServerThread],
    url: str,
    kind: str,
) -> None:
    r = http.put(
        "/v1/admin/endpoints/ssrf",
        json=config(alert_webhooks=[url]),
        headers=bearer(tokens["admin"]),
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["error"] == "unsafe_webhook"
    assert f"({kind} address)" in problem["message"]
    assert "VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS" in problem["message"]
    assert "ssrf" not in EndpointStore(served[0]).list_revisions()


def test_a_private_webhook_is_accepted_when_allowed(
    served: tuple[Vigil, ServerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vigil.experiments.config import parse_endpoint

    # The monitoring settings are read once, on first use, by a composition root.
    monkeypatch.setenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS", "true")
    allowed = Vigil(served[0].settings)
    assert allowed.monitor_settings.allow_private_webhooks
    monkeypatch.delenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS")
    strict = Vigil(served[0].settings)
    hook = "http://127.0.0.1:9/hook"
    store = EndpointStore(allowed)
    store.create(parse_endpoint({"name": "local", **config(alert_webhooks=[hook])}), actor="t")
    assert stored_row(served[0], "local")["alert_webhooks"] == [hook]
    # Allowed no more: an unrelated change still goes through (the webhook is refused when
    # called), a change that adds such a webhook does not.
    store = EndpointStore(strict)
    reweighted = config(alert_webhooks=[hook])
    reweighted["policy"]["weights"] = {"a": 2, "b": 1}
    store.update("local", parse_endpoint({"name": "local", **reweighted}), actor="t")
    assert stored_row(served[0], "local")["policy"]["weights"] == {"a": 2.0, "b": 1.0}
    added = config(alert_webhooks=[hook, "http://127.0.0.1:10/other"])
    with pytest.raises(UnsafeWebhookError, match="loopback"):
        store.update("local", parse_endpoint({"name": "local", **added}), actor="t")


def test_the_cli_shows_them_redacted_and_refuses_the_same_targets(
    served: tuple[Vigil, ServerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    vigil = served[0]
    monkeypatch.setenv("VIGIL_HOME", str(vigil.settings.home))
    reset_default()
    try:
        runner = CliRunner()
        create = ["endpoint", "create", "clied", "--variant", "a=models:/churn@production"]
        create += ["--variant", "b=models:/churn/2", "--policy", "split", "--weight", "a=1"]
        create += ["--weight", "b=1", "--salt", SALT, "--alert-webhook", SLACK, "--json"]
        made = runner.invoke(cli, create)
        assert made.exit_code == 0, made.output
        assert TOKEN not in made.stdout and SALT not in made.stdout
        assert json.loads(made.stdout)["alert_webhooks"] == [webhook_label(SLACK)]
        for args in (["endpoint", "show", "clied", "--json"], ["endpoint", "list", "--json"]):
            shown = runner.invoke(cli, args)
            assert shown.exit_code == 0 and TOKEN not in shown.stdout and SALT not in shown.stdout
        # An update through the CLI keeps what it cannot show.
        updated = runner.invoke(cli, ["endpoint", "update", "clied", "--weight", "a=2"])
        assert updated.exit_code == 0, updated.output
        assert stored_row(vigil, "clied")["alert_webhooks"] == [SLACK]
        assert stored_row(vigil, "clied")["salt"] == SALT
        audit = runner.invoke(cli, ["audit", "--json"])
        assert TOKEN not in audit.stdout and SALT not in audit.stdout
        refused = runner.invoke(
            cli, ["endpoint", "update", "clied", "--alert-webhook", "http://169.254.169.254/"]
        )
        assert refused.exit_code != 0
        assert "link-local address" in str(refused.exception)
    finally:
        reset_default()
