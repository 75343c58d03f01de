"""A visitor's whole session in real Chromium, on a plain server and under the ZeroGPU harness (the real `spaces`
package: every GPU call in a forked worker, pickled both ways, the main process guarded against CUDA): upload two
videos, see the plan (and switch the frame sizing), run, recolour, change the player mode and the confidence
filter, click a track point, track a grid, clear the tracks, build a download, then open the Weights tab and dry-run."""

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.test_screenshots import SCREENSHOTS, VIEWPORT, browser, error_shown  # noqa: F401 (fixture)
from tests.browser.test_tracks import PLOT, TRACKS_STATE, click_reference_pixel
from tests.support.app_server import launched_app, zerogpu_app
from tests.support.browser import open_app
from tests.support.videos import write_video

pytestmark = pytest.mark.slow

LAYOUT = f"() => {{ const gd = document.querySelector({PLOT!r}); return gd && gd.layout ? " \
         "{title: gd.layout.title.text, colours: JSON.stringify(gd.layout.coloraxis)} : null; }"


@pytest.fixture(params=["plain server", "ZeroGPU"], scope="module")
def app(request):
    """The app as a plain server, then as a ZeroGPU Space (offline: the tiny preset with random weights)."""
    launch = zerogpu_app if request.param == "ZeroGPU" else launched_app
    with launch(timeout=120.0) as launched:
        yield request.param, launched


def wait_for_layout_change(page, before: dict, field: str) -> dict:
    """The scene's layout once `field` differs from `before` (a redraw arrived), without an error."""
    page.wait_for_function(f"(before) => {{ const now = ({LAYOUT})(); return now && now.{field} !== before; }}",
                           arg=before[field], timeout=60_000)
    assert not error_shown(page), "the redraw showed an error"
    return page.evaluate(LAYOUT)


def test_a_visitor_uploads_runs_redraws_tracks_and_inspects_the_weights(browser, app, tmp_path):  # noqa: F811
    kind, launched = app
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    left = write_video(tmp_path / "left.mp4", frames=8, fps=10, width=160, height=90)
    right = write_video(tmp_path / "right.mp4", frames=8, fps=10, width=160, height=90)
    page = browser.new_page(viewport=VIEWPORT)
    open_app(page, launched.url)
    page.locator("#videos input[type=file]").set_input_files([str(left), str(right)])
    frames = page.locator("#frames input[type=number]")
    frames.fill("2")
    frames.press("Enter")
    plan = page.locator("#plan", has_text="2 time steps x 2 cameras")
    plan.wait_for(timeout=60_000)
    assert "camera 1 (right.mp4): 160x90 -> 518x294" in plan.inner_text()
    assert "auto chose global for 2 cameras" in plan.inner_text()
    assert "fit: every pixel kept, longer side 518" in plan.inner_text()
    page.get_by_label("Crop: VGGT's crop mode, width 518").check()  # the sizing radio re-plans
    page.locator("#plan", has_text="crop: width 518").wait_for(timeout=60_000)
    page.get_by_label("Fit: every pixel, longer side 518").check()
    page.locator("#plan", has_text="fit: every pixel kept").wait_for(timeout=60_000)

    page.get_by_role("button", name="Reconstruct", exact=True).click()
    page.wait_for_function(f"() => {{ const gd = document.querySelector({PLOT!r}); return gd && gd._transitionData"
                           " && gd._transitionData._frames.length === 2; }", timeout=240_000)
    status = page.locator("#run-status")
    assert "2 time steps x 2 cameras" in status.inner_text() and not error_shown(page)

    shown = page.evaluate(LAYOUT)
    page.get_by_label("camera", exact=True).check()  # Colour by: camera
    shown = wait_for_layout_change(page, shown, "colours")
    page.get_by_label("all steps").check()
    shown = wait_for_layout_change(page, shown, "title")
    assert shown["title"].startswith("all steps")
    minimum = page.get_by_label("Min confidence")
    minimum.fill("3")
    minimum.press("Enter")
    shown = wait_for_layout_change(page, shown, "title")  # fewer points pass the filter

    page.locator("#tracks-status", has_text="Click the reference frame").wait_for(timeout=60_000)
    click_reference_pixel(page, 200, 150)
    page.locator("#tracks-status", has_text="1 track").wait_for(timeout=120_000)
    assert "inference" not in page.locator("#tracks-status").inner_text()
    page.get_by_role("button", name="Track grid").click()
    page.wait_for_function(f"() => {{ const names = ({TRACKS_STATE})({PLOT!r}).names; return names.length === 1"
                           " && names[0] !== 'tracks (1)'; }", timeout=120_000)
    assert not error_shown(page)
    page.get_by_role("button", name="Clear tracks").click()
    page.wait_for_function(f"() => ({TRACKS_STATE})({PLOT!r}).names.length === 0", timeout=60_000)
    page.locator("#download-glb").click()  # built in the main process: no GPU call, no CUDA there
    try:
        page.locator("#download-status", has_text="GLB scene ready").wait_for(timeout=120_000)
    except PlaywrightTimeout:
        raise AssertionError(f"the download status says {page.locator('#download-status').inner_text()!r}; "
                             f"toasts: {page.locator('.toast-body').all_inner_texts()!r}") from None
    assert page.locator("#downloads a[href*='scene.glb']").count() >= 1 and not error_shown(page)
    page.screenshot(path=str(SCREENSHOTS / f"visitor-flow-{kind.replace(' ', '-').lower()}.png"))

    page.get_by_role("tab", name="Weights").click()
    page.get_by_role("button", name="Dry run (headers only)").click()
    totals = page.locator("#weights-totals", has_text="Trained for")
    totals.wait_for(timeout=60_000)
    assert not error_shown(page)
    if kind == "ZeroGPU":
        assert launched.cuda_violations() == [], "the main process touched CUDA"
        scheduled = launched.scheduler.requests("/schedule")
        assert len(scheduled) >= 3, "the forward and each track call asked the scheduler for a GPU"
        assert all(request.status == 200 for request in launched.scheduler.requests("/release"))
