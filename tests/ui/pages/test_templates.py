"""The pages' templates rendered from real views through a stand-in ``base.html``: hostile
names escaped, nothing the console's CSP forbids, a heatmap cell for every feature × window,
charts accessible, and action forms only for those who may act, each with its CSRF token."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import jinja2
from tests.ui.pages.conftest import HOSTILE, HOSTILE_TEXT, render

from vigil.app import Vigil
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.ui.pages.endpoint import endpoint_view
from vigil.ui.pages.model import model_view


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of every ``<script>``."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def check_csp_safe(html: str) -> Page:
    """No inline script or style, no ``style=``, no event handler attribute."""
    page = Page(html)
    assert not page.all("script") and not page.all("style")
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
    return page


def check_charts(page: Page, html: str) -> None:
    svgs = page.all("svg")
    assert svgs and all(a.get("role") == "img" for a in svgs)
    assert html.count("<svg") == len(re.findall(r"<svg[^>]*><title>", html))
    assert html.count("<figure") == html.count("<details><summary>Numbers</summary><table")


def check_forms(page: Page, can_act: bool) -> None:
    forms = page.all("form")
    if not can_act:
        assert not forms
        return
    assert forms and all(f["method"] == "post" for f in forms)
    hidden = [a for a in page.all("input") if a.get("name") == "csrf"]
    assert len(hidden) == len(forms) and {a["value"] for a in hidden} == {"tok-123"}


def test_model_page(vigil: Vigil, templates: jinja2.Environment) -> None:
    view = model_view(vigil, "churn")
    html = render(templates, "model.html", view)
    page = check_csp_safe(html)
    check_charts(page, html)
    check_forms(page, can_act=True)
    actions = {f["action"] for f in page.all("form")}
    assert actions == {
        f"/ui/models/churn/{a}" for a in ("promote", "archive", "unarchive", "rollback")
    }
    m = view.monitoring
    assert html.count('class="cell"') == len(m.features) * len(m.windows) == 6
    links = [a["href"] for a in page.all("a") if (a.get("href") or "").startswith("?feature=")]
    assert len(links) == 2 * 6  # each cell links from the picture and from the table
    assert "<h1>Model churn</h1>" in html and "vigil report models:/churn/1" in html
    read_only = render(templates, "model.html", view, can_act=False)
    check_forms(check_csp_safe(read_only), can_act=False)


def test_drill_down_section(vigil: Vigil, templates: jinja2.Environment) -> None:
    window = model_view(vigil, "churn").monitoring.window_ids[1]
    html = render(
        templates, "model.html", model_view(vigil, "churn", feature="plan", window=str(window))
    )
    page = check_csp_safe(html)
    check_charts(page, html)
    assert 'id="drift-detail"' in html and "<strong>Drifted</strong>" in html
    assert 'data-column="plan"' in html  # the report's distribution chart


def test_hostile_names_are_escaped(vigil: Vigil, templates: jinja2.Environment) -> None:
    view = model_view(vigil, "evil")
    window = view.monitoring.window_ids[1]
    for shown in (view, model_view(vigil, "evil", feature=HOSTILE[0], window=str(window))):
        html = render(templates, "model.html", shown)
        page = check_csp_safe(html)
        assert "<script>" not in html and "<i>" not in html and "<img" not in html
        assert "&lt;script&gt;alert(" in html
        assert HOSTILE_TEXT.replace("&", "&amp;").replace("<", "&lt;").split('"')[0] in html
        texts = [a.get("href") or "" for a in page.all("a")]
        assert all(not h.lower().startswith("javascript:") for h in texts)
    # A hostile reason in the alias history is text too.
    vigil.registry.acting_as("<b>x</b>").set_alias("evil", "canary", 1, reason="<script>1</script>")
    html = render(templates, "model.html", model_view(vigil, "evil"))
    assert "<b>x</b>" not in html and "&lt;script&gt;1&lt;/script&gt;" in html


def test_endpoint_pages(vigil: Vigil, templates: jinja2.Environment) -> None:
    store = EndpointStore(vigil)
    store.create(
        parse_endpoint(
            {
                "name": "checkout",
                "variants": [
                    {"name": "a", "model": "models:/churn/1"},
                    {"name": "b", "model": "models:/churn/2"},
                ],
                "policy": {"kind": "split", "weights": {"a": 1, "b": 1}},
            }
        ),
        actor="ada",
    )
    store.create(
        parse_endpoint(
            {
                "name": "ramp",
                "variants": [
                    {"name": "s", "model": "models:/churn/1"},
                    {"name": "c", "model": "models:/churn/2"},
                ],
                "policy": {"kind": "canary", "stable": "s", "canary": "c"},
            }
        ),
        actor="ada",
    )
    for name, forms in (
        ("checkout", {"weights", "conclude", "promote"}),
        ("ramp", {"conclude", "promote"}),
    ):
        view = endpoint_view(vigil, name)
        html = render(templates, "endpoint.html", view)
        page = check_csp_safe(html)
        check_forms(page, can_act=True)
        assert {f["action"] for f in page.all("form")} == {
            f"/ui/endpoints/{name}/{a}" for a in forms
        }
        assert "always-valid p-value" in html and "<strong>Decision:</strong>" in html
        read_only = render(templates, "endpoint.html", view, can_act=False)
        check_forms(check_csp_safe(read_only), can_act=False)
    html = render(templates, "endpoint.html", endpoint_view(vigil, "ramp"))
    assert 'aria-current="step"' in html and "Guards: limits" in html
