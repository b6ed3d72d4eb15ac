"""The MLflow UI in a real browser: `mlflow server` on 127.0.0.1 over the store a real sweep
left (conftest.ui_sweep), opened in headless Chromium (Debian's `chromium` package, driven
by Playwright for Python; nothing downloads a browser). `.ci/run` installs both.

Select with `pytest -m browser`. A missing browser fails the test: it never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from test_tracking import free_port, healthy, mlflow_server_process, wait_for

from conftest import mlflow_runs

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("RUNNER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PAGE_TIMEOUT_MS = 120_000  # a loaded CI machine renders the first page slowly


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(ui_sweep):
    """`mlflow server` over the sweep's store; its process group is ended afterwards."""
    work, db = ui_sweep
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = work / "server.log"
    with open(log_file, "w") as log:
        proc = mlflow_server_process(port, f"sqlite:///{db}", work, log)
    try:
        wait_for(lambda: healthy(url), f"mlflow server at {url}", proc, timeout=300,
                 describe=log_file.read_text)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sweep_runs(ui_sweep):
    _, db = ui_sweep
    client, runs = mlflow_runs(db)
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep_parent") == "true"]
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(kids) == 2
    return client, parent, kids


def run_link(page, run_id: str):
    return page.locator(f'a[href$="/runs/{run_id}"]').first


def test_the_parent_run_lists_its_nested_children(browser, server, sweep_runs):
    _, parent, kids = sweep_runs
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{server}/#/experiments/{parent.info.experiment_id}/runs")
    run_link(page, parent.info.run_id).wait_for(timeout=PAGE_TIMEOUT_MS)
    for kid in kids:  # nested: hidden until the parent's row is expanded
        assert not run_link(page, kid.info.run_id).is_visible()
    name_cell = page.locator("[role=gridcell]", has=run_link(page, parent.info.run_id))
    name_cell.locator("button").first.click()  # the parent's expand button
    for kid in kids:
        run_link(page, kid.info.run_id).wait_for(timeout=30_000)
    page.close()


def test_a_child_page_shows_its_datasets_description_source_and_logged_model(
        browser, server, sweep_runs):
    client, parent, kids = sweep_runs
    best = client.get_run(parent.data.tags["runner.best_child.eval/accuracy"])
    (output,) = best.outputs.model_outputs
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{server}/#/experiments/{best.info.experiment_id}/runs/{best.info.run_id}")
    training = next(i.dataset for i in best.inputs.dataset_inputs
                    if i.tags[0].value == "training")
    page.get_by_text(f"{training.name} ({training.digest})").wait_for(timeout=PAGE_TIMEOUT_MS)
    page.get_by_text("freezing head_only").first.wait_for()  # the description
    source = page.get_by_text("python -m runner")  # the Source column: program and commit
    commit = best.data.tags.get("mlflow.source.git.commit", "")[:7]  # none outside git
    (source.filter(has_text=commit) if commit else source).first.wait_for()
    logged = page.locator(f'a[href$="/models/{output.model_id}"]')  # Logged models
    logged.first.wait_for()
    assert "model" in logged.first.inner_text()
    registered = page.locator('a[href$="/models/tiny-eval-accuracy/versions/1"]')  # @champion
    registered.first.wait_for()
    page.close()
