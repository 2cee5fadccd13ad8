"""The admin's ML connection dialog in real Chromium: it shows the project's parameters as JSON,
and refuses invalid ones with the backend's reason (not a generic "422")."""

from __future__ import annotations

import json

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project

from ..e2e.conftest import ROOT
from .harness import ARTIFACTS

PARAMS = {"prompt": "a red square", "batch_size": 4}
# The opacity a text is drawn at: the product of its innermost element's and every ancestor's.
SHOWN_OPACITY = """
const holder = [...document.querySelectorAll('body *')]
    .filter(el => el.textContent.includes(arguments[0])).pop();
let opacity = 1;
for (let node = holder; node; node = node.parentElement) opacity *= parseFloat(getComputedStyle(node).opacity);
return holder ? opacity : 0;
"""


def test_the_dialog_shows_the_params_and_the_reason_they_are_refused(label_studio, start_backend, logged_in):
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, "browser: connection dialog", (ROOT / "label_config.xml").read_text())
    backend = start_backend()
    connect_backend(client, project, backend.url, "CLIP vector queue", PARAMS)

    logged_in.open(f"/projects/{project}/settings/ml")
    logged_in.wait_for(lambda: logged_in.find_all("button[aria-label='Machine learning model options']"),
                       what="the connection's card")[0].click()
    logged_in.click_text("Edit")
    box = logged_in.wait_for(lambda: logged_in.find_all("textarea[name=extra_params]"), what="the extra params box")[0]
    assert json.loads(box.get_attribute("value")) == PARAMS  # not "[object Object]"

    box.send_keys(Keys.CONTROL, "a")
    box.send_keys('{"batchsize": 3}')
    logged_in.click_text("Validate and Save")
    reason = "batchsize: Extra inputs are not permitted"
    logged_in.wait_for(lambda: reason in logged_in.driver.find_element(By.TAG_NAME, "body").text,
                       what="the backend's reason in the dialog")
    # the error modal fades in: the screenshot waits until the reason is drawn at full opacity
    logged_in.wait_for(lambda: logged_in.driver.execute_script(SHOWN_OPACITY, reason) > 0.99,
                       what="the reason's modal fully faded in")
    logged_in.screenshot(ARTIFACTS / "connection-dialog-refusal.png")  # to look at
    [connection] = client.ml.list(project=project)
    assert json.loads(connection.extra_params) == PARAMS  # nothing was saved

