"""Where vigil may post alerts (SSRF): public addresses only, checked when a webhook is
configured and again, against the address actually called, when it is sent.

The receivers are real HTTP servers on loopback. Two tests stand in for DNS: a name that
answers 93.184.216.34 when configured and 127.0.0.1 when called (DNS rebinding), and a
name that answers 127.0.0.1 (to see which address is called). Their resolver wraps the
system's and passes every other name, every address and every lookup that asks for an
address only (``AI_NUMERICHOST``) through to it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.monitor._receiver import Receiver

from vigil.app import Vigil
from vigil.errors import ConfigurationError, UnsafeWebhookError
from vigil.monitor.alerts import AlertEvent, list_alerts
from vigil.monitor.notify import deliver, fire_event
from vigil.monitor.settings import MonitorSettings, load_monitor_settings
from vigil.monitor.webhooks import check_webhook_url, post_json

REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://127.1/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),
    ("http://0x7f000001/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://alerts.localhost/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://[fd00::1]/hook", "private"),
    ("http://100.64.0.1/hook", "non-public"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
]


@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_non_public_targets_are_refused(url: str, kind: str) -> None:
    with pytest.raises(UnsafeWebhookError) as refused:
        check_webhook_url(url, allow_private=False, resolve=True)
    assert f"({kind} address)" in refused.value.message
    assert "VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS" in refused.value.message
    check_webhook_url(url, allow_private=True, resolve=True)  # unless allowed


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example/x", "https:///x", "http://[::1/x", "http://h:99999/x"]
)
def test_a_webhook_must_be_an_http_url_with_a_host(url: str) -> None:
    with pytest.raises(UnsafeWebhookError, match="http:// or https://"):
        check_webhook_url(url, allow_private=True, resolve=False)


def test_public_targets_and_unresolvable_names_are_accepted_when_configured() -> None:
    check_webhook_url("https://93.184.216.34/hook", allow_private=False, resolve=True)
    # A name that does not resolve now is checked again when it is called.
    check_webhook_url("https://hooks.invalid/T0/B0/x", allow_private=False, resolve=True)


def test_monitoring_settings_refuse_a_private_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_MONITOR_WEBHOOKS", '["http://169.254.169.254/latest/x?t=s3cret"]')
    with pytest.raises(ConfigurationError) as refused:
        load_monitor_settings()
    assert "link-local" in refused.value.message and "s3cret" not in refused.value.message
    monkeypatch.setenv("VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS", "true")
    assert load_monitor_settings().allow_private_webhooks is True


def _event(empty_vigil: Vigil, settings: MonitorSettings) -> AlertEvent:
    event = fire_event(
        empty_vigil, name="drift", severity="warning", summary="x", labels={}, settings=settings
    )
    assert event is not None
    return event


def test_a_loopback_receiver_is_refused_when_sending(empty_vigil: Vigil) -> None:
    with Receiver() as hook:
        allowed = MonitorSettings(webhooks=[f"{hook.url}/hook"], allow_private_webhooks=True)
        event = _event(empty_vigil, allowed)
        assert len(hook.wait_calls(1)) == 1
        # The same settings without the permission: a settings object built before the
        # rule existed, or a target that resolved to a public address when configured.
        refused = deliver(event, allowed.targets(), retries=2, allow_private=False)
        [outcome] = refused.values()
        assert outcome["ok"] is False and outcome["attempts"] == 1  # no retry: it is final
        assert "refused" in outcome["error"] and "loopback" in outcome["error"]
        assert hook.calls == 1


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], list[str]]:
    """Answer the given names from a script (one list of answers per name, one answer per
    lookup); everything else goes to the system's resolver. Returns the names looked up."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def install(script: dict[str, list[str]]) -> list[str]:
        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host
            numeric_only = kwargs.get("flags", 0) & socket.AI_NUMERICHOST
            if name in script and not numeric_only:
                looked_up.append(name)
                answer = script[name].pop(0) if len(script[name]) > 1 else script[name][0]
                return real(answer, port, *args, **kwargs)
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return looked_up

    return install


def test_dns_rebinding_between_configuration_and_sending_is_refused(
    empty_vigil: Vigil,
    resolver: Callable[[dict[str, list[str]]], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="vigil.monitor")
    with Receiver() as hook:
        port = hook.url.rsplit(":", 1)[1]
        url = f"http://rebind.test:{port}/hook?token=s3cret"
        lookups = resolver({"rebind.test": ["93.184.216.34", "127.0.0.1"]})
        check_webhook_url(url, allow_private=False, resolve=True)  # public when configured
        settings = MonitorSettings(webhooks=[url], retries=0)
        _event(empty_vigil, settings)
        assert lookups == ["rebind.test", "rebind.test"]
        assert hook.calls == 0  # 127.0.0.1 when called: never connected to
    (stored,) = list_alerts(empty_vigil.database)
    assert stored.delivered_at is None and "loopback" in str(stored.last_error)
    assert "s3cret" not in caplog.text and "s3cret" not in str(stored.last_error)


def test_the_address_checked_is_the_address_called(
    resolver: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    with Receiver() as hook:
        port = hook.url.rsplit(":", 1)[1]
        lookups = resolver({"hooks.test": ["127.0.0.1"]})
        with httpx.Client(timeout=5) as client:
            response = post_json(
                client, f"http://hooks.test:{port}/hook?t=1", {"a": 1}, allow_private=True
            )
        assert response.status_code == 200
        [received] = hook.wait_calls(1)
        # Resolved once, by vigil; the request went to that address under its own name.
        assert lookups == ["hooks.test"]
        assert (received.path, received.host, received.body) == (
            "/hook?t=1",
            f"hooks.test:{port}",
            {"a": 1},
        )
