"""The Plotly scene: traces people look for, budgets met the right way, controls that change what is shown."""

import numpy as np
import pytest

from tests.support.predictions import fake_predictions
from vggt_mv.viz.points import COLOR_MODES, NO_FILTERS, PointFilters, select_points, weighted_sample_without_replacement
from vggt_mv.viz.scene import SceneOptions, build_scene


def point_traces(figure):
    """The scene's points traces, one per time step."""
    return [trace for trace in figure.data if trace.name.startswith("points, step ")]


def test_scene_has_points_per_step_and_a_frustum_and_trajectory_per_camera_with_legend():
    figure = build_scene(fake_predictions(steps=3, cameras=3), SceneOptions(point_budget=999))
    names = [trace.name for trace in figure.data]
    assert [trace.name for trace in point_traces(figure)] == ["points, step 0", "points, step 1", "points, step 2"]
    assert "999 of " in figure.layout.title.text and "(333 per step)" in figure.layout.title.text
    for camera in range(3):
        assert names.count(f"camera {camera}") == 1 and f"camera {camera} trajectory" in names
    trajectory = next(t for t in figure.data if t.name == "camera 1 trajectory")
    assert len(trajectory.x) == 3
    assert figure.layout.scene.aspectmode == "data"
    colors = {t.line.color for t in figure.data if t.name.startswith("camera") and "trajectory" not in t.name}
    assert len(colors) == 3


def test_budget_is_met_by_confidence_weighted_sampling_not_a_stride():
    predictions = fake_predictions(steps=2, cameras=2)
    selection = select_points(predictions, [0, 1], NO_FILTERS, point_budget=500, seed=1)
    assert len(selection.xyz) == 500
    all_confidence = predictions["world_points_conf"].reshape(-1)
    assert selection.confidence.mean() > all_confidence.mean() + 0.2
    other = select_points(predictions, [0, 1], NO_FILTERS, point_budget=500, seed=2)
    assert not np.array_equal(np.sort(selection.confidence), np.sort(other.confidence))


def test_weighted_sampling_draws_without_replacement_in_proportion():
    rng = np.random.default_rng(0)
    weights = np.array([1.0] * 900 + [9.0] * 100)
    chosen = np.concatenate([weighted_sample_without_replacement(weights, 50, rng) for _ in range(200)])
    assert len(np.unique(weighted_sample_without_replacement(weights, 500, rng))) == 500
    heavy_share = (chosen >= 900).mean()
    assert 0.4 < heavy_share < 0.6  # 100 items of weight 9 vs 900 of weight 1: half the mass


def test_confidence_percentile_and_threshold_filter_points():
    predictions = fake_predictions()
    kept_all = select_points(predictions, [0], NO_FILTERS, point_budget=10 ** 6).total_before_budget
    kept_half = select_points(predictions, [0], PointFilters(conf_percentile=50), point_budget=10 ** 6)
    assert kept_half.total_before_budget <= kept_all * 0.55
    assert kept_half.confidence.min() >= np.percentile(predictions["world_points_conf"][0], 50)
    thresholded = select_points(predictions, [0], PointFilters(conf_percentile=0, conf_threshold=4.0),
                                point_budget=10 ** 6)
    assert thresholded.confidence.min() >= 4.0


@pytest.mark.parametrize("mode", COLOR_MODES)
def test_every_colour_mode_gives_numeric_colours_on_one_shared_scale(mode):
    figure = build_scene(fake_predictions(), SceneOptions(color_by=mode, point_budget=300))
    traces = point_traces(figure)
    colors = np.concatenate([np.asarray(trace.marker.color) for trace in traces])
    assert colors.shape == (300,) and np.issubdtype(colors.dtype, np.number)
    assert all(trace.marker.coloraxis == "coloraxis" for trace in traces)
    scale = figure.layout.coloraxis
    assert scale.cmin <= colors.min() and colors.max() <= scale.cmax
    assert scale.showscale == (mode in ("time", "confidence", "dynamic")), "a colour bar where values need one"


def test_an_unknown_player_mode_is_refused():
    with pytest.raises(ValueError, match="player mode must be one of"):
        build_scene(fake_predictions(), SceneOptions(player_mode="bogus"))


def test_ground_truth_cameras_are_drawn_when_present():
    predictions = fake_predictions()
    predictions["gt_extrinsic"] = predictions["extrinsic"].copy()
    predictions["gt_intrinsic"] = predictions["intrinsic"].copy()
    names = [t.name for t in build_scene(predictions, SceneOptions(point_budget=100)).data]
    assert "ground truth 0" in names
    assert "ground truth 0" not in [t.name for t in build_scene(
        predictions, SceneOptions(point_budget=100, show_ground_truth=False)).data]


def test_padded_pixels_never_become_points_nor_shift_the_confidence_percentile():
    predictions = fake_predictions(steps=1, cameras=2, padded_rows=5)
    selection = select_points(predictions, [0], PointFilters(conf_percentile=50), point_budget=10 ** 6)
    valid = predictions["valid_mask"][0]
    assert selection.confidence.max() < 100.0, "the (very confident) padding was kept"
    real_confidence = predictions["world_points_conf"][0][valid]
    assert selection.total_before_budget == (real_confidence >= np.percentile(real_confidence, 50)).sum()


def test_min_confidence_above_every_point_says_which_control_to_lower():
    predictions = fake_predictions(steps=2, cameras=2)
    highest = float(predictions["world_points_conf"].max())
    figure = build_scene(predictions, SceneOptions(conf_threshold=highest * 10))
    assert "0 of 0 points" in figure.layout.title.text
    (note,) = figure.layout.annotations
    assert "No point passes the filters" in note.text and "lower 'Min confidence'" in note.text
    assert f"{highest:.3g}" in note.text


def test_a_scene_with_points_carries_no_empty_scene_note():
    assert not build_scene(fake_predictions(steps=2, cameras=2), SceneOptions(point_budget=100)).layout.annotations
