"""What Label Studio 1.23's pages show, read the way a person reads them: Data Manager tabs and
rows, and the labeling page (task id, image, choices). Selectors come from the 1.23 frontend;
a Label Studio upgrade that changes them fails these helpers loudly, not silently."""

from __future__ import annotations

from typing import Any

from .harness import Browser

# Reads every rendered Data Manager row at once (React may re-render between separate calls):
# {column id ("tasks:id", "tasks:predictions_score", ...): cell text, "image": thumbnail src}.
_READ_ROWS = """
const head = [...document.querySelectorAll('.lsf-table-head .lsf-table__cell')].map(c => c.getAttribute('data-id'));
return [...document.querySelectorAll('[data-testid=table-row]')].map(row => {
  const cells = [...row.querySelectorAll(':scope > .lsf-table__cell')];
  const out = {};
  cells.forEach((cell, i) => { if (head[i]) out[head[i]] = cell.innerText.trim(); });
  const img = row.querySelector('img');
  out.image = img ? img.getAttribute('src') : null;
  return out;
});
"""

_IMAGE_LOADED = """
return [...document.querySelectorAll('img[alt=image]')].some(img => img.complete && img.naturalWidth > 0);
"""


def open_project(browser: Browser, project: int) -> None:
    browser.open(f"/projects/{project}/data")


def open_tab(browser: Browser, project: int, title: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Open the project's Data Manager, click the tab titled `title`, and return its rows once they show."""
    open_project(browser, project)
    browser.click_text(title, timeout_s=timeout_s)
    return browser.wait_for(lambda: table_rows(browser), timeout_s, what=f"rows in the {title!r} tab")


def table_rows(browser: Browser) -> list[dict[str, Any]]:
    return browser.driver.execute_script(_READ_ROWS) or []


def column_header_titles(browser: Browser) -> dict[str, str]:
    """Column id -> the header's visible title, for the columns the table shows."""
    return browser.driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.lsf-table-head [data-id]')]"
        ".map(c => [c.getAttribute('data-id'), c.innerText.trim()]));"
    )


def label_all_tasks(browser: Browser) -> None:
    """The "Label All Tasks" button. React renders its label ("Label {count or All} Tasks") as several text
    nodes, so `click_text`'s XPath on one text node never matches: the whole button's text is read."""
    browser.wait_for(lambda: [b for b in browser.find_all("button") if b.text.strip() == "Label All Tasks"],
                     what="the Label All Tasks button")[0].click()


def label_tasks_as_displayed(browser: Browser) -> None:
    """The arrow beside "Label All Tasks", then "Label Tasks As Displayed"."""
    browser.wait_for(lambda: browser.find_all("button[aria-label='Toggle open']"), what="the label button's menu arrow")[0].click()
    browser.click_text("Label Tasks As Displayed")


def current_task_id(browser: Browser) -> int | None:
    """The id of the task on the labeling page (bottom left), or None while none is shown."""
    shown = browser.find_all(".lsf-current-task__task-id")
    text = shown[0].text.split("\n")[0].strip().lstrip("#") if shown else ""
    return int(text) if text.isdigit() else None


def wait_for_task(browser: Browser, other_than: int | None = None, timeout_s: float = 60.0) -> int:
    """Wait until the labeling page shows a task (a different one than `other_than`) with its image loaded."""
    return browser.wait_for(
        lambda: (task := current_task_id(browser)) is not None and task != other_than and image_loaded(browser) and task,
        timeout_s, what="a task with its image on the labeling page",
    )


def image_loaded(browser: Browser) -> bool:
    return bool(browser.driver.execute_script(_IMAGE_LOADED))


def checked_choices(browser: Browser) -> list[str]:
    """Values of the choices selected in the labeling form."""
    return [e.get_attribute("name") for e in browser.find_all("input.ant-radio-input:checked, input.ant-checkbox-input:checked")]


def submit(browser: Browser) -> None:
    browser.wait_for(lambda: browser.find_all("button[aria-label='Submit current annotation']"), what="the Submit button")[0].click()


def no_more_tasks(browser: Browser) -> bool:
    return bool(browser.by_text("No More Tasks Left in Queue"))


# The text of a <Text> object on the labeling page (Label Studio renders it as rich text).
_TASK_TEXT = """
const el = document.querySelector('.lsf-richtext, [class*=richtext]');
return el ? el.innerText.trim() : null;
"""


def task_text(browser: Browser) -> str | None:
    """The text the labeling page shows for a <Text> task, or None while none is shown."""
    return browser.driver.execute_script(_TASK_TEXT)


def wait_for_text_task(browser: Browser, other_than: int | None = None, timeout_s: float = 60.0) -> int:
    """Wait until the labeling page shows a text task (a different one than `other_than`) with its text."""
    return browser.wait_for(
        lambda: (task := current_task_id(browser)) is not None and task != other_than and task_text(browser) and task,
        timeout_s, what="a task with its text on the labeling page",
    )
