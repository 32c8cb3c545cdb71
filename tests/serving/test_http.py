"""The request object: a JSON body is decoded once, and refused before decoding when it
would hold more values than the server takes."""

from __future__ import annotations

import pytest

from vigil.errors import MalformedRequestError, PayloadTooLargeError
from vigil.serving.http import Request, Response, Route


def _request(body: bytes) -> Request:
    return Request("POST", "/v1/models/m/predict", {}, "application/json", body=body)


def test_a_body_read_ahead_is_decoded_once() -> None:
    req = _request(b'{"inputs": {"a": 1}}')
    req.read_json(max_values=10)
    first = req.json()
    assert first == {"inputs": {"a": 1}} and req.json() is first


@pytest.mark.parametrize(
    "body",
    [b"[" + b",".join([b"0"] * 101) + b"]", b"[" + b"[]," * 60 + b"[]]", b"[" * 200 + b"]" * 200],
    ids=["values", "arrays", "nesting"],
)
def test_a_body_of_too_many_values_is_refused_when_the_handler_reads_it(body: bytes) -> None:
    # The error is raised where the handler reads the body, so a predict route logs the
    # rejected request like any other.
    req = _request(body)
    req.read_json(max_values=100)
    with pytest.raises(PayloadTooLargeError, match="more than 100 JSON values"):
        req.json()


def test_malformed_json_read_ahead_raises_when_read() -> None:
    req = _request(b'{"inputs": ')
    req.read_json(max_values=100)
    with pytest.raises(MalformedRequestError):
        req.json()
    assert _request(b"[1, 2]").json() == [1, 2]


def test_detach_hands_over_the_body_and_its_decoding() -> None:
    req = _request(b"[1]")
    assert req.json() == [1]
    assert req.detach() == [b"[1]", [1]]
    assert req.body == b""


async def _noop(dp: object, req: Request) -> Response:
    return Response(b"")


def test_only_a_form_route_is_exempt_from_the_json_content_type() -> None:
    """A state change needs JSON (no HTML form can send it), unless the route declares a
    form body: the console's, which its session and CSRF token guard instead. Both keep
    the Origin check."""
    json_route = Route("POST", "/v1/x", _noop, "x", "native", "x", body="json")
    bare = Route("DELETE", "/v1/x", _noop, "x", "native", "x")
    form = Route("POST", "/ui/x", _noop, "ui_x", "ops", "x", body="form")
    page = Route("GET", "/ui", _noop, "ui", "ops", "x")
    assert json_route.needs_json and bare.needs_json and not form.needs_json
    assert json_route.same_origin and bare.same_origin and form.same_origin
    assert not page.needs_json and not page.same_origin
