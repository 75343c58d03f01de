"""The 4D player in real Chromium: it plays in the app without a server request per step, keeps the user's view,
and plays the same in the exported scene.html; screenshots land in out/screenshots/."""

import pytest

from tests.browser.test_screenshots import SCREENSHOTS, VIEWPORT, browser, choose  # noqa: F401 (fixture)
from tests.support.app_server import running_app
from tests.support.browser import open_app
from tests.viz.test_player import stepped_predictions
from vggt_mv.viz.export import write_scene_html
from vggt_mv.viz.scene import SceneOptions, build_scene

pytestmark = pytest.mark.slow

PLOT = "#scene .js-plotly-plot"
# What the page's Plotly holds: the slider position, frames, the points traces shown, the user's camera.
PLAYER_STATE = """(selector) => {
  const gd = document.querySelector(selector);
  if (!gd || !gd._fullLayout || !gd._fullLayout.sliders) return null;
  const camera = gd.layout.scene && gd.layout.scene.camera;
  return {active: gd._fullLayout.sliders[0].active, frames: gd._transitionData._frames.length,
          shown: gd.data.filter(t => (t.name || "").startsWith("points, step") && t.visible === true).map(t => t.name),
          eye: camera ? camera.eye : null, played: window.playedFrames || []};
}"""
LOG_FRAMES = """(selector) => {
  const gd = document.querySelector(selector);
  window.playedFrames = [];
  gd.on("plotly_animatingframe", (event) => window.playedFrames.push(event.name));
}"""


def player_state(page, selector: str = PLOT) -> dict:
    """PLAYER_STATE of the plot at `selector`."""
    return page.evaluate(PLAYER_STATE, selector)


def drag_the_view(page, selector: str = PLOT) -> None:
    """Turn the 3D view with the mouse, as a user would."""
    box = page.locator(selector).first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.4
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 90, y + 25, steps=10)
    page.mouse.up()
    page.wait_for_timeout(500)


def play_three_steps(page, selector: str = PLOT) -> list[str]:
    """Press play (3 fps) and pause once step 3 is shown; the frames Plotly played, in order. Pause is clicked where
    the button is, as a person does (Plotly redraws the buttons every frame, so the element never holds still)."""
    page.evaluate(LOG_FRAMES, selector)
    pause = page.locator(f"{selector} .updatemenu-button", has_text="pause").bounding_box()
    page.locator(f"{selector} .updatemenu-button", has_text="3 fps").click()
    page.wait_for_function(f"() => ({PLAYER_STATE})({selector!r}).active >= 3", timeout=60_000)
    page.mouse.click(pause["x"] + pause["width"] / 2, pause["y"] + pause["height"] / 2)
    page.wait_for_timeout(1500)
    return player_state(page, selector)["played"]


def click_slider_at(page, step: int, selector: str = PLOT) -> None:
    """Click the slider's rail above tick `step`, as a user picks a time step."""
    tick = page.locator(f"{selector} .slider-tick-rect").nth(step).bounding_box()
    rail = page.locator(f"{selector} .slider-rail-touch-rect").first.bounding_box()
    page.mouse.click(tick["x"] + tick["width"] / 2, rail["y"] + rail["height"] / 2)


def test_the_player_plays_three_steps_in_the_app_without_a_server_request_and_keeps_the_view(browser):  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app() as (url, _):
        page = browser.new_page(viewport=VIEWPORT)
        open_app(page, url)
        choose(page, "…or an example (uploads win)", "rig-three-cameras")
        page.get_by_role("button", name="Reconstruct").click()
        page.wait_for_function(f"() => {{ const s = ({PLAYER_STATE})({PLOT!r}); return s && s.frames === 8; }}",
                               timeout=240_000)
        start = player_state(page)
        assert start["active"] == 0 and start["shown"] == ["points, step 0"], start
        drag_the_view(page)
        turned = player_state(page)["eye"]
        assert turned is not None and turned != {"x": 0, "y": -1.6, "z": 0.7}, "the drag must turn the view"
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        played = play_three_steps(page)
        state = player_state(page)
        assert played[:4] == ["0", "1", "2", "3"] and state["active"] < 7, played
        assert state["shown"] == [f"points, step {state['active']}"], "the points follow the slider"
        slider_text = page.locator(f"{PLOT} .slider-container text").all_text_contents()
        assert f"time step (0..7): {state['active']}" in slider_text, "the slider shows the step"
        assert requests == [], f"stepping the player asked the server: {requests}"
        assert state["eye"] == turned, "stepping kept the user's camera"
        page.screenshot(path=str(SCREENSHOTS / "player-app-step3.png"))
        page.get_by_label("up to this step (trail)").check()
        page.wait_for_function(f"() => ({PLAYER_STATE})({PLOT!r}).shown.length === 1 &&"
                               f" document.querySelector({PLOT!r}).layout.title.text.startsWith('up to')",
                               timeout=60_000)
        click_slider_at(page, 5)
        page.wait_for_function(f"() => ({PLAYER_STATE})({PLOT!r}).shown.length === 6", timeout=30_000)
        assert player_state(page)["eye"] == turned, "a rebuild from the cache kept the user's camera too"
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SCREENSHOTS / "player-app-trail-step5.png"))


def test_the_exported_scene_html_plays_offline(browser, tmp_path):  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    predictions = stepped_predictions(steps=8, cameras=3)
    html = write_scene_html(tmp_path / "scene.html", build_scene(predictions, SceneOptions(color_by="time")))
    page = browser.new_page(viewport=VIEWPORT)
    requests = []
    page.goto(html.as_uri())
    selector = ".js-plotly-plot"
    page.wait_for_function(f"() => {{ const s = ({PLAYER_STATE})({selector!r}); return s && s.frames === 8; }}")
    assert player_state(page, selector)["active"] == 0, "the exported player waits for play"
    drag_the_view(page, selector)
    turned = player_state(page, selector)["eye"]
    page.on("request", lambda request: requests.append(request.url))
    played = play_three_steps(page, selector)
    state = player_state(page, selector)
    # Pause is clicked once step 3 shows; on a loaded machine step 4 may start before the click lands.
    assert played[:4] == ["0", "1", "2", "3"] and state["active"] <= 5, played
    page.wait_for_timeout(1000)
    assert player_state(page, selector)["active"] == state["active"], "the player stayed paused"
    assert state["shown"] == [f"points, step {state['active']}"] and state["eye"] == turned
    assert requests == []
    page.screenshot(path=str(SCREENSHOTS / "player-scene-html.png"))
