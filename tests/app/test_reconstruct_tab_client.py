"""The real app, launched offline and driven through gradio_client like any API user would."""

import json

import numpy as np
import pytest
import trimesh
from gradio_client import Client, handle_file

from tests.support.app_server import running_app
from vggt_mv.io.examples import list_examples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app():
    with running_app() as (url, seconds):
        yield Client(url, verbose=False), seconds


def test_offline_app_serves_within_30_seconds(app):
    _, seconds = app
    assert seconds < 30


def test_reconstruct_three_example_videos_end_to_end(app):
    client, _ = app
    videos = [handle_file(str(p)) for p in list_examples()[0].video_paths]
    figure, strip, downloads, status = client.predict(videos=videos, frames_per_camera=3, api_name="/reconstruct")
    assert downloads == [], "the run writes no file: each download is built on request"
    assert [item["caption"] for item in strip] == [f"camera {n}: {p.name}" for n, p in
                                                   enumerate(list_examples()[0].video_paths)]
    plot = json.loads(figure["plot"])
    names = [trace.get("name", "") for trace in plot["data"]]
    assert [name for name in names if name.startswith("points, step")] == [f"points, step {t}" for t in range(3)]
    for camera in range(3):
        assert f"camera {camera}" in names and f"camera {camera} trajectory" in names
    frames = plot["layout"]["meta"]["player_frames"]
    assert [frame["name"] for frame in frames] == ["0", "1", "2"], "the player's frames survive gr.Plot"
    assert "depth-edge points removed" in plot["layout"]["title"]["text"]
    assert "3 time steps x 3 cameras" in status and "attention global)" in status
    assert "Attention: auto chose global for 3 cameras: random weights" in status, "the API says why, too"
    by_name = {}
    for name in ("glb", "ply", "npz", "cameras"):
        downloads, download_status = client.predict(name=name, api_name="/download")
        by_name = {path.rsplit("/", 1)[-1]: path for path in downloads}
        assert "ready" in download_status
    assert list(by_name)[:3] == ["scene.glb", "predictions.npz", "cameras.json"], "every format built so far, in order"
    scene = trimesh.load(by_name["scene.glb"])
    assert sum(type(g).__name__ == "PointCloud" for g in scene.geometry.values()) == 1
    assert len(trimesh.load(by_name["points_t000.ply"]).vertices) > 1000
    archive = np.load(by_name["predictions.npz"])
    assert archive["world_points"].shape == (3, 3, 294, 518, 3)
    assert archive["depth"].shape == (3, 3, 294, 518, 1) and archive["extrinsic"].shape == (3, 3, 3, 4)
    assert len(json.loads(open(by_name["cameras.json"]).read())["frames"]) == 9


def test_bad_input_gives_one_message_and_the_server_keeps_serving(app, tmp_path):
    client, _ = app
    fake = tmp_path / "broken.mp4"
    fake.write_bytes(b"not really a video")
    with pytest.raises(Exception) as raised:
        client.predict(videos=[handle_file(str(fake))], api_name="/reconstruct")
    assert "not a readable video" in str(raised.value)
    _, _, _, status = client.predict(example=list_examples()[0].name, frames_per_camera=1, api_name="/reconstruct")
    assert "1 time step x 3 cameras" in status


def test_the_filters_chosen_for_a_run_shape_its_downloads(app):
    client, _ = app
    example = list_examples()[0].name
    counts = {}
    for edges in (True, False):
        *_, status = client.predict(example=example, frames_per_camera=1, depth_edges=edges, point_budget=10_000,
                                    player_mode="all", api_name="/reconstruct")
        assert ("Depth-edge points are kept" in status) is not edges
        downloads, _ = client.predict(name="ply", depth_edges=edges, point_budget=400_000, api_name="/download")
        by_name = {path.rsplit("/", 1)[-1]: path for path in downloads}
        counts[edges] = len(trimesh.load(by_name["points_t000.ply"]).vertices)
    assert counts[True] < counts[False], "the depth-edge filter removed points from the PLY too"


def test_a_hostile_download_format_is_one_line_and_the_server_keeps_serving(app):
    client, _ = app
    client.predict(example=list_examples()[0].name, frames_per_camera=1, point_budget=10_000, api_name="/reconstruct")
    for hostile in ("../../etc/passwd", "zip\n", "", "x" * 10_000):
        with pytest.raises(Exception) as raised:
            client.predict(name=hostile, api_name="/download")
        assert "unknown download format" in str(raised.value)
    downloads, status = client.predict(name="cameras", api_name="/download")
    assert [path.rsplit("/", 1)[-1] for path in downloads] == ["cameras.json"] and "cameras.json** ready" in status


def test_query_points_through_the_api_return_tracks_in_the_npz_and_older_positional_calls_still_work(app):
    client, _ = app
    example = list_examples()[0].name
    figure, _, downloads, status = client.predict(example=example, frames_per_camera=2, point_budget=10_000,
                                                  query_points=[[100, 150], [400, 60], [259, 147]],
                                                  api_name="/reconstruct")
    assert "Tracks: 3 query points followed through 2 x 3 frames" in status
    names = [trace.get("name", "") for trace in json.loads(figure["plot"])["data"]]
    assert "tracks (3)" in names
    assert downloads == []
    downloads, _ = client.predict(name="npz", api_name="/download")
    archive = np.load(next(path for path in downloads if path.endswith("predictions.npz")))
    assert archive["track"].shape == (2, 3, 3, 2) and archive["vis"].shape == archive["conf"].shape == (2, 3, 3)
    np.testing.assert_array_equal(archive["query_points"], np.float32([[100, 150], [400, 60], [259, 147]]))
    np.testing.assert_array_equal(archive["track"][0, 0], archive["query_points"])
    # the 13 inputs an older client sends by position (query_points came last, so it defaults to none)
    *_, status = client.predict(None, example, 2, 0.0, 1.0, "", "auto", "rgb", 25.0, 10_000, "step", True, 1.0,
                                api_name="/reconstruct")
    assert "2 time steps x 3 cameras" in status and "Tracks:" not in status
