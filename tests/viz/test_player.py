"""The in-figure player: one frame per time step that shows only what that step (or the mode) asks for, frustums
moving along fixed trajectories, controls in the figure, and frames that survive the trip through gr.Plot."""

import json

import numpy as np
import pytest

from tests.support.predictions import fake_predictions
from vggt_mv.viz.cameras import camera_centers, to_display
from vggt_mv.viz.player import (FRAMES_META_KEY, PLAYER_SPEEDS_FPS, gradio_head_script, move_frames_into_layout,
                                visible_steps)
from vggt_mv.viz.scene import SceneOptions, build_scene


def stepped_predictions(steps: int = 4, cameras: int = 2) -> dict:
    """fake_predictions with step t's plane at depth 3 + t, so a point tells which step it belongs to."""
    predictions = fake_predictions(steps=steps, cameras=cameras)
    predictions["world_points"][..., 2] = 3.0 + np.arange(steps)[:, None, None, None]
    return predictions


def trace_index(figure, name: str) -> int:
    """Position of the trace called `name` in figure.data."""
    return next(index for index, trace in enumerate(figure.data) if trace.name == name)


def shown_in_frame(figure, frame) -> dict[str, object]:
    """{trace name: the frame's update of that trace}."""
    return {figure.data[index].name: update for index, update in zip(frame.traces, frame.data)}


def step_of_points(trace) -> set[int]:
    """Which steps a points trace's points come from (display y is the OpenCV depth, 3 + t)."""
    return set(np.round(np.asarray(trace.y) - 3.0).astype(int).tolist())


def test_one_frame_per_time_step_and_each_step_trace_holds_only_its_steps_points():
    predictions = stepped_predictions(steps=4)
    figure = build_scene(predictions, SceneOptions(point_budget=800, conf_percentile=0))
    assert [frame.name for frame in figure.frames] == ["0", "1", "2", "3"]
    for step in range(4):
        trace = figure.data[trace_index(figure, f"points, step {step}")]
        assert step_of_points(trace) == {step}
        assert len(trace.x) == 200, "the budget is split evenly over the steps"


@pytest.mark.parametrize("mode, shown_at_2", [("step", [2]), ("trail", [0, 1, 2]), ("all", [0, 1, 2, 3])])
def test_each_frame_shows_the_steps_its_mode_asks_for(mode, shown_at_2):
    figure = build_scene(stepped_predictions(steps=4), SceneOptions(player_mode=mode, point_budget=400))
    for step, frame in enumerate(figure.frames):
        updates = shown_in_frame(figure, frame)
        visible = [t for t in range(4) if updates[f"points, step {t}"].visible]
        assert visible == [t for t, shown in enumerate(visible_steps(mode, step, 4)) if shown]
        assert all(update.x is None for name, update in updates.items() if name.startswith("points")), \
            "frames switch steps on and off; the points are sent once"
    frame_two = shown_in_frame(figure, figure.frames[2])
    assert [t for t in range(4) if frame_two[f"points, step {t}"].visible] == shown_at_2
    initially = [t for t in range(4) if figure.data[trace_index(figure, f"points, step {t}")].visible]
    assert initially == [t for t, shown in enumerate(visible_steps(mode, 0, 4)) if shown]


def test_frustums_move_along_trajectories_that_stay_drawn():
    predictions = stepped_predictions(steps=3, cameras=2)
    figure = build_scene(predictions, SceneOptions(point_budget=300))
    centres = to_display(camera_centers(predictions["extrinsic"]))
    for step, frame in enumerate(figure.frames):
        updates = shown_in_frame(figure, frame)
        assert not any("trajectory" in name for name in updates), "trajectories are not animated"
        for camera in range(2):
            apex = [updates[f"camera {camera}"][axis][0] for axis in "xyz"]
            np.testing.assert_allclose(apex, centres[step, camera], atol=1e-4)
    trajectory = figure.data[trace_index(figure, "camera 1 trajectory")]
    np.testing.assert_allclose(np.c_[trajectory.x, trajectory.y, trajectory.z], centres[:, 1], atol=1e-4)


def test_ground_truth_frustums_move_with_the_player_too():
    predictions = stepped_predictions(steps=3)
    predictions["gt_extrinsic"] = predictions["extrinsic"].copy()
    predictions["gt_intrinsic"] = predictions["intrinsic"].copy()
    figure = build_scene(predictions, SceneOptions(point_budget=100))
    assert "ground truth 1" in shown_in_frame(figure, figure.frames[2])


def test_slider_and_play_buttons_at_each_speed_animate_frames_and_keep_the_users_view():
    figure = build_scene(stepped_predictions(steps=5), SceneOptions(point_budget=100))
    (slider,) = figure.layout.sliders
    assert [list(step.args[0]) for step in slider.steps] == [[str(t)] for t in range(5)]
    assert all(step.method == "animate" and step.args[1]["frame"]["redraw"] for step in slider.steps), \
        "scatter3d only updates with a redraw"
    (menu,) = figure.layout.updatemenus
    plays = [button for button in menu.buttons if button.args[0] is None]
    assert [1000 / button.args[1]["frame"]["duration"] for button in plays] == pytest.approx(PLAYER_SPEEDS_FPS)
    assert any(list(button.args[0] or ()) == [None] for button in menu.buttons), "a pause button"
    assert figure.layout.uirevision is not None
    assert all(not frame.to_plotly_json().get("layout") for frame in figure.frames), "no frame resets the camera"


def test_payload_is_the_same_in_every_mode_and_frames_are_small():
    predictions = stepped_predictions(steps=4)
    sizes = {}
    for mode in ("step", "trail", "all"):
        payload = build_scene(predictions, SceneOptions(player_mode=mode, point_budget=2000)).to_json()
        sizes[mode] = len(payload)
        frames = json.dumps(json.loads(payload)["frames"])
        assert len(frames) < 0.1 * len(payload)
    assert max(sizes.values()) < 1.01 * min(sizes.values())


def test_frames_ride_in_the_layout_for_gradio_and_come_back_intact():
    figure = build_scene(stepped_predictions(steps=3), SceneOptions(point_budget=300))
    expected = [frame.to_plotly_json() for frame in figure.frames]
    sent = json.loads(move_frames_into_layout(figure).to_json())
    assert "frames" not in sent or not sent["frames"]
    carried = sent["layout"]["meta"][FRAMES_META_KEY]
    assert [frame["name"] for frame in carried] == ["0", "1", "2"]
    assert carried == json.loads(json.dumps(expected))
    script = gradio_head_script()
    assert script.startswith("<script>") and script.rstrip().endswith("</script>") and FRAMES_META_KEY in script


def test_the_exported_html_carries_the_frames(tmp_path):
    figure = build_scene(stepped_predictions(steps=3), SceneOptions(point_budget=300))
    path = tmp_path / "scene.html"
    figure.write_html(str(path), include_plotlyjs=False)
    html = path.read_text()
    assert "addFrames" in html and '"name":"2"' in html.replace(" ", "")


def test_one_time_step_still_has_one_frame():
    figure = build_scene(fake_predictions(steps=1, cameras=2), SceneOptions(point_budget=100))
    assert len(figure.frames) == 1 and len(figure.layout.sliders[0].steps) == 1
