"""The console's guards against a real `vigil serve` app on a socket: sessions, their
cookies and end, CSRF tokens, cross-site requests, roles, and the security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from tests.ui.conftest import Served, add_alert, csrf_of, serve, sign_in

from vigil.auth.keys import KeyStore
from vigil.monitor.alerts import list_alerts
from vigil.storage.sql import utcnow
from vigil.ui.security import CSP
from vigil.ui.tables import ConsoleSessionRow


def same_origin(served_url: str) -> dict[str, str]:
    return {"Origin": served_url, "Sec-Fetch-Site": "same-origin"}


def acknowledged(served: Served, alert: int) -> bool:
    events = {e.id: e for e in list_alerts(served.vigil.database)}
    return events[alert].acknowledged_at is not None


def test_pages_need_a_session(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as anonymous:
        for path in ("/ui", "/ui/alerts", "/ui/audit", "/ui/keys", "/ui/models/churn"):
            r = anonymous.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/ui/signin", path
        assert anonymous.get("/ui/live.json").status_code == 401


def test_session_cookie_is_http_only_strict_and_expires(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        page = client.get("/ui/signin")
        r = client.post(
            "/ui/signin",
            data={"key": served.tokens["read"], "csrf": csrf_of(page.text)},
            headers=same_origin(served.url),
        )
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("vigil_session="))
    flags = [f.strip() for f in cookie.split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/ui" in flags
    assert "Secure" not in flags  # plain HTTP here; over TLS the cookie is __Host- and Secure
    expires = next(f for f in flags if f.startswith("Expires="))
    assert expires.endswith("GMT")


def test_a_predict_key_cannot_sign_in_and_a_wrong_key_is_refused(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        page = client.get("/ui/signin")
        token = csrf_of(page.text)
        r = client.post(
            "/ui/signin",
            data={"key": served.tokens["predict"], "csrf": token},
            headers=same_origin(served.url),
        )
        assert r.status_code == 403
        assert "a predict key cannot sign in to the console" in r.text
        assert not any("vigil_session=" in c for c in r.headers.get_list("set-cookie"))
        r = client.post(
            "/ui/signin",
            data={"key": "vk_nope_nope", "csrf": token},
            headers=same_origin(served.url),
        )
        assert r.status_code == 401 and "not a vigil API key" in r.text


def test_every_page_has_a_strict_csp_and_the_usual_headers(served: Served) -> None:
    with sign_in(served.url, served.tokens["admin"]) as client:
        for path in (
            "/ui",
            "/ui/alerts",
            "/ui/audit",
            "/ui/keys",
            "/ui/models/churn",
            "/ui/signin",
        ):
            r = client.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-security-policy"] == CSP
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "same-origin"
            assert r.headers["cache-control"] == "no-store"
            # No inline script or style for the CSP to have to allow.
            assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), path
            assert "<style" not in r.text and "style=" not in r.text, path
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP


@pytest.fixture
def alert(served: Served) -> int:
    return add_alert(served.vigil, rule=f"rule_{utcnow():%H%M%S%f}")


def test_no_action_without_the_sessions_csrf_token(served: Served, alert: int) -> None:
    with sign_in(served.url, served.tokens["admin"]) as client:
        for form in ({"comment": "no token"}, {"csrf": "forged"}, {"csrf": ""}):
            r = client.post(f"/ui/alerts/{alert}/ack", data=form, headers=same_origin(served.url))
            assert r.status_code == 403 and "CSRF token" in r.text
        # Another session's token is not this one's.
        with sign_in(served.url, served.tokens["admin"]) as other:
            theirs = csrf_of(other.get("/ui/alerts").text)
        r = client.post(
            f"/ui/alerts/{alert}/ack", data={"csrf": theirs}, headers=same_origin(served.url)
        )
        assert r.status_code == 403
    assert not acknowledged(served, alert)


def test_cross_site_requests_are_refused(served: Served, alert: int) -> None:
    with sign_in(served.url, served.tokens["admin"]) as client:
        token = csrf_of(client.get("/ui/alerts").text)
        url = f"/ui/alerts/{alert}/ack"
        # Refused before the console's handler runs: a page for the person, not JSON.
        r = client.post(url, data={"csrf": token}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "<h1>403 Forbidden</h1>" in r.text
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert "a page of another origin (&#x27;http://evil.example&#x27;) may not" in r.text
        r = client.post(url, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and "its own pages only" in r.text
        r = client.post(url, json={"csrf": token}, headers=same_origin(served.url))
        assert r.status_code == 415 and "<h1>415 Unsupported Media Type</h1>" in r.text
        big = {"csrf": token, "comment": "x" * 20_000}  # the console's forms are a few fields
        r = client.post(url, data=big, headers=same_origin(served.url))
        assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
        # The live counters' JSON route keeps answering JSON.
        r = client.get("/ui/live.json", headers={"Origin": "http://evil.example"})
        assert r.headers["content-type"] == "application/json" and "models" in r.json()
        assert not acknowledged(served, alert)
        r = client.post(url, data={"csrf": token}, headers=same_origin(served.url))
        assert r.status_code == 303
    assert acknowledged(served, alert)


def test_a_read_session_sees_but_cannot_act(served: Served, alert: int) -> None:
    with sign_in(served.url, served.tokens["read"]) as client:
        page = client.get("/ui/alerts")
        assert page.status_code == 200 and "Acknowledge" not in page.text
        token = csrf_of(page.text)  # the sign-out form's
        r = client.post(
            f"/ui/alerts/{alert}/ack", data={"csrf": token}, headers=same_origin(served.url)
        )
        assert r.status_code == 403 and "may look but not act" in r.text
        r = client.post(
            "/ui/models/churn/promote",
            data={"csrf": token, "version": "2"},
            headers=same_origin(served.url),
        )
        assert r.status_code == 403
        assert client.get("/ui/keys").status_code == 403
    assert not acknowledged(served, alert)
    assert served.vigil.registry.get_model("churn").aliases["production"] == 1


def test_a_revoked_keys_sessions_end(served: Served) -> None:
    store = KeyStore.from_vigil(served.vigil)
    key = store.create("admin", name="to-revoke")
    with sign_in(served.url, key.token) as client:
        assert client.get("/ui").status_code == 200
        store.revoke(key.key.id)  # as `vigil key revoke` does, from another process
        r = client.get("/ui")
        assert r.status_code == 303 and r.headers["location"] == "/ui/signin"
    # Revoked from the console: its sessions end at once, other keys' go on.
    other = store.create("read", name="revoked-in-console")
    with (
        sign_in(served.url, other.token) as victim,
        sign_in(served.url, served.tokens["admin"]) as admin,
    ):
        assert victim.get("/ui").status_code == 200
        token = csrf_of(admin.get("/ui/keys").text)
        r = admin.post(
            f"/ui/keys/{other.key.id}/revoke",
            data={"csrf": token, "confirm": "yes"},
            headers=same_origin(served.url),
        )
        assert r.status_code == 303
        assert victim.get("/ui").status_code == 303
        assert admin.get("/ui").status_code == 200
    assert not store.get(other.key.id).active


def test_an_expired_session_ends(served: Served) -> None:
    with sign_in(served.url, served.tokens["read"]) as client:
        assert client.get("/ui").status_code == 200
        with served.vigil.database.session(write=True) as session:
            session.execute(
                update(ConsoleSessionRow).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        r = client.get("/ui")
        assert r.status_code == 303 and r.headers["location"] == "/ui/signin"


def test_sign_out_ends_the_session_on_the_server(served: Served) -> None:
    with sign_in(served.url, served.tokens["read"]) as client:
        kept = dict(client.cookies)
        token = csrf_of(client.get("/ui").text)
        r = client.post("/ui/signout", data={"csrf": token}, headers=same_origin(served.url))
        assert r.status_code == 303 and r.headers["location"] == "/ui/signin"
    with httpx.Client(base_url=served.url, cookies=kept, timeout=30) as replay:
        assert replay.get("/ui").status_code == 303  # the old cookie opens nothing


def test_actions_are_audited_with_the_sessions_key(served: Served) -> None:
    admin_id = served.tokens["admin"].split("_")[1]
    with sign_in(served.url, served.tokens["admin"]) as client:
        token = csrf_of(client.get("/ui/keys").text)
        r = client.post(
            "/ui/keys",
            data={"csrf": token, "role": "read", "name": "made-here"},
            headers=same_origin(served.url),
        )
        assert r.status_code == 200
        created = re.search(r'id="new-token">([^<]+)<', r.text)
        assert created is not None
        assert KeyStore.from_vigil(served.vigil).authenticate(created.group(1)).role == "read"
        assert client.get("/ui/keys").text.count(created.group(1)) == 0  # shown once
        r = client.post(
            "/ui/models/churn/promote",
            data={"csrf": token, "version": "2", "alias": "staging", "confirm": "yes"},
            headers=same_origin(served.url),
        )
        assert r.status_code == 303 and r.headers["location"] == "/ui/models/churn"
        assert "churn@staging now points at version 2" in client.get("/ui/models/churn").text
        audit = client.get("/ui/audit", params={"actor": f"key:{admin_id}"}).text
    assert served.vigil.registry.get_model("churn").aliases["staging"] == 2
    assert "create_api_key" in audit and "set_alias" in audit


def test_bad_input_answers_a_4xx_page(served: Served) -> None:
    with sign_in(served.url, served.tokens["admin"]) as client:
        r = client.get("/ui/audit", params={"since": "yesterday"})
        assert r.status_code == 422 and "must be a date" in r.text
        assert client.get("/ui/models/nope").status_code == 404
        assert client.get("/ui/static/../app.py").status_code == 404
        token = csrf_of(client.get("/ui").text)
        r = client.post(
            "/ui/models/churn/explode", data={"csrf": token}, headers=same_origin(served.url)
        )
        assert r.status_code == 404


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _vigil, server = serve(tmp_path_factory.mktemp("ui-open"), auth="off")
    with server:
        yield server.url


def test_auth_off_says_so_and_still_needs_a_csrf_token(open_server: str) -> None:
    with httpx.Client(base_url=open_server, timeout=30) as client:
        assert client.get("/ui/signin").headers["location"] == "/ui"
        for path in ("/ui", "/ui/alerts", "/ui/audit"):
            r = client.get(path)
            assert r.status_code == 200 and "Authentication is off" in r.text, path
        token = csrf_of(client.get("/ui/models/churn").text)
        data = {"csrf": token, "version": "2"}
        with httpx.Client(base_url=open_server, timeout=30) as stranger:  # no CSRF cookie
            r = stranger.post("/ui/models/churn/promote", data=data)
            assert r.status_code == 403
        r = client.post("/ui/models/churn/promote", data=data, headers=same_origin(open_server))
        assert r.status_code == 303
        r = client.get("/ui", headers={"Host": "evil.example"})  # DNS rebinding
        assert r.status_code == 421


def test_live_counters_follow_the_served_traffic(served: Served) -> None:
    from tests.serving.test_auth import ROW, bearer

    with sign_in(served.url, served.tokens["read"]) as client:
        client.get("/ui/live.json")  # the look the next one is compared with
        for _ in range(20):
            r = client.post(
                "/v1/models/churn/predict",
                json={"inputs": ROW},
                headers=bearer(served.tokens["predict"]),
            )
            assert r.status_code == 200
        figures = client.get("/ui/live.json").json()["models"]["churn"]
    assert figures["requests_per_s"] > 0 and figures["p99_ms"] > 0
    assert figures["error_rate"] == 0.0


def test_over_tls_the_cookie_is_secure_and_host_only(served: Served) -> None:
    """The app as uvicorn calls it for a TLS connection (scope scheme ``https``)."""
    import asyncio

    from vigil.serving.config import ServingSettings
    from vigil.serving.registry_provider import RegistryProvider

    provider = RegistryProvider(served.vigil, settings=ServingSettings(auth="on"))
    app = served.vigil.serving_app(provider)

    async def sign_in_over_tls() -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://console.example") as c:
            page = await c.get("/ui/signin")
            r = await c.post(
                "/ui/signin",
                data={"key": served.tokens["admin"], "csrf": csrf_of(page.text)},
                headers={"Origin": "https://console.example"},
            )
            assert r.status_code == 303, r.text
            return r.headers.get_list("set-cookie")

    try:
        cookies = asyncio.run(sign_in_over_tls())
    finally:
        app.dataplane.executors.shutdown()
    session = next(c for c in cookies if c.startswith("__Host-vigil_session="))
    flags = [f.strip() for f in session.split(";")]
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= set(flags)
    assert not any(f.startswith("Domain=") for f in flags)


def test_an_admin_silences_alerts_through_the_same_code_as_the_api(served: Served) -> None:
    from vigil.monitor.silences import list_silences

    admin_id = served.tokens["admin"].split("_")[1]
    with sign_in(served.url, served.tokens["admin"]) as client:
        token = csrf_of(client.get("/ui/alerts").text)
        form = {"csrf": token, "alertname": "ui_silenced", "model": "churn", "duration": "2h"}
        r = client.post("/ui/silences", data=form, headers=same_origin(served.url))
        assert r.status_code == 303
        shown = client.get("/ui/alerts").text
        assert "silence " in shown and "alertname=ui_silenced" in shown
        r = client.post(
            "/ui/silences", data={**form, "duration": "forever"}, headers=same_origin(served.url)
        )
        assert r.status_code == 303
        assert 'class="flash error"' in client.get("/ui/alerts").text  # the error, once
    (made,) = [
        s
        for s in list_silences(served.vigil.database)
        if s.matchers.get("alertname") == "ui_silenced"
    ]
    assert made.created_by == f"key:{admin_id}" and made.matchers["model"] == "churn"


def test_the_consoles_pages_are_not_in_the_api_description(served: Served) -> None:
    paths = httpx.get(f"{served.url}/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
    assert "/v1/admin/policies" in paths  # the layers above serving describe their API
    assert "/ui/signin" not in httpx.get(f"{served.url}/docs").text


def test_live_counters_of_an_endpoint_count_the_variants_that_answer(served: Served) -> None:
    """Routed requests reach the overview's endpoint row (a worker adds its endpoint
    counters every half second); the shadow's copies are not counted as traffic."""
    import time

    from tests.serving.test_auth import ROW, bearer

    body = {
        "variants": [
            {"name": "a", "model": "models:/churn@production"},
            {"name": "b", "model": "models:/churn/2"},
        ],
        "policy": {"kind": "shadow", "primary": "a", "shadows": ["b"]},
    }
    with httpx.Client(base_url=served.url, timeout=30) as http:
        r = http.put(
            "/v1/admin/endpoints/live-shadow", json=body, headers=bearer(served.tokens["admin"])
        )
        assert r.status_code == 201, r.text
    with sign_in(served.url, served.tokens["read"]) as client:
        client.get("/ui/live.json")
        for _ in range(20):
            r = client.post(
                "/v1/endpoints/live-shadow/predict",
                json={"inputs": ROW},
                headers=bearer(served.tokens["predict"]),
            )
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        figures: dict[str, float] = {}
        while time.monotonic() < deadline and not figures:
            time.sleep(0.3)
            figures = client.get("/ui/live.json").json()["endpoints"].get("live-shadow", {})
            figures = figures if figures.get("requests_per_s") else {}
        assert figures["requests_per_s"] > 0 and figures["error_rate"] == 0.0
        assert "p99_ms" not in figures  # an endpoint has no latency of its own
        page = client.get("/ui").text
    assert 'data-endpoint="live-shadow"' in page
