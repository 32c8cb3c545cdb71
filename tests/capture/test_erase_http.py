"""``POST /v1/admin/capture/erase`` over a real socket: admin only, the same erasure as
the CLI (audited with the calling key, chains valid), while the server keeps capturing;
bad bodies get a 422 naming the field."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import ROW, bearer, make_tokens, register_churn

from vigil.capture.chain import verify_capture, verify_segments
from vigil.capture.reader import read_capture
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider


def test_erase_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_CAPTURE_COMPACT_INTERVAL_S", "0.2")
    vigil = register_churn(tmp_path / "home")
    tokens = make_tokens(vigil)
    provider = RegistryProvider(vigil, poll_interval=0, settings=ServingSettings(auth="on"))
    with (
        ServerThread(vigil.serving_app(provider)) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        for rid in ("subject-7f3a", "other-1", "other-2"):
            r = http.post(
                "/v1/models/churn/predict",
                json={"inputs": ROW},
                headers={**bearer(tokens["predict"]), "X-Request-ID": rid},
            )
            assert r.status_code == 200, r.text
        body = {"where": {"request_id": "subject-7f3a"}, "wait": 10}
        for role in ("read", "predict"):
            r = http.post("/v1/admin/capture/erase", json=body, headers=bearer(tokens[role]))
            assert r.status_code == 403
        for bad, field in (
            ({"where": {}}, "where"),
            ({"where": {"email": 3}}, "where"),
            ({"where": {"request_id": "x"}, "wait": 10_000}, "wait"),
            ({"where": {"request_id": "x"}, "value": "x"}, "value"),
        ):
            r = http.post("/v1/admin/capture/erase", json=bad, headers=bearer(tokens["admin"]))
            assert r.status_code == 422 and r.json()["detail"]["field"] == field, r.text
        r = http.post("/v1/admin/capture/erase", json=body, headers=bearer(tokens["admin"]))
        assert r.status_code == 200, r.text
        done = r.json()
        assert (done["records"], done["fields"], done["complete"]) == (1, ["request_id"], True)
        r = http.post(
            "/v1/models/churn/predict", json={"inputs": ROW}, headers=bearer(tokens["predict"])
        )
        assert r.status_code == 200  # still serving and capturing
    left = read_capture("churn", store=vigil.artifacts, log_dir=vigil.capture_dir)
    assert "subject-7f3a" not in set(left["request_id"]) and len(left) == 3
    for path in (tmp_path / "home").rglob("*"):
        if path.is_file() and "capture" in path.parts and path.suffix != ".parquet":
            assert b"subject-7f3a" not in path.read_bytes(), path
    assert verify_capture(vigil.artifacts, "capture").ok
    assert verify_segments(vigil.capture_dir, "capture").ok
    event = next(e for e in vigil.registry.audit(None, limit=20) if e.action == "capture.erase")
    assert event.actor.startswith("key:") and event.after is not None
    assert event.after["records"] == 1 and "subject-7f3a" not in str(event.after)
