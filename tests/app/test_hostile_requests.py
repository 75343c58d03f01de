"""The real app against hostile clients: session ids as paths, out-of-range fields, files it never received."""

import http.client
import json
import math
import time
import urllib.parse
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.support.app_server import launched_app
from tests.support.videos import write_video, write_with_container
from vggt_mv.io.examples import list_examples
from vggt_mv.serving.reconstruct_tab import session_folder_name

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def temp_root(tmp_path_factory):
    """A temp folder holding the app's sessions root, Gradio's cache and sentinels that must survive."""
    root = tmp_path_factory.mktemp("served")
    (root / "sentinel.txt").write_text("keep me")
    (root / "sentinel-folder").mkdir()
    (root / "sentinel-folder" / "inside.txt").write_text("keep me too")
    return root


@pytest.fixture(scope="module")
def app(temp_root):
    environment = {"VGGT_MV_SESSIONS_DIR": str(temp_root / "sessions"), "GRADIO_TEMP_DIR": str(temp_root / "gradio"),
                   "GRADIO_HEARTBEAT_INTERVAL": "1"}
    with launched_app("--preset", "tiny", "--checkpoint", "none", env=environment) as live:
        yield live


def sentinels_intact(root: Path) -> bool:
    """The files beside the sessions root are untouched."""
    return ((root / "sentinel.txt").is_file() and (root / "sentinel.txt").read_text() == "keep me"
            and (root / "sentinel-folder" / "inside.txt").is_file())


def connection(app) -> http.client.HTTPConnection:
    """A raw HTTP connection: paths go out exactly as written (no '..' normalisation)."""
    return http.client.HTTPConnection("127.0.0.1", urllib.parse.urlsplit(app.url).port, timeout=30)


def open_and_drop_heartbeat(app, session_hash: str) -> None:
    """What a browser tab does when it closes: the app then runs its unload handler for that session."""
    link = connection(app)
    link.request("GET", f"/gradio_api/heartbeat/{session_hash}")
    response = link.getresponse()
    response.read(10)
    link.close()


def fn_index(app, api_name: str) -> int:
    """The dependency index of a named endpoint, from the app's config."""
    link = connection(app)
    link.request("GET", "/config")
    config = json.loads(link.getresponse().read())
    return next(index for index, dependency in enumerate(config["dependencies"])
                if dependency.get("api_name") == api_name)


def raw_predict(app, api_name: str, data: list, session_hash: str = "hostile-client") -> dict:
    """Join the queue with a hand-made payload and read the event stream to its end: the final message."""
    link = connection(app)
    body = json.dumps({"data": data, "fn_index": fn_index(app, api_name), "session_hash": session_hash,
                       "event_data": None, "trigger_id": None})
    link.request("POST", "/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    joined = link.getresponse()
    answer = joined.read()
    if joined.status != 200:
        return {"msg": "refused at join", "status": joined.status, "detail": answer.decode()}
    link.request("GET", f"/gradio_api/queue/data?session_hash={urllib.parse.quote(session_hash, safe='')}")
    stream = link.getresponse()
    for line in stream:
        if line.startswith(b"data:"):
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                link.close()
                return message
    raise AssertionError("the event stream ended without a result")


def example_request(**changes) -> list:
    """A good /reconstruct payload (the first example, T=1), with some fields replaced: every input, in order."""
    fields = dict(videos=None, example=list_examples()[0].name, frames_per_camera=1, window_start=0.0,
                  window_end=1.0, offsets="", mode="auto", color_by="rgb", conf_percentile=25.0, point_budget=20_000,
                  player_mode="step", depth_edges=True, max_dynamic=1.0, query_points=None, resize="fit")
    fields.update(changes)
    return list(fields.values())


def error_of(message: dict) -> str:
    """The error text a client is shown."""
    assert message.get("success") is False, message
    return message["output"]["error"]


def still_serves(app) -> None:
    """A good request right after a hostile one succeeds."""
    message = raw_predict(app, "reconstruct", example_request(), session_hash=f"good-{time.monotonic_ns()}")
    assert message.get("success") is True, message


def wait_until_gone(path: Path, seconds: float = 15.0) -> bool:
    """True once the path no longer exists (the app's unload handler ran)."""
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not path.exists()


def test_a_closed_heartbeat_for_session_dot_dot_deletes_nothing_outside_the_sessions_root(app, temp_root):
    client = Client(app.url, verbose=False)
    client.predict(example=list_examples()[0].name, frames_per_camera=1, api_name="/reconstruct")
    client.predict(name="cameras", api_name="/download")  # a run writes nothing; its downloads do
    own_folder = temp_root / "sessions" / session_folder_name(client.session_hash)
    assert own_folder.is_dir()
    for hostile in ("..", "%2E%2E", "..%2F..", "%2Ftmp", "."):
        open_and_drop_heartbeat(app, hostile)
    open_and_drop_heartbeat(app, client.session_hash)
    assert wait_until_gone(own_folder), "the unload handler never ran, so this test proves nothing"
    assert sentinels_intact(temp_root) and (temp_root / "sessions").is_dir() and (temp_root / "gradio").is_dir()
    still_serves(app)


@pytest.mark.parametrize("session_hash", ["../../escaped", "../sentinel-folder", "ABSOLUTE"])
def test_a_session_id_that_looks_like_a_path_writes_only_inside_the_sessions_root(app, temp_root, session_hash):
    session_hash = str(temp_root / "absolute-escape") if session_hash == "ABSOLUTE" else session_hash
    before = {path for path in temp_root.rglob("*") if "sessions" not in path.parts and "gradio" not in path.parts}
    message = raw_predict(app, "reconstruct", example_request(), session_hash=session_hash)
    assert message.get("success") is True, message
    client = Client(app.url, verbose=False)
    client.session_hash = session_hash  # the same hostile id, now for a download (the one request that writes)
    client.predict(example=list_examples()[0].name, frames_per_camera=1, api_name="/reconstruct")
    files, _ = client.predict(name="cameras", api_name="/download")
    assert [path.rsplit("/", 1)[-1] for path in files] == ["cameras.json"]
    open_and_drop_heartbeat(app, urllib.parse.quote(session_hash, safe=""))
    time.sleep(2)
    after = {path for path in temp_root.rglob("*") if "sessions" not in path.parts and "gradio" not in path.parts}
    assert after == before and sentinels_intact(temp_root)
    assert not (temp_root.parent / "escaped").exists()


# Gradio itself refuses slider values out of range and unknown choices (its own one-line message); the app
# refuses what passes Gradio (NaN, None, reversed windows, bad offsets).
HOSTILE_FIELDS = {
    "frames 0": (dict(frames_per_camera=0), "less than minimum value 1"),
    "frames 10**9": (dict(frames_per_camera=10 ** 9), "greater than maximum value 128"),
    "frames NaN": (dict(frames_per_camera=math.nan), "frames per camera must be a whole number"),
    "window reversed": (dict(window_start=0.9, window_end=0.1), "window start must be below window end"),
    "window out of range": (dict(window_end=5.0), "greater than maximum value 1"),
    "mode bogus": (dict(mode="bogus"), "'bogus' (type: <class 'str'>) is not in the list of choices"),
    "mode missing": (dict(mode=None), "attention mode must be one of"),
    "sizing bogus": (dict(resize="../../stretch"), "is not in the list of choices"),
    "sizing missing": (dict(resize=None), "frame sizing must be one of fit, crop"),
    "colour bogus": (dict(color_by="bogus"), "'bogus' (type: <class 'str'>) is not in the list of choices"),
    "point budget negative": (dict(point_budget=-1), "less than minimum value 10000"),
    "offset nan": (dict(offsets="nan, 0, 0"), "offsets must be seconds"),
    "offset 1e308": (dict(offsets="1e308, 0, 0"), "offsets must be seconds between -86400 and 86400, got 1e+308"),
    "unknown example": (dict(example="../../etc/passwd"), "is not in the list of choices"),
    "query points NaN": (dict(query_points=[[math.nan, 10]]), "query point 0 is not finite"),
    "query points a string": (dict(query_points="10, 20"), "query points must be a list of [x, y] pairs, got str"),
    "query points strings": (dict(query_points=[["10", "20"]]), "query point 0 must be a pair of numbers"),
    "query points nested garbage": (dict(query_points=[[[1, 2], {"x": [3]}], None]),
                                    "query point 0 must be a pair of numbers"),
    "query points an object": (dict(query_points={"x": 1, "y": 2}), "query points must be a list of [x, y] pairs"),
    "query points 10,000": (dict(query_points=[[10, 10]] * 10_000), "10000 query points: at most 256"),
    "query point outside the frame": (dict(query_points=[[10, 10], [900, 10]]),
                                      "query point 1 [900, 10] lies outside the 518x294 reference frame"),
}

# Refused by Gradio before the app's code runs; the reason stays on the server (show_error is off so that no
# internal exception text ever reaches a client), the client sees a failed request.
UNREADABLE_VIDEOS = {
    "videos not files": [1, "two", None],
    "server file never uploaded": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}],
    "server file as a plain path": ["/etc/passwd"],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FIELDS))
def test_a_hostile_field_gets_one_clear_error_and_the_server_keeps_serving(app, case):
    changes, phrase = HOSTILE_FIELDS[case]
    error = error_of(raw_predict(app, "reconstruct", example_request(**changes)))
    assert phrase in error and "\n" not in error and len(error) < 200
    still_serves(app)


@pytest.mark.parametrize("case", sorted(UNREADABLE_VIDEOS))
def test_videos_the_client_never_uploaded_are_refused_unread(app, case):
    message = raw_predict(app, "reconstruct", example_request(videos=UNREADABLE_VIDEOS[case]))
    assert message.get("success") is False and "root:" not in json.dumps(message)
    still_serves(app)


def test_preset_huge_through_the_weights_api_is_one_clear_error(app):
    message = raw_predict(app, "inspect_weights", ["", "", "decoder", "huge", True])
    assert "huge" in error_of(message) and "\n" not in error_of(message)
    still_serves(app)


def test_user_errors_show_no_server_path_and_log_one_line_each(app, tmp_path, temp_root):
    client = Client(app.url, verbose=False)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not really a video")
    log_before = app.log_text()
    with pytest.raises(Exception) as raised:
        client.predict(videos=[handle_file(str(broken))], api_name="/reconstruct")
    shown = str(raised.value)
    assert "broken.mp4: not a readable video" in shown and str(temp_root) not in shown and "/gradio/" not in shown
    with pytest.raises(Exception):
        client.predict(example=list_examples()[0].name, offsets="nan,0,0", api_name="/reconstruct")
    time.sleep(1)
    logged = app.log_text()[len(log_before):]
    refusals = [line for line in logged.splitlines() if "refused:" in line]
    assert len(refusals) == 2 and "Traceback" not in logged


def test_mpeg_ts_and_gif_uploads_pass_the_file_type_filter_and_reconstruct(app, tmp_path):
    client = Client(app.url, verbose=False)
    for video in (write_with_container(tmp_path / "cam.ts", "mpegts", codec="mpeg2video"),
                  write_with_container(tmp_path / "cam.gif", "gif", codec="gif", pix_fmt="rgb8"),
                  write_video(tmp_path / "cam.MOV", frames=6)):
        *_, status = client.predict(videos=[handle_file(str(video))], frames_per_camera=2, point_budget=10_000,
                                    api_name="/reconstruct")
        assert "x 1 camera**" in status


def test_a_file_type_outside_the_list_is_refused_without_the_server_path(app, tmp_path, temp_root):
    client = Client(app.url, verbose=False)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(Exception) as raised:
        client.predict(videos=[handle_file(str(notes))], api_name="/reconstruct")
    assert "Invalid file type" in str(raised.value) and str(temp_root) not in str(raised.value)


def test_good_query_points_through_the_raw_api_are_tracked_and_said_in_the_status(app):
    message = raw_predict(app, "reconstruct", example_request(query_points=[[100, 150], [400.5, 60]]))
    assert message.get("success") is True, message
    status = message["output"]["data"][3]
    assert "Tracks: 2 query points followed through 1 x 3 frames" in status
