"""No web page can act for a stranger: CSRF and DNS rebinding against a real server.

A registry-backed server on loopback with authentication off (what `vigil serve` runs by
default) is attacked the ways a browser can: an auto-submitted HTML form in a real
Chromium, a request without a content type, a foreign ``Host`` (DNS rebinding) and a
foreign ``Origin``. Nothing changes state; predictions keep working as before.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import ROW, bearer, make_tokens, register_churn

from vigil.app import Vigil
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.serving.config import ServingSettings, load_serving_settings
from vigil.serving.registry_provider import RegistryProvider

JSON = {"content-type": "application/json"}
ROLLBACK = "/v1/admin/models/churn/aliases/production/rollback"


def production(vigil: Vigil) -> int:
    return vigil.registry.resolve("models:/churn@production").version


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vigil, ServerThread]]:
    """A registry-backed server with authentication off; production moved 1 → 2, so a
    rollback would move it back to 1."""
    vigil = register_churn(tmp_path_factory.mktemp("guards-home"))
    vigil.registry.set_alias("churn", "production", 2)
    EndpointStore(vigil).create(
        parse_endpoint(
            {
                "name": "ab",
                "variants": [
                    {"name": "a", "model": "models:/churn@production"},
                    {"name": "b", "model": "models:/churn/1"},
                ],
                "policy": {"kind": "split", "weights": {"a": 1, "b": 1}},
            }
        ),
        actor="test",
    )
    provider = RegistryProvider(vigil, poll_interval=0, settings=ServingSettings(auth="off"))
    with ServerThread(vigil.serving_app(provider)) as server:
        yield vigil, server


@pytest.fixture
def vigil(served: tuple[Vigil, ServerThread]) -> Vigil:
    return served[0]


@pytest.fixture
def http(served: tuple[Vigil, ServerThread]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1].url, timeout=30) as client:
        yield client


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `make test` as root (it installs chromium)")
    return found


def _submitted_dom(page: Path, profile: Path) -> str:
    """The DOM headless Chromium ends on after opening ``page`` (which submits its form)."""
    return subprocess.run(
        [
            _chromium(),
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


@pytest.mark.browser
def test_an_auto_submitted_form_in_a_real_browser_changes_nothing(
    served: tuple[Vigil, ServerThread], tmp_path: Path
) -> None:
    vigil, server = served
    page = tmp_path / "attack.html"
    page.write_text(
        "<!doctype html><html><body>"
        f"<form id='f' method='POST' action='{server.url}{ROLLBACK}'>"
        "<input name='x' value='1'></form>"
        "<script>document.getElementById('f').submit()</script>"
        "</body></html>"
    )
    dom = _submitted_dom(page, tmp_path / "profile")
    # The browser did reach the server: it shows the refusal, and production stays put.
    assert "unsupported_media_type" in dom or "cross_origin" in dom, dom[:500]
    assert production(vigil) == 2


@pytest.mark.browser
def test_a_form_cannot_send_json_to_a_prediction_in_a_real_browser(
    served: tuple[Vigil, ServerThread], tmp_path: Path
) -> None:
    # A prediction takes a JSON body sent as a form (curl -d); a browser's form cannot make
    # one: it percent-encodes the braces and quotes of a field crafted to look like JSON.
    _, server = served
    page = tmp_path / "predict.html"
    page.write_text(
        "<!doctype html><html><body>"
        f"<form id='f' method='POST' action='{server.url}/v1/models/churn/predict'>"
        """<input name='{"inputs": {"tenure": 0.5, "spend": -1.0, "calls": 0.2, "age": 1.5}, "x": "'"""
        """ value='"}'></form>"""
        "<script>document.getElementById('f').submit()</script>"
        "</body></html>"
    )
    dom = _submitted_dom(page, tmp_path / "profile")
    assert "unsupported_media_type" in dom and "predictions" not in dom, dom[:500]


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "text/plain"},
        {"content-type": "multipart/form-data; boundary=x"},
        {},
    ],
    ids=["form", "text", "multipart", "none"],
)
def test_a_state_change_needs_a_json_content_type(
    http: httpx.Client, vigil: Vigil, headers: dict[str, str]
) -> None:
    r = http.post(ROLLBACK, content=b"x=1" if headers else b"", headers=headers)
    assert r.status_code == 415, r.text
    problem = r.json()
    assert problem["error"] == "unsupported_media_type"
    assert "application/json" in problem["message"]
    assert production(vigil) == 2


def test_no_content_type_cannot_conclude_an_experiment_or_delete(
    http: httpx.Client, vigil: Vigil
) -> None:
    concluded = http.post("/v1/admin/endpoints/ab/conclude", content=b'{"promote": "b"}')
    assert concluded.status_code == 415, concluded.text
    assert EndpointStore(vigil).get("ab").policy.kind == "split"
    deleted = http.delete("/v1/admin/endpoints/ab")
    assert deleted.status_code == 415, deleted.text
    assert http.delete("/v1/admin/models/churn/aliases/production").status_code == 415
    assert production(vigil) == 2
    assert http.post("/v1/feedback", content=b'{"feedback": []}').status_code == 415


def test_a_bodyless_change_with_the_json_content_type_is_served(
    http: httpx.Client, vigil: Vigil
) -> None:
    assert (
        http.put("/v1/admin/models/churn/aliases/scratch", json={"version": 1}).status_code == 200
    )
    r = http.delete("/v1/admin/models/churn/aliases/scratch", headers=JSON)
    assert r.status_code == 200, r.text
    assert "scratch" not in vigil.registry.get_model("churn").aliases


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil.example"]
)
def test_a_foreign_host_is_refused_dns_rebinding(
    http: httpx.Client, vigil: Vigil, host: str
) -> None:
    for method, path, body in [
        ("GET", "/v1/models", None),
        ("POST", "/v1/models/churn/predict", {"inputs": ROW}),
        ("POST", ROLLBACK, {}),
    ]:
        r = http.request(method, path, json=body, headers={"host": host})
        assert r.status_code == 421, (path, r.text)
        problem = r.json()
        assert problem["error"] == "host_not_allowed"
        assert "VIGIL_SERVE_ALLOWED_HOSTS" in problem["message"]
    assert production(vigil) == 2


def test_the_servers_own_names_are_answered(
    http: httpx.Client, served: tuple[Vigil, ServerThread]
) -> None:
    port = served[1].port
    for host in ["127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", "[::1]:1"]:
        r = http.get("/v1/models", headers={"host": host})
        assert r.status_code == 200, (host, r.text)


def test_a_foreign_origin_cannot_change_state(
    http: httpx.Client, vigil: Vigil, served: tuple[Vigil, ServerThread]
) -> None:
    for origin in ["http://evil.example", "null", "http://localhost:1"]:
        r = http.post(ROLLBACK, json={}, headers={"origin": origin})
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "cross_origin_request"
        # An admin read is refused too: its answer is for the server's own pages only.
        assert http.get("/v1/admin/audit", headers={"origin": origin}).status_code == 403
    assert production(vigil) == 2
    # The server's own origin (a page it serves) may.
    own = f"http://127.0.0.1:{served[1].port}"
    r = http.put(
        "/v1/admin/models/churn/aliases/mine", json={"version": 1}, headers={"origin": own}
    )
    assert r.status_code == 200, r.text


def test_predictions_keep_their_content_type_rules(http: httpx.Client) -> None:
    # No content type: still answered (the body must be JSON); a browser page's foreign
    # Origin does not matter to a prediction, which changes nothing but the log.
    r = http.post(
        "/v1/models/churn/predict",
        content=b'{"inputs": {"tenure": 0.5, "spend": -1.0, "calls": 0.2, "age": 1.5}}',
        headers={"origin": "http://elsewhere.example"},
    )
    assert r.status_code == 200, r.text
    assert (
        http.post(
            "/invocations",
            content=b"tenure,spend,calls,age\n1,2,3,4\n",
            headers={"content-type": "text/csv"},
        ).status_code
        == 200
    )


FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_curl_d_with_a_json_body_is_a_prediction(http: httpx.Client) -> None:
    # What `curl -d '{...}'` sends: a form content type over a JSON body. A prediction takes
    # it (native, v2, an endpoint); no HTML form can send a JSON body this way.
    native = http.post(
        "/v1/models/churn/predict",
        content=b'{"inputs": {"tenure": 0.5, "spend": -1.0, "calls": 0.2, "age": 1.5}}',
        headers=FORM,
    )
    assert native.status_code == 200, native.text
    assert native.json()["model"] == "churn" and len(native.json()["predictions"]) == 1
    v2 = http.post(
        "/v2/models/churn/infer",
        content=b'{"inputs": [{"name": "tenure", "shape": [1], "datatype": "FP64", '
        b'"data": [0.5]}, {"name": "spend", "shape": [1], "datatype": "FP64", "data": [-1]},'
        b' {"name": "calls", "shape": [1], "datatype": "FP64", "data": [0.2]},'
        b' {"name": "age", "shape": [1], "datatype": "FP64", "data": [1.5]}]}',
        headers=FORM,
    )
    assert v2.status_code == 200, v2.text
    endpoint = http.post(
        "/v1/endpoints/ab/predict", content=b'{"instances": [' + _row() + b"]}", headers=FORM
    )
    assert endpoint.status_code == 200, endpoint.text


def _row() -> bytes:
    return b'{"tenure": 0.5, "spend": -1.0, "calls": 0.2, "age": 1.5}'


def test_a_form_body_that_is_not_json_says_how_to_send_json(http: httpx.Client) -> None:
    r = http.post("/v1/models/churn/predict", content=b"tenure=0.5&spend=1", headers=FORM)
    assert r.status_code == 415, r.text
    problem = r.json()
    assert problem["error"] == "unsupported_media_type"
    assert "Content-Type: application/json" in problem["message"]
    assert "--json" in problem["message"] and "-d alone sends" in problem["message"]
    assert problem["detail"]["got"] == FORM["content-type"]


def test_curl_d_cannot_change_state_and_is_told_the_fix(
    served: tuple[Vigil, ServerThread], vigil: Vigil
) -> None:
    # The real curl, as a user pastes it: -d on a state change is refused with the fix...
    url = served[1].url
    refused = subprocess.run(
        ["curl", "-s", "-w", "\\n%{http_code}", "-X", "POST", f"{url}{ROLLBACK}", "-d", "{}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, _, status = refused.rpartition("\n")
    assert status == "415", refused
    assert "curl --json" in body and "no web page's form" in body
    assert production(vigil) == 2
    # ... and the fix it names works.
    feedback = subprocess.run(
        ["curl", "-s", f"{url}/v1/feedback", "--json", '{"request_id": "curl-1", "label": 1}'],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert '"unknown":1' in feedback.replace(" ", ""), feedback


def test_docs_page_is_served_same_origin_and_cannot_be_framed(http: httpx.Client) -> None:
    r = http.get("/docs")
    assert r.status_code == 200
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert http.get("/docs", headers={"host": "evil.example"}).status_code == 421


def _app(settings: ServingSettings, vigil: Vigil) -> Any:
    return vigil.serving_app(RegistryProvider(vigil, poll_interval=0, settings=settings))


def test_allow_listed_hosts_and_origins(vigil: Vigil) -> None:
    settings = ServingSettings(
        auth="off",
        allowed_hosts=("vigil.internal",),
        allowed_origins=("https://console.example",),
    )
    with ServerThread(_app(settings, vigil)) as server, httpx.Client(base_url=server.url) as c:
        assert c.get("/v1/models", headers={"host": "vigil.internal:8000"}).status_code == 200
        assert c.get("/v1/models", headers={"host": "other.internal"}).status_code == 421
        ok = c.put(
            "/v1/admin/models/churn/aliases/console",
            json={"version": 1},
            headers={"origin": "https://console.example"},
        )
        assert ok.status_code == 200, ok.text
        assert (
            c.put(
                "/v1/admin/models/churn/aliases/console",
                json={"version": 1},
                headers={"origin": "https://console.example.evil"},
            ).status_code
            == 403
        )


def test_with_authentication_on_any_host_is_answered_unless_listed(vigil: Vigil) -> None:
    token = make_tokens(vigil)["read"]
    behind_a_balancer = ServingSettings(auth="on")
    with (
        ServerThread(_app(behind_a_balancer, vigil)) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        r = c.get("/v1/models", headers={"host": "models.example.com", **bearer(token)})
        assert r.status_code == 200, r.text
    listed = ServingSettings(auth="on", allowed_hosts=("models.example.com",))
    with ServerThread(_app(listed, vigil)) as server, httpx.Client(base_url=server.url) as c:
        ok = c.get("/v1/models", headers={"host": "models.example.com", **bearer(token)})
        assert ok.status_code == 200
        assert (
            c.get("/v1/models", headers={"host": "evil.example", **bearer(token)}).status_code
            == 421
        )
        # A probe that names the address it connects to (a kubelet's) is answered.
        assert c.get("/readyz", headers={"host": f"127.0.0.1:{server.port}"}).status_code == 200


def test_allowed_hosts_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_SERVE_ALLOWED_HOSTS", "a.example, B.example")
    monkeypatch.setenv("VIGIL_SERVE_ALLOWED_ORIGINS", "https://console.example")
    settings = load_serving_settings()
    assert settings.allowed_hosts == ("a.example", "b.example")
    assert settings.allowed_origins == ("https://console.example",)


def test_openapi_documents_the_guards(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    rollback = paths["/v1/admin/models/{name}/aliases/{alias}/rollback"]["post"]["responses"]
    assert "even without a body" in rollback["415"]["description"]
    assert {"403", "421"} <= set(rollback)
    predict = paths["/v1/models/{name}/predict"]["post"]["responses"]
    assert "421" in predict and "403" not in predict
    assert "curl -d" in predict["415"]["description"]
