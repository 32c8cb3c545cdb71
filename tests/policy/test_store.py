"""Policies: validation, the store (audited, revisions), the runs' one-in-flight rule and
compare-and-set, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vigil.app import Vigil
from vigil.errors import ConflictError, InvalidParameterError, ModelNotFoundError, NotFoundError
from vigil.policy.config import parse_policy
from vigil.policy.runs import RunStore
from vigil.policy.store import PolicyStore
from vigil.settings import load_settings

POLICY: dict[str, Any] = {
    "model": "churn",
    "triggers": {"alerts": ["dataset_drift"], "schedule": "0 3 * * 1"},
    "action": {"kind": "command", "argv": ["python", "retrain.py"], "timeout_s": 60},
}


@pytest.fixture
def app(tmp_path: Path, make_bundle: Callable[..., Path]) -> Vigil:
    v = Vigil(load_settings(home=tmp_path / "home", actor="ada"))
    v.registry.register_version("churn", make_bundle("c1"), alias="production")
    return v


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "../x"}, "invalid model name"),
        ({"cooldown": "soon"}, "cooldown: invalid cooldown 'soon'"),
        ({"triggers": {"schedule": "0 3 * *"}}, "five fields"),
        ({"triggers": {"schedule": "0 25 * * *"}}, "not a valid cron expression"),
        ({"action": {"kind": "shell", "argv": ["x"]}}, "action: Input tag 'shell'"),
        ({"action": {"kind": "webhook", "url": "ftp://x"}}, "http:// or https://"),
        ({"gate": {"replay": False}}, "the gate needs data"),
        ({"rollout": {"steps": [{"percent": 0}]}}, "rollout.steps.0.percent"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterError, match="invalid update policy") as caught:
        parse_policy({**POLICY, **change})
    assert message in caught.value.message


def test_a_webhook_url_is_a_secret() -> None:
    cfg = parse_policy(
        {
            "model": "churn",
            "action": {
                "kind": "webhook",
                "url": "https://airflow.example/api/v1/dags/retrain/dagRuns?token=abc",
                "format": "airflow",
                "headers": {"Authorization": "Basic c2VjcmV0"},
            },
        }
    )
    shown = json.dumps(cfg.public())
    assert "abc" not in shown and "c2VjcmV0" not in shown and "dagRuns" not in shown
    assert "token=abc" in json.dumps(cfg.stored())


def test_set_show_list_delete_are_audited(app: Vigil) -> None:
    store = PolicyStore(app)
    stored, created = store.set(parse_policy(POLICY), actor="ada")
    assert created and stored.revision == 1
    assert stored.config.endpoint == "churn-live"
    again, created = store.set(parse_policy(POLICY), actor="ada")
    assert not created and again.revision == 1  # unchanged: no new revision
    changed, _ = store.set(parse_policy({**POLICY, "cooldown": "2h"}), actor="bob")
    assert changed.revision == 2 and changed.updated_by == "bob"
    assert [s.config.model for s in store.list()] == ["churn"]
    store.delete("churn", actor="ada")
    with pytest.raises(NotFoundError, match="model 'churn' has no policy"):
        store.get("churn")
    actions = [e.action for e in app.registry.audit("churn") if e.action.startswith("policy.")]
    assert actions == ["policy.delete", "policy.set", "policy.set"]


def test_a_policy_needs_a_registered_model(app: Vigil) -> None:
    with pytest.raises(ModelNotFoundError):
        PolicyStore(app).set(parse_policy({**POLICY, "model": "fraud"}), actor="ada")


def test_one_run_in_flight_per_model_and_transitions_are_compare_and_set(app: Vigil) -> None:
    runs = RunStore(app.database)
    run = runs.start("churn", {"kind": "manual"}, actor="ada")
    assert run.state == "triggered" and runs.active("churn") == run
    with pytest.raises(ConflictError, match="in flight"):
        runs.start("churn", {"kind": "alert"}, actor="ada")
    moved = runs.transition(run, "exporting", actor="engine", data={"step": 1})
    assert moved is not None and moved.revision == run.revision + 1
    # A second process that read the same revision loses.
    assert runs.transition(run, "failed", actor="other", error="late") is None
    with pytest.raises(ConflictError, match="waits for a candidate"):
        runs.attach_candidate("churn", 2, actor="job")
    training = runs.transition(moved, "training", actor="engine")
    assert training is not None
    gating = runs.attach_candidate("churn", 2, actor="job", run_id=run.run_id)
    assert gating.state == "gating" and gating.candidate_version == 2
    done = runs.transition(gating, "rejected", actor="engine", error="worse")
    assert done is not None and done.finished_at is not None and not done.active
    # The model is free again.
    assert runs.active("churn") is None
    assert runs.start("churn", {"kind": "manual"}, actor="ada").state == "triggered"


def _vigil(*args: str) -> Any:
    from typer.testing import CliRunner

    from vigil.app import reset_default
    from vigil.cli import app as cli

    reset_default()  # the CLI's Vigil reads this test's VIGIL_HOME
    return CliRunner().invoke(cli, list(args))


def test_cli_set_show_list_delete(
    app: Vigil, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_HOME", str(app.settings.home))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "triggers: {alerts: [dataset_drift]}\n"
        "action: {kind: command, argv: [python, retrain.py]}\n"
        "rollout: {endpoint: churn-ep}\n"
    )
    done = _vigil("policy", "set", "churn", "-f", str(policy), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["created"] is True
    shown = json.loads(_vigil("policy", "show", "churn", "--json").output)
    assert shown["rollout"]["endpoint"] == "churn-ep" and shown["revision"] == 1
    assert "alert dataset_drift" in _vigil("policy", "list").output
    bad = tmp_path / "bad.yaml"
    bad.write_text("action: {kind: command, argv: []}\n")
    refused = _vigil("policy", "set", "churn", "-f", str(bad))
    assert isinstance(refused.exception, InvalidParameterError)
    assert refused.exception.message == (
        "invalid update policy: action.command.argv: List should have at least 1 item "
        "after validation, not 0"
    )
    started = json.loads(_vigil("policy", "run", "churn", "--json").output)
    assert started["state"] == "triggered" and started["trigger"] == {"kind": "manual"}
    assert started["run_id"] in _vigil("policy", "status", "churn").output
    assert _vigil("policy", "delete", "churn").exit_code == 0
    gone = _vigil("policy", "show", "churn")
    assert isinstance(gone.exception, NotFoundError)
