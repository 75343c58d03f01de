"""The Rerun recording, read back with Rerun's own reader (rerun.chunk.RrdReader): what a user opening
`rerun recording.rrd` gets on the timeline, and that nothing broken or half-written ever reaches the file."""

from __future__ import annotations

import importlib
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from rerun.chunk import RrdReader

from tests.support.predictions import fake_predictions
from vggt_mv.exports.rerun_recording import INSTALL_HINT, rerun_missing, write_recording
from vggt_mv.viz.cameras import camera_centers
from vggt_mv.viz.points import PointFilters, select_points
from vggt_mv.viz.tracks import MIN_VISIBILITY

MODULE = "vggt_mv.exports.rerun_recording"
STEPS, CAMERAS, HEIGHT, WIDTH, TRACKS = 3, 2, 28, 42, 4
BUDGET = 600
F32 = 34  # rerun's ChannelDatatype for float32


@dataclass
class ReadBack:
    """A recording as Rerun reads it: per entity and component, the value at each time step (None: static)."""

    application_id: str
    recording_id: str
    values: dict[str, dict[str, dict[int | None, object]]] = field(default_factory=dict)
    timelines: set[str] = field(default_factory=set)
    columns: list = field(default_factory=list)

    def at(self, entity: str, component: str) -> dict[int | None, object]:
        """Time step -> value of one component of one entity (empty when never logged)."""
        return self.values.get(entity, {}).get(component, {})

    def steps(self, entity: str, component: str) -> set[int | None]:
        """The time steps at which a component of an entity was logged."""
        return set(self.at(entity, component))


def read_back(path: Path) -> ReadBack:
    """Every chunk of the file's recording, gathered by entity, component and time step."""
    reader = RrdReader(path)
    (entry,) = reader.recordings()
    store = reader.store()
    recording = ReadBack(entry.application_id, entry.recording_id)
    recording.timelines = {column.name for column in store.schema().index_columns()}
    for chunk in store.stream().to_chunks():
        batch = chunk.to_record_batch()
        recording.columns += [batch.column(name) for name in batch.schema.names]
        components = [name for name in batch.schema.names if ":" in name]
        entity = recording.values.setdefault(chunk.entity_path, {})
        for row in batch.to_pylist():
            step = None if chunk.is_static else row["time_step"]
            for component in components:
                entity.setdefault(component, {})[step] = row[component]
    return recording


def leaf_values(array) -> list:
    """The innermost arrays of a (nested list / struct) Arrow column."""
    if isinstance(array, pa.ChunkedArray):
        return [leaf for chunk in array.chunks for leaf in leaf_values(chunk)]
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        return leaf_values(array.flatten())
    if pa.types.is_struct(array.type):
        return [leaf for child in array.flatten() for leaf in leaf_values(child)]
    return [array]


def depth_of(value) -> np.ndarray:
    """A logged DepthImage buffer, decoded to float32 [H, W]."""
    return np.frombuffer(bytes(value), dtype=np.float32)


def with_tracks(predictions: dict, seed: int = 1) -> dict:
    """The predictions plus hand-made tracks: one hidden, one with a non-finite point, one off the image."""
    rng = np.random.default_rng(seed)
    steps, cameras = predictions["extrinsic"].shape[:2]
    track = rng.uniform([0, 0], [WIDTH - 1, HEIGHT - 1], (steps, cameras, TRACKS, 2)).astype(np.float32)
    track[:, :, 3] = [WIDTH + 10, 0]                                  # track 3 leaves the image
    vis = np.ones((steps, cameras, TRACKS), np.float32)
    vis[1, :, 1] = 0.1                                                # track 1 hidden at time step 1
    world = rng.normal(size=(steps, cameras, TRACKS, 3)).astype(np.float32)
    world[2, 0, 2] = np.nan                                           # no depth for track 2 there
    return {**predictions, "query_points": track[0, 0].copy(), "track": track, "vis": vis, "conf": vis.copy(),
            "track_world_points": world}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> tuple[dict, object, ReadBack]:
    """One recording with tracks and padding, written once for the tests that only read it."""
    predictions = with_tracks(fake_predictions(steps=STEPS, cameras=CAMERAS, height=HEIGHT, width=WIDTH,
                                               padded_rows=2))
    path = tmp_path_factory.mktemp("rerun") / "recording.rrd"
    summary = write_recording(path, predictions, PointFilters(), BUDGET)
    return predictions, summary, read_back(path)


def test_every_time_step_is_on_the_timeline_with_its_seconds(tracked):
    _, summary, recording = tracked
    assert {"time_step", "time"} <= recording.timelines and "log_time" not in recording.timelines
    assert recording.application_id == "vggt-mv"
    assert recording.steps("/world/points", "Points3D:positions") == set(range(STEPS))
    assert summary.time_steps == STEPS and summary.cameras == CAMERAS and summary.notes == []
    assert recording.at("/world", "ViewCoordinates:xyz") == {None: [[3, 2, 5]]}  # RIGHT_HAND_Y_DOWN, static


def test_the_time_timeline_holds_the_seconds_and_is_absent_without_times(tmp_path):
    predictions = fake_predictions(steps=STEPS, cameras=1)
    write_recording(tmp_path / "timed.rrd", predictions, point_budget=50)
    untimed = {key: value for key, value in predictions.items() if key != "times"}
    write_recording(tmp_path / "untimed.rrd", untimed, point_budget=50)
    schema = RrdReader(tmp_path / "timed.rrd").store().schema()
    assert "time" in {column.name for column in schema.index_columns()}
    assert "time" not in read_back(tmp_path / "untimed.rrd").timelines
    for chunk in RrdReader(tmp_path / "timed.rrd").store().stream().to_chunks():
        if not chunk.is_static:
            batch = chunk.to_record_batch()
            seconds = {row["time_step"]: row["time"].total_seconds() for row in batch.to_pylist()}
            assert seconds == {t: float(predictions["times"][t]) for t in seconds}


def test_each_camera_has_pose_pinhole_image_and_depth_at_every_step(tracked):
    _, _, recording = tracked
    for camera in range(CAMERAS):
        entity = f"/world/camera{camera}"
        for component in ("Transform3D:translation", "Transform3D:mat3x3", "Transform3D:relation",
                          "Pinhole:image_from_camera", "Pinhole:resolution", "Pinhole:camera_xyz"):
            assert recording.steps(entity, component) == set(range(STEPS)), (entity, component)
        assert recording.steps(f"{entity}/image", "Image:buffer") == set(range(STEPS))
        assert recording.steps(f"{entity}/depth", "DepthImage:buffer") == set(range(STEPS))
        for step in range(STEPS):
            assert recording.at(entity, "Pinhole:resolution")[step] == [[WIDTH, HEIGHT]]
            assert recording.at(entity, "Pinhole:camera_xyz")[step] == [[3, 2, 5]]  # RDF
            assert recording.at(entity, "Transform3D:relation")[step] == [1]  # ParentFromChild


def test_the_pose_is_camera_to_world_and_the_pinhole_is_the_intrinsic(tracked):
    predictions, _, recording = tracked
    for step in range(STEPS):
        for camera in range(CAMERAS):
            entity = f"/world/camera{camera}"
            extrinsic = predictions["extrinsic"][step, camera]
            translation = np.array(recording.at(entity, "Transform3D:translation")[step][0])
            rotation = np.array(recording.at(entity, "Transform3D:mat3x3")[step][0]).reshape(3, 3).T  # column-major
            np.testing.assert_allclose(translation, camera_centers(extrinsic), atol=1e-6)
            np.testing.assert_allclose(rotation, extrinsic[:, :3].T, atol=1e-6)
            intrinsic = np.array(recording.at(entity, "Pinhole:image_from_camera")[step][0]).reshape(3, 3).T
            np.testing.assert_allclose(intrinsic, predictions["intrinsic"][step, camera])


def test_images_are_uint8_rgb_frames_and_depth_is_zero_on_padding(tracked):
    predictions, _, recording = tracked
    step, camera = 1, 0
    image = np.array(recording.at(f"/world/camera{camera}/image", "Image:buffer")[step][0], dtype=np.uint8)
    frame = np.round(predictions["images"][step, camera].transpose(1, 2, 0) * 255).astype(np.uint8)
    np.testing.assert_array_equal(image.reshape(HEIGHT, WIDTH, 3), frame)
    depth = depth_of(recording.at(f"/world/camera{camera}/depth", "DepthImage:buffer")[step][0]).reshape(HEIGHT, WIDTH)
    assert recording.at(f"/world/camera{camera}/depth", "DepthImage:format")[step][0]["channel_datatype"] == F32
    assert recording.at(f"/world/camera{camera}/depth", "DepthImage:meter")[step] == [1.0]
    valid = predictions["valid_mask"][step, camera]
    assert (depth[~valid] == 0).all() and np.allclose(depth[valid], 3.0)


def test_points_per_step_are_what_select_points_keeps_within_the_budget(tracked):
    predictions, summary, recording = tracked
    selection = select_points(predictions, list(range(STEPS)), PointFilters(), BUDGET, split_budget=True)
    total = 0
    for step in range(STEPS):
        positions = np.array(recording.at("/world/points", "Points3D:positions")[step], dtype=np.float32)
        expected = selection.at_step(step)
        assert 0 < len(positions) <= BUDGET // STEPS
        np.testing.assert_allclose(positions, expected.xyz)
        total += len(positions)
    assert summary.points == total <= BUDGET


def test_points_carry_their_pixels_colours_for_float_and_uint8_images(tracked, tmp_path):
    predictions, _, recording = tracked
    selection = select_points(predictions, list(range(STEPS)), PointFilters(), BUDGET, split_budget=True).at_step(0)
    packed = np.array(recording.at("/world/points", "Points3D:colors")[0], dtype=np.uint32)
    rgb = np.stack([(packed >> 24) & 255, (packed >> 16) & 255, (packed >> 8) & 255], axis=1)
    np.testing.assert_array_equal(rgb, np.round(selection.rgb * 255).astype(np.uint32))
    as_bytes = {**predictions, "images": np.round(predictions["images"] * 255).astype(np.uint8)}
    write_recording(tmp_path / "uint8.rrd", as_bytes, PointFilters(), BUDGET)
    assert read_back(tmp_path / "uint8.rrd").at("/world/points", "Points3D:colors")[0] == packed.tolist()


def test_tracks_are_drawn_in_3d_and_on_each_image(tracked):
    predictions, summary, recording = tracked
    assert summary.tracks == TRACKS
    for step in range(STEPS):
        points = recording.at("/world/tracks/points", "Points3D:positions")[step]
        world, vis = predictions["track_world_points"][step], predictions["vis"][step]
        assert len(points) == np.count_nonzero(np.isfinite(world).all(-1) & (vis >= MIN_VISIBILITY))
        for camera in range(CAMERAS):
            pixels = np.array(recording.at(f"/world/camera{camera}/tracks", "Points2D:positions")[step])
            assert len(pixels) == TRACKS - 1                                  # track 3 is off the image
            np.testing.assert_allclose(pixels, predictions["track"][step, camera, :3])
            alpha = np.array(recording.at(f"/world/camera{camera}/tracks", "Points2D:colors")[step]) & 255
            assert (alpha[1] < 255) == (step == 1) and (alpha[[0, 2]] == 255).all()  # hidden: faded
    assert recording.at("/world/tracks/trails", "LineStrips3D:strips")[0] == []   # one vertex is no line
    final = recording.at("/world/tracks/trails", "LineStrips3D:strips")[STEPS - 1]
    # one line per (track, camera): track 1, hidden at step 1, leaves two lone vertices per camera (no line);
    # track 2 in camera 0, without a point at step 2, keeps a line over steps 0-1
    assert sorted(len(strip) for strip in final) == [2] + [STEPS] * 5


def test_no_tracks_no_track_entities(tmp_path):
    path = tmp_path / "recording.rrd"
    summary = write_recording(path, fake_predictions(steps=STEPS, cameras=CAMERAS), point_budget=100)
    assert summary.tracks == 0
    assert not [entity for entity in read_back(path).values if "tracks" in entity]


def test_a_non_finite_camera_is_left_out_with_a_note_and_nothing_non_finite_is_logged(tmp_path):
    predictions = with_tracks(fake_predictions(steps=STEPS, cameras=CAMERAS, height=HEIGHT, width=WIDTH))
    predictions["extrinsic"][1, 0, 0, 3] = np.nan
    predictions["intrinsic"][2, 1, 0, 0] = np.inf
    predictions["world_points"][0, 1, 5:9] = np.nan
    predictions["depth"][0, 0, 3:6] = np.inf
    predictions["images"][0, 0, :, 0, 0] = np.nan
    path = tmp_path / "recording.rrd"
    summary = write_recording(path, predictions, PointFilters(), BUDGET)
    assert summary.notes == [
        "time step 1, camera 0 left out of the Rerun recording: its pose is not finite",
        "time step 2, camera 1 left out of the Rerun recording: its intrinsics are not finite"]
    recording = read_back(path)
    assert recording.steps("/world/camera0", "Transform3D:translation") == {0, 2}
    assert recording.steps("/world/camera0/image", "Image:buffer") == {0, 2}
    assert recording.steps("/world/camera1", "Pinhole:image_from_camera") == {0, 1}
    assert recording.steps("/world/camera0", "Clear:is_recursive") == {1}   # no stale pose or image there
    assert recording.steps("/world/camera1", "Clear:is_recursive") == {2}
    depth = depth_of(recording.at("/world/camera0/depth", "DepthImage:buffer")[0][0])
    assert np.isfinite(depth).all() and (depth.reshape(HEIGHT, WIDTH)[3:6] == 0).all()
    floats = [leaf for column in recording.columns for leaf in leaf_values(column) if pa.types.is_floating(leaf.type)]
    assert floats and all(np.isfinite(leaf.to_numpy(zero_copy_only=False)).all() for leaf in floats)
    for entity in recording.values:
        if entity.endswith("/depth"):
            for value in recording.at(entity, "DepthImage:buffer").values():
                assert np.isfinite(depth_of(value[0])).all()


def test_the_time_timeline_is_left_out_with_a_note_when_times_are_not_finite(tmp_path):
    predictions = fake_predictions(steps=STEPS, cameras=1)
    predictions["times"] = np.array([0.0, np.nan, 1.0])
    summary = write_recording(tmp_path / "recording.rrd", predictions, point_budget=50)
    assert "time" not in read_back(tmp_path / "recording.rrd").timelines
    assert len(summary.notes) == 1 and "`time` timeline" in summary.notes[0]


def test_two_recordings_written_in_parallel_threads_are_complete_and_separate(tmp_path):
    runs = {"a": fake_predictions(steps=3, cameras=2, seed=1), "b": fake_predictions(steps=2, cameras=3, seed=2)}
    start, errors = threading.Barrier(len(runs)), []

    def write(name: str) -> None:
        """One recording, started at the same moment as the other."""
        try:
            start.wait()
            write_recording(tmp_path / f"{name}.rrd", runs[name], point_budget=400, application_id=f"app-{name}")
        except BaseException as error:  # noqa: BLE001 - reported below, on the test's thread
            errors.append(error)

    threads = [threading.Thread(target=write, args=(name,)) for name in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    recordings = {name: read_back(tmp_path / f"{name}.rrd") for name in runs}
    assert recordings["a"].recording_id != recordings["b"].recording_id
    for name, predictions in runs.items():
        recording = recordings[name]
        steps, cameras = predictions["extrinsic"].shape[:2]
        assert recording.application_id == f"app-{name}"
        assert {entity for entity in recording.values if entity.startswith("/world/camera")} == {
            f"/world/camera{n}{part}" for n in range(cameras) for part in ("", "/image", "/depth")}
        for n in range(cameras):
            assert recording.steps(f"/world/camera{n}/image", "Image:buffer") == set(range(steps))
        selection = select_points(predictions, list(range(steps)), PointFilters(), 400, split_budget=True)
        for step in range(steps):
            np.testing.assert_allclose(np.array(recording.at("/world/points", "Points3D:positions")[step],
                                                dtype=np.float32), selection.at_step(step).xyz)


def test_a_failed_write_leaves_no_half_file(tmp_path):
    predictions = fake_predictions(steps=STEPS, cameras=CAMERAS)
    predictions["depth"] = predictions["depth"][:1]             # time step 1 has no depth: IndexError mid-way
    path = tmp_path / "recording.rrd"
    with pytest.raises(IndexError):
        write_recording(path, predictions, point_budget=100)
    assert not path.exists()


def test_the_module_imports_and_names_the_install_without_rerun(monkeypatch, tmp_path):
    import vggt_mv.exports as package

    assert rerun_missing() is None
    monkeypatch.setattr(package, "rerun_recording", sys.modules[MODULE])  # put back as it was afterwards
    monkeypatch.setitem(sys.modules, "rerun", None)             # `import rerun` now raises ImportError
    monkeypatch.delitem(sys.modules, MODULE)
    fresh = importlib.import_module(MODULE)
    hint = fresh.rerun_missing()
    assert hint == INSTALL_HINT and "\n" not in hint and "pip install 'vggt-mv[rerun]'" in hint
    with pytest.raises(ImportError, match=r"vggt-mv\[rerun\]"):
        fresh.write_recording(tmp_path / "recording.rrd", fake_predictions())
    assert not (tmp_path / "recording.rrd").exists()
