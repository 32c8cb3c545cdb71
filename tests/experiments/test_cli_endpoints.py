"""``vigil endpoint ...`` and ``vigil experiment ...`` through typer's runner and the real
entry point: configurations built from options or files, one-line errors that change
nothing, status numbers equal to the statistics."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.experiments._registry import vigil_with_models
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.cli import app, main
from vigil.cli.endpoints import describe_policy
from vigil.console import console
from vigil.experiments.state import SqlPolicyState
from vigil.experiments.store import EndpointStore
from vigil.stats.experiment import summarize_experiment
from vigil.stats.sufficient import ProportionStats

runner = CliRunner()
CREATE = [
    "endpoint",
    "create",
    "checkout",
    "--variant",
    "a=models:/churn@production",
    "--variant",
    "b=models:/churn/2",
    "--policy",
    "split",
    "--weight",
    "a=90",
    "--weight",
    "b=10",
    "--unit-header",
    "X-User",
]


@pytest.fixture
def vigil(
    vigil_home: Path, make_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Vigil]:
    monkeypatch.setenv("VIGIL_ACTOR", "ada")
    monkeypatch.setattr(console, "width", 220)  # a wide terminal: tables on one line per row
    reset_default()
    yield vigil_with_models(vigil_home, make_bundle)
    reset_default()


def ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def as_json(args: list[str]) -> Any:
    return json.loads(ok([*args, "--json"]))


def test_create_show_update_list_delete(vigil: Vigil) -> None:
    created = as_json(CREATE)
    assert created["revision"] == 1 and created["created_by"] == "ada"
    assert "salt" not in created  # a secret: it predicts every unit's variant
    salt = EndpointStore(vigil).get("checkout").salt
    assert created["policy"] == {"kind": "split", "weights": {"a": 90.0, "b": 10.0}}
    assert created["unit"] == {"header": "x-user", "field": None}

    shown = ok(["endpoint", "show", "checkout"])
    assert "split a 90% / b 10%" in shown
    assert "churn/1" in shown and "churn/2" in shown  # what each variant serves now
    assert "header x-user" in shown
    SqlPolicyState(vigil.database).add("checkout", "b", requests=7, errors=1, latency_ms=[5.0])
    live = as_json(["endpoint", "show", "checkout"])["live"]
    assert live["stats"]["b"]["requests"] == 7 and live["stats"]["b"]["errors"] == 1

    updated = as_json(["endpoint", "update", "checkout", "--weight", "a=1", "--weight", "b=1"])
    assert updated["policy"]["weights"] == {"a": 1.0, "b": 1.0} and updated["revision"] == 2
    assert EndpointStore(vigil).get("checkout").salt == salt  # sticky units stay put
    updated = as_json(["endpoint", "update", "checkout", "--variant", "b=models:/churn/3"])
    assert updated["variants"][1] == {"name": "b", "model": "models:/churn/3"}
    assert updated["policy"]["weights"] == {"a": 1.0, "b": 1.0}
    canary = as_json(
        [
            "endpoint",
            "update",
            "checkout",
            "--policy",
            "canary",
            "--canary-steps",
            "10,50,100",
            "--step-duration",
            "30",
            "--max-latency-ratio",
            "1.5",
        ]
    )["policy"]
    assert (canary["stable"], canary["canary"]) == ("a", "b")
    assert [s["percent"] for s in canary["steps"]] == [10, 50, 100]
    assert {s["min_duration_s"] for s in canary["steps"]} == {30}
    assert canary["guards"]["max_latency_ratio"] == 1.5
    assert "canary: step 1 of 3, 10% of traffic, ramping" in ok(["endpoint", "show", "checkout"])

    listed = as_json(["endpoint", "list"])
    assert [(e["name"], e["revision"]) for e in listed] == [("checkout", 4)]
    assert "checkout" in ok(["endpoint", "list"])
    described = describe_policy(EndpointStore(vigil).get("checkout"))
    assert described == "canary b against a: 10% → 50% → 100%, then production moves"
    assert as_json(["endpoint", "delete", "checkout"]) == {"endpoint": "checkout", "deleted": True}
    assert as_json(["endpoint", "list"]) == []
    actions = [e.action for e in reversed(vigil.registry.audit()) if e.entity_type == "endpoint"]
    assert actions == ["endpoint.create"] + ["endpoint.update"] * 3 + ["endpoint.delete"]


def test_create_from_yaml_and_json_files(vigil: Vigil, tmp_path: Path) -> None:
    spec = tmp_path / "endpoint.yaml"
    spec.write_text(
        "name: ranker\n"
        "variants:\n"
        "  - {name: champion, model: 'models:/churn@production'}\n"
        "  - {name: challenger, model: 'models:/churn@challenger'}\n"
        "policy: {kind: thompson, reward: bernoulli}\n"
    )
    made = as_json(["endpoint", "create", "--file", str(spec)])
    assert made["name"] == "ranker" and made["policy"]["kind"] == "thompson"
    doc = {
        "variants": [
            {"name": "a", "model": "models:/churn/1"},
            {"name": "b", "model": "models:/fraud/1"},
        ],
        "policy": {"kind": "shadow", "primary": "a", "shadows": ["b"], "sample_rate": 0.5},
    }
    (tmp_path / "shadow.json").write_text(json.dumps(doc))
    made = as_json(["endpoint", "create", "mirror", "-f", str(tmp_path / "shadow.json")])
    assert made["name"] == "mirror" and made["policy"]["sample_rate"] == 0.5
    assert EndpointStore(vigil).list_revisions() == {"mirror": 1, "ranker": 1}


def one_line_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run the real entry point in-process; return its one stderr line."""
    monkeypatch.setattr(sys, "argv", ["vigil", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def with_args(*replace: tuple[str, str]) -> list[str]:
    args = list(CREATE)
    for old, new in replace:
        args[args.index(old)] = new
    return args


BAD = [
    (
        with_args(("b=models:/churn/2", "b=models:/churn/9")),
        "variant 'b' (models:/churn/9): model 'churn' has no version 9; it has versions 1..3",
    ),
    (
        with_args(("b=models:/churn/2", "b=models:/nope@production")),
        "variant 'b' (models:/nope@production): no model named 'nope'",
    ),
    (with_args(("a=90", "a=-5")), "weight of 'a' must be a finite number >= 0, got -5"),
    (with_args(("a=90", "a=0"), ("b=10", "b=0")), "at least one weight must be positive"),
    (with_args(("a=90", "zz=90")), "policy names unknown variant 'zz'; the variants are: a, b"),
    (with_args(("a=90", "a=lots")), "--weight: 'lots' is not a number"),
    (
        [*CREATE[:7], "--policy", "canary", "--canary-steps", "5,25,50"],
        "the ramp must end at 100 percent, got 50",
    ),
    (
        [*CREATE[:7], "--policy", "epsilon_greedy", "--epsilon", "1.5"],
        "epsilon: Input should be less than or equal to 1",
    ),
    (
        [*CREATE[:7], "--policy", "canary", "--weight", "a=1"],
        "--weight does not apply to a canary policy",
    ),
    ([*CREATE[:7], "--policy", "random"], "--policy must be one of fixed, split, canary"),
    (["endpoint", "create", "x", "--variant", "a"], "--variant takes NAME=VALUE, got 'a'"),
    (["endpoint", "create", "x", "--file", "nope.yaml"], "--file 'nope.yaml' is not a file"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_input_is_one_line_and_changes_nothing(
    vigil: Vigil,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    audit_before = len(vigil.registry.audit(limit=1000))
    assert message in one_line_error(argv, capsys, monkeypatch)
    assert EndpointStore(vigil).list_revisions() == {}
    assert len(vigil.registry.audit(limit=1000)) == audit_before


def test_update_and_conclude_errors(
    vigil: Vigil, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(CREATE)
    err = one_line_error(["endpoint", "update", "search", "--weight", "a=1"], capsys, monkeypatch)
    assert "no endpoint named 'search'; endpoints: checkout" in err
    err = one_line_error(
        ["endpoint", "update", "checkout", "--file", "x.yaml", "--weight", "a=1"],
        capsys,
        monkeypatch,
    )
    assert "--file replaces the whole configuration; do not combine it with --weight" in err
    err = one_line_error(
        ["experiment", "conclude", "checkout", "--promote", "c"], capsys, monkeypatch
    )
    assert "endpoint 'checkout' has no variant 'c'; its variants are: a, b" in err
    assert EndpointStore(vigil).revision("checkout") == 1


def test_experiment_status_and_conclude(vigil: Vigil) -> None:
    ok(CREATE)
    state = SqlPolicyState(vigil.database)
    state.add("checkout", "a", requests=900, rewards=[1.0] * 90 + [0.0] * 810)
    state.add("checkout", "b", requests=100, rewards=[1.0] * 20 + [0.0] * 80)
    data = as_json(["experiment", "status", "checkout"])
    expected = summarize_experiment(
        {"a": ProportionStats(900, 90), "b": ProportionStats(100, 20)},
        "a",
        weights={"a": 900, "b": 100},
    )
    assert data["summary"] == expected.to_dict()
    b = data["variants"][1]
    assert (b["requests"], b["feedback"], b["share"]) == (100, 100, 0.1)
    assert b["p_value"] == expected.variant("b").p_value
    assert data["srm"]["mismatch"] is False and data["source"] == "state"

    text = ok(["experiment", "status", "checkout"])
    assert "█░░░░░░░░░  10.0%" in text and "█████████░  90.0%" in text  # traffic bars
    assert "+100.0% (29.0 to 210.0)" in text  # b's lift over a, with its interval
    assert "split check (SRM)" in text and f"decision: {expected.decision}" in text

    done = as_json(["experiment", "conclude", "checkout", "--promote", "b", "--alias", "staging"])
    assert (done["variant"], done["version"], done["alias"]) == ("b", 2, "staging")
    assert vigil.registry.resolve("models:/churn@staging").version == 2
    assert as_json(["endpoint", "show", "checkout"])["policy"] == {"kind": "fixed", "variant": "b"}
