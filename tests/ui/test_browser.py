"""The console in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium) against a real server: sign in with each role, the overview with the registered
model, acknowledging an alert, the audit and keys pages, promoting a version and rolling it
back from the model page, signing out; no console error
(a CSP violation is one) on any page, and a screenshot of every page."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from tests.ui._browser import Tour
from tests.ui.conftest import Served, add_alert

from vigil.monitor.alerts import list_alerts

pytestmark = pytest.mark.browser


@pytest.fixture
def tour(browser: webdriver.Chrome, served: Served, tmp_path: Path) -> Tour:
    browser.delete_all_cookies()
    return Tour(browser, served.url, tmp_path)


def test_an_admin_signs_in_sees_the_model_acknowledges_and_signs_out(
    tour: Tour, served: Served
) -> None:
    alert = add_alert(served.vigil, rule="browser_drift")
    tour.open("/ui/signin")
    tour.check("signin")
    tour.sign_in(served.tokens["admin"])
    assert tour.driver.current_url.endswith("/ui")
    row = tour.driver.find_element(By.CSS_SELECTOR, "tr[data-model='churn']")
    assert "production → v1" in row.text and "browser_drift" in row.text
    tour.check("overview")

    tour.click(By.LINK_TEXT, "Alerts")
    tour.check("alerts")
    tour.driver.find_element(By.ID, f"comment-{alert}").send_keys("looking")
    tour.click(By.ID, f"ack-{alert}")
    assert f"alert {alert} acknowledged by key:" in tour.text()
    tour.check("alerts-acknowledged")
    event = next(e for e in list_alerts(served.vigil.database) if e.id == alert)
    assert event.acknowledged_by == f"key:{served.tokens['admin'].split('_')[1]}"

    tour.click(By.LINK_TEXT, "Audit")
    assert "acknowledge_alert" in tour.text()
    tour.check("audit")
    tour.click(By.LINK_TEXT, "Keys")
    assert "read-test" in tour.text()
    tour.check("keys")
    tour.open("/ui/models/churn")
    tour.check("model")
    _promote_and_roll_back(tour, served)
    tour.sign_out()
    tour.open("/ui")
    assert tour.driver.current_url.endswith("/ui/signin")


def test_a_read_key_sees_but_has_no_actions(tour: Tour, served: Served) -> None:
    add_alert(served.vigil, rule="browser_read")
    tour.sign_in(served.tokens["read"])
    assert "churn" in tour.text() and "(read)" in tour.text()
    assert tour.driver.find_elements(By.LINK_TEXT, "Keys") == []
    tour.check("overview-read")
    tour.click(By.LINK_TEXT, "Alerts")
    assert tour.driver.find_elements(By.XPATH, "//button[text()='Acknowledge']") == []
    tour.check("alerts-read")
    tour.sign_out()


def test_a_predict_key_is_told_it_cannot_sign_in(tour: Tour, served: Served) -> None:
    tour.sign_in(served.tokens["predict"])
    assert "a predict key cannot sign in to the console" in tour.text()
    tour.check("signin-predict-refused", answered=403)


def _promote_and_roll_back(tour: Tour, served: Served) -> None:
    """Promote version 2 to production from the model page's form, then roll production
    back from its alias row: each checked in the registry and the audit trail."""
    actor = f"key:{served.tokens['admin'].split('_')[1]}"
    promote = tour.driver.find_element(By.CSS_SELECTOR, "form[action='/ui/models/churn/promote']")
    version = promote.find_element(By.NAME, "version")
    version.clear()
    version.send_keys("2")
    promote.find_element(By.NAME, "reason").send_keys("better recall")
    promote.find_element(By.NAME, "confirm").click()
    tour.click(By.CSS_SELECTOR, "form[action='/ui/models/churn/promote'] button")
    assert "churn@production now points at version 2" in tour.text()
    assert served.vigil.registry.get_model("churn").aliases["production"] == 2
    tour.check("model-promoted")
    rollback = "form[action='/ui/models/churn/rollback']:has(input[value='production'])"
    tour.driver.find_element(By.CSS_SELECTOR, rollback + " input[name='confirm']").click()
    tour.click(By.CSS_SELECTOR, rollback + " button")
    assert "rolled back from version 2 to version 1" in tour.text()
    assert served.vigil.registry.get_model("churn").aliases["production"] == 1
    tour.check("model-rolled-back")
    moves = [
        (e.action, e.actor)
        for e in served.vigil.registry.audit("churn")
        if e.action in ("set_alias", "rollback")
    ]
    assert {("set_alias", actor), ("rollback", actor)} <= set(moves), moves
