"""Real Chromium (Debian's, driven by Playwright) renders both tabs; screenshots land in out/screenshots/."""

import re
import shutil
from pathlib import Path

import pytest

from tests.support.app_server import running_app
from tests.support.browser import open_app
from tests.support.sparse_checkpoints import reference_layout, write_sparse_safetensors
from tests.support.videos import write_video

pytestmark = pytest.mark.slow

VIEWPORT = {"width": 1400, "height": 1000}  # the screenshots: what a laptop shows without scrolling

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


def choose(page, label: str, value: str, attempts: int = 3) -> None:
    """Pick `value` in a Gradio dropdown as a visitor does (type, then click the offered option, or Enter for a
    custom value), and check it took: a dropdown can drop a value typed while it re-renders, so it is chosen again."""
    box = page.get_by_label(label)
    for _ in range(attempts):
        box.click()
        box.fill(value)
        option = page.get_by_role("option", name=value, exact=True)
        try:
            option.first.click(timeout=5_000)
        except Exception:  # noqa: BLE001 - no such option listed: a custom value, confirmed with Enter
            box.press("Enter")
        try:
            page.wait_for_function("([input, value]) => input.value === value", arg=[box.element_handle(), value],
                                   timeout=5_000)
            return
        except Exception:  # noqa: BLE001 - the value did not stay: choose again
            continue
    raise AssertionError(f"the dropdown {label!r} never kept {value!r}")


def test_weights_tab_full_size_dry_run_screenshot(browser, full_size_weights):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app("--weights-dir", str(full_size_weights)) as (url, _):
        page = browser.new_page(viewport=VIEWPORT)
        open_app(page, url)
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
        load = page.get_by_role("button", name="Load into the app's model (disabled: start with --allow-weight-loading)")
        assert load.is_disabled()


def test_reconstruct_tab_example_screenshot(browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app() as (url, _):
        page = browser.new_page(viewport=VIEWPORT)
        open_app(page, url)
        choose(page, "…or an example (uploads win)", "rig-three-cameras")
        page.get_by_role("button", name="Reconstruct").click()
        page.locator(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas").first.wait_for(timeout=120_000)
        page.get_by_text("time steps x 3 cameras").first.wait_for(timeout=120_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(SCREENSHOTS / "reconstruct-tab-example.png"), full_page=True)
        assert page.get_by_text("RANDOM").count() >= 1, "the offline banner must be visible"
        assert page.get_by_label("Ground-truth cameras").is_visible(), "the example has ground truth"


def error_shown(page) -> bool:
    """Whether Gradio shows an error anywhere (a toast or a red badge on a component)."""
    return page.locator(".toast-body.error, .error").count() > 0


def test_reconstruct_tab_portrait_and_landscape_uploads(browser, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    portrait = write_video(tmp_path / "portrait.mp4", frames=12, fps=10, width=360, height=640)
    landscape = write_video(tmp_path / "landscape.mp4", frames=12, fps=10, width=640, height=360)
    with running_app() as (url, _):
        page = browser.new_page(viewport=VIEWPORT)
        open_app(page, url)
        run_button = page.get_by_role("button", name="Reconstruct", exact=True)
        box = run_button.bounding_box()
        assert box is not None and box["y"] + box["height"] <= VIEWPORT["height"], "Reconstruct is below the fold"
        page.get_by_label("time", exact=True).check()
        page.wait_for_timeout(1500)
        assert not error_shown(page), "a display control before any run must not show an error"
        banner = page.locator("#model-banner")
        assert "RANDOM" in banner.inner_text() and len(banner.inner_text().strip().splitlines()) == 1
        page.locator("#videos input[type=file]").set_input_files([str(portrait), str(landscape)])
        plan = page.locator("#plan")
        plan.get_by_text("camera 1 (landscape.mp4)").wait_for(timeout=60_000)
        assert "8 time steps x 2 cameras" in plan.inner_text()
        assert "camera 0 (portrait.mp4): 360x640 -> " in plan.inner_text()
        assert "camera 1 (landscape.mp4): 640x360 -> 518x294" in plan.inner_text()
        preview = page.locator("#upload-preview")
        preview.get_by_text("camera 0: portrait.mp4 (360x640, 10 fps, 12 frames)").wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "reconstruct-tab-uploads-planned.png"))
        run_button.click()
        status = page.locator("#run-status")
        status.get_by_text("8 time steps x 2 cameras").wait_for(timeout=240_000)
        assert "attention global)" in status.inner_text() and "auto chose global" in status.inner_text()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SCREENSHOTS / "reconstruct-tab-uploads.png"))
        page.screenshot(path=str(SCREENSHOTS / "reconstruct-tab-uploads-full.png"), full_page=True)
        assert page.locator("#downloads a").count() == 0, "a run writes no download until one is asked for"
        page.locator("#download-ply").click()
        page.locator("#download-status", has_text="PLY per time step ready").wait_for(timeout=120_000)
        names = [stem + extension for stem, extension in
                 re.findall(r"^(\S+)\n(\.\w+)$", page.locator("#downloads").inner_text(), re.MULTILINE)]
        assert names == [f"points_t{step:03d}.ply" for step in range(8)], names
        strip = page.locator("#camera-strip")
        for caption in ("camera 0: portrait.mp4", "camera 1: landscape.mp4"):
            assert strip.get_by_text(caption, exact=True).count() >= 1, caption
        assert page.locator("#strip-step input[type=range]").get_attribute("max") == "7"
        assert not page.get_by_label("Ground-truth cameras").is_visible(), "uploads have no ground truth"
        assert not error_shown(page)
