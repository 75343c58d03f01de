"""Real Chromium (Debian's, driven by Playwright) renders both tabs; screenshots land in out/screenshots/."""

import shutil
from pathlib import Path

import pytest

from tests.support.app_server import running_app
from tests.support.sparse_checkpoints import reference_layout, write_sparse_safetensors

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is required (bash .ci/install installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def full_size_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    write_sparse_safetensors(folder / "vggt-1b.safetensors", reference_layout("vggt-1b"))
    write_sparse_safetensors(folder / "pi3.safetensors", reference_layout("pi3"))
    return folder


def choose(page, label: str, value: str) -> None:
    """Type into a Gradio dropdown and confirm."""
    box = page.get_by_label(label)
    box.click()
    box.fill(value)
    box.press("Enter")


def test_weights_tab_full_size_dry_run_screenshot(browser, full_size_weights):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app("--weights-dir", str(full_size_weights)) as (url, _):
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.goto(url)
        page.get_by_role("tab", name="Weights").click()
        choose(page, "VGGT checkpoint (repo id or file)", "vggt-1b.safetensors")
        choose(page, "Pi3 (repo id or file)", "pi3.safetensors")
        choose(page, "Model layout", "vggt-1b")
        page.get_by_role("button", name="Dry run (headers only)").click()
        page.get_by_text("1,149").first.wait_for(timeout=60_000)
        treemap = page.locator(".treemaplayer").first
        treemap.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        assert page.get_by_text("aggregator.register_token").count() >= 1
        page.screenshot(path=str(SCREENSHOTS / "weights-tab-full-size.png"), full_page=True)
        assert page.locator(".treemaplayer text").filter(has_text="frame_blocks").count() >= 1


def test_reconstruct_tab_example_screenshot(browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app() as (url, _):
        page = browser.new_page(viewport={"width": 1500, "height": 1200})
        page.goto(url)
        choose(page, "…or an example", "rig-three-cameras")
        page.get_by_role("button", name="Reconstruct").click()
        page.locator(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas").first.wait_for(timeout=120_000)
        page.get_by_text("time steps x 3 cameras").first.wait_for(timeout=120_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(SCREENSHOTS / "reconstruct-tab-example.png"), full_page=True)
        assert page.get_by_text("RANDOM").count() >= 1, "the offline banner must be visible"
