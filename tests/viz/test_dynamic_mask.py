"""The dynamic mask (per patch) as pixels: a colour mode, a filter and a strip panel that agree with each other."""

import numpy as np

from tests.support.predictions import fake_predictions
from vggt_mv.viz.points import PointFilters, pixel_dynamic_scores, select_points
from vggt_mv.viz.previews import DYNAMIC_RAMP, camera_rows
from vggt_mv.viz.scene import SceneOptions, build_scene

ALL_POINTS = PointFilters(conf_percentile=0, depth_edges=False)


def moving_patch_predictions() -> dict:
    """28x42 pixels = 2x3 patches of 14; patch (0, 1) of camera 1 at step 1 moves (score 0.9), the rest is 0.1."""
    predictions = fake_predictions(steps=2, cameras=2)
    predictions["dynamic_mask"][:] = 0.1
    predictions["dynamic_mask"][1, 1, 0, 1] = 0.9
    return predictions


def test_each_pixel_takes_the_score_of_the_patch_holding_it():
    scores = pixel_dynamic_scores(moving_patch_predictions(), [1])
    assert scores.shape == (1, 2, 28, 42)
    assert (scores[0, 1, :14, 14:28] == np.float32(0.9)).all()
    moving = np.zeros((28, 42), dtype=bool)
    moving[:14, 14:28] = True
    assert (scores[0, 1][~moving] == np.float32(0.1)).all() and (scores[0, 0] == np.float32(0.1)).all()


def test_points_over_the_limit_are_hidden_and_counted():
    predictions = moving_patch_predictions()
    hidden = select_points(predictions, [0, 1], PointFilters(conf_percentile=0, depth_edges=False, max_dynamic=0.5),
                           point_budget=10 ** 6)
    assert hidden.removed_as_dynamic == 14 * 14
    assert len(hidden.xyz) == 2 * 2 * 28 * 42 - 14 * 14
    assert hidden.dynamic.max() < 0.5
    title = build_scene(predictions, SceneOptions(conf_percentile=0, max_dynamic=0.5,
                                                  point_budget=10 ** 6)).layout.title.text
    assert "196 dynamic points hidden" in title


def test_dynamic_colours_are_the_points_scores():
    predictions = moving_patch_predictions()
    figure = build_scene(predictions, SceneOptions(color_by="dynamic", conf_percentile=0, depth_edges=False,
                                                   point_budget=10 ** 6))
    step_one = next(t for t in figure.data if t.name == "points, step 1")
    colors = np.asarray(step_one.marker.color)
    assert np.isclose(colors, 0.9).sum() == 14 * 14 and np.isclose(colors, 0.1).sum() == 2 * 28 * 42 - 14 * 14
    assert (figure.layout.coloraxis.cmin, figure.layout.coloraxis.cmax) == (0, 1)
    selection = select_points(predictions, [1], ALL_POINTS, point_budget=10 ** 6)
    assert np.isclose(selection.dynamic, 0.9).sum() == 14 * 14


def test_the_strips_dynamic_panel_shows_the_moving_patch_in_the_moving_colour():
    predictions = moving_patch_predictions()
    row = camera_rows(predictions, time_step=1)[1]
    panel = row[:, 3 * 42:]
    moving_colour = panel[5, 20].astype(int)
    still_colour = panel[20, 5].astype(int)
    assert (panel[:14, 14:28] == moving_colour).all() and (panel[14:, :] == still_colour).all()
    assert moving_colour[0] > moving_colour[2] and still_colour[2] > still_colour[0], "red moves, blue stays"
    expected = (DYNAMIC_RAMP[1] * 0.2 + DYNAMIC_RAMP[2] * 0.8) * 255
    np.testing.assert_allclose(moving_colour, expected, atol=1.5)
