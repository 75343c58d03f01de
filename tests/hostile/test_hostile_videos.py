"""Bad videos, generated at test time: each gets one short message (no server path), nothing is left behind,
and the tab still answers a good request afterwards."""

import os
import random
from pathlib import Path

import pytest

from tests.support.videos import write_audio_only, write_png, write_video, write_with_container
from vggt_mv.serving import reconstruct_tab
from vggt_mv.serving.app_state import AppState
from vggt_mv.serving.downloads import prepare_download
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.reconstruct_tab import DisplayChoices, UserFacingError
from vggt_mv.serving.settings import ServeSettings


def good(folder: Path, name: str = "good.mp4", **options) -> Path:
    """A small valid camera video."""
    return write_video(folder / name, frames=6, **options)


def truncated(folder: Path, keep: float) -> Path:
    """A valid mp4 cut after `keep` of its bytes (an interrupted upload)."""
    data = good(folder, "whole.mp4").read_bytes()
    path = folder / "cut.mp4"
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def corrupt_middle(folder: Path) -> Path:
    """A valid mp4 whose middle third is overwritten with noise."""
    data = bytearray(good(folder, "corrupt.mp4").read_bytes())
    third = len(data) // 3
    data[third: 2 * third] = os.urandom(third)
    path = folder / "corrupt.mp4"
    path.write_bytes(bytes(data))
    return path


def noise(size: int) -> bytes:
    """Seeded random bytes: fresh os.urandom bytes were, about once in a hundred, a container FFmpeg opens (then the
    message is "has no video stream", and the test expecting "not a readable video" failed at random)."""
    return random.Random(size).randbytes(size)


def written(folder: Path, name: str, content: bytes) -> Path:
    """A file with the given bytes."""
    path = folder / name
    path.write_bytes(content)
    return path


def folder_named(folder: Path, name: str) -> Path:
    """A directory where a video was expected."""
    (folder / name).mkdir()
    return folder / name


def symlink_to(folder: Path, target: str) -> Path:
    """cam.mp4 -> target (a link smuggled in as a camera)."""
    link = folder / "cam.mp4"
    link.symlink_to(target)
    return link


def huge_declared_size(folder: Path) -> Path:
    """A YUV4MPEG header claiming 100000x100000 frames, followed by almost nothing."""
    return written(folder, "huge.y4m", b"YUV4MPEG2 W100000 H100000 F10:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(100))


# name -> (make the cameras in a folder, a phrase the one-line message must contain)
REFUSED = {
    "empty file": (lambda d: [written(d, "empty.mp4", b"")], "is empty"),
    "random bytes": (lambda d: [written(d, "noise.mp4", noise(4096))], "not a readable video"),
    "text file": (lambda d: [written(d, "notes.mp4", b"just some notes\n" * 50)], "not a readable video"),
    "first half of an mp4": (lambda d: [truncated(d, 0.5)], "not a readable video"),
    "header only": (lambda d: [truncated(d, 0.02)], "not a readable video"),
    "one byte": (lambda d: [written(d, "one.mp4", b"\x00")], "not a readable video"),
    "audio only": (lambda d: [write_audio_only(d / "voice.mp4")], "has no video stream"),
    "png renamed .mp4": (lambda d: [write_png(d / "photo.mp4")], "still image"),
    "png": (lambda d: [write_png(d / "photo.png")], "still image"),
    "a directory": (lambda d: [folder_named(d, "folder.mp4")], "not a file"),
    "missing file": (lambda d: [d / "gone.mp4"], "not a file"),
    "symlink to /etc/passwd": (lambda d: [symlink_to(d, "/etc/passwd")], "not a readable video"),
    "newline and unicode in the name": (lambda d: [written(d, "cam\nera ☃ \u202e.mp4", noise(512))],
                                        "not a readable video"),
    "huge declared frame size": (lambda d: [huge_declared_size(d)], "huge.y4m: not a readable video"),
    "no common time range": (lambda d: [good(d, "early.mp4"),
                                        write_video(d / "late.mp4", frames=6, times=[10 + k / 10 for k in range(6)])],
                             "no common time range"),
    "nine cameras": (lambda d: [good(d, f"cam{k}.mp4") for k in range(9)], "at most 8"),
    "one good, one broken": (lambda d: [good(d), written(d, "broken.mp4", noise(2048))], "broken.mp4"),
    "videos not a list": (lambda d: str(good(d)), "list of uploaded files"),
}

# Unusual but real videos: these must reconstruct.
ACCEPTED = {
    "gif": lambda d: [write_with_container(d / "loop.gif", "gif", codec="gif", pix_fmt="rgb8")],
    "mpeg-ts": lambda d: [write_with_container(d / "broadcast.ts", "mpegts", codec="mpeg2video")],
    "h264 in mpeg-ts (.mts)": lambda d: [write_with_container(d / "camcorder.mts", "mpegts")],
    "vp9 in a .mp4 name": lambda d: [write_with_container(d / "webm.mp4", "matroska", codec="libvpx-vp9")],
    "odd size 63x47": lambda d: [write_with_container(d / "odd.mkv", "matroska", pix_fmt="yuv444p", width=63,
                                                      height=47)],
    "one pixel wide": lambda d: [write_with_container(d / "line.mkv", "matroska", pix_fmt="yuv444p", width=1,
                                                      height=48)],
    "one frame": lambda d: [write_video(d / "still.mp4", frames=1)],
    "tall 16x2000": lambda d: [write_video(d / "tall.mp4", frames=4, width=16, height=2000)],
    "wide 2000x16": lambda d: [write_video(d / "wide.mp4", frames=4, width=2000, height=16)],
}


@pytest.fixture(scope="module")
def served():
    return load_served_model(ServeSettings(checkpoint=None, preset="tiny"))


@pytest.fixture
def state(served, tmp_path):
    """What the app keeps, new for each test, with its session folders under the test's tmp folder."""
    app_state = AppState(served, tmp_path / "sessions")
    yield app_state
    served.replaced.remove(app_state.forget_runs)


@pytest.fixture
def sessions(state):
    return state.sessions_root


def reconstruct(state, videos, session="hostile"):
    """One request through the tab function, as the app makes it (T=2, uploads only)."""
    return reconstruct_tab.run(state, videos, None, 2, 0.0, 1.0, "", "auto", DisplayChoices(point_budget=2000),
                               session)


def files_under(folder: Path) -> list[Path]:
    """Every file below a folder (none when it does not exist)."""
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_video_gets_one_short_message_and_leaves_nothing_behind(case, state, sessions, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    make, phrase = REFUSED[case]
    videos = make(uploads)
    with pytest.raises(UserFacingError) as refused:
        reconstruct(state, videos)
    message = str(refused.value)
    assert phrase in message
    assert "\n" not in message and len(message) < 300
    assert str(tmp_path) not in message and "/etc/passwd" not in message
    assert files_under(sessions) == []


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_an_unusual_but_real_video_is_reconstructed(case, state, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    figure, strip, downloads, status, key = reconstruct(state, ACCEPTED[case](uploads))
    assert "x 1 camera**" in status and strip and strip[0][0].size > 0
    downloads, status = prepare_download(state, key, "zip", DisplayChoices(point_budget=2000), False, "hostile")
    assert "ready" in status and all(Path(path).is_file() for path in downloads)


def test_after_every_bad_video_the_tab_still_answers_a_good_request(state, tmp_path):
    for index, case in enumerate(sorted(REFUSED)):
        uploads = tmp_path / f"uploads{index}"
        uploads.mkdir()
        with pytest.raises(UserFacingError):
            reconstruct(state, REFUSED[case][0](uploads))
    uploads = tmp_path / "fine"
    uploads.mkdir()
    *_, status, _ = reconstruct(state, [good(uploads, "a.mp4"), good(uploads, "b.mp4")])
    assert "2 time steps x 2 cameras" in status
