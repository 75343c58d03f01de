"""ZeroGPU: durations grow with the run and are capped; without `spaces` functions are left alone."""

import sys
import types

from vggt_mv.serving.gpu import MAX_SECONDS, TRACK_SECONDS, on_gpu, run_duration, track_duration


def test_duration_grows_with_frames_and_cameras_and_is_capped():
    assert run_duration(["a", "b"], None, 4) < run_duration(["a", "b", "c"], None, 8) <= MAX_SECONDS
    assert run_duration(["a"] * 8, None, 32) == MAX_SECONDS


def test_without_spaces_nothing_changes_and_with_it_the_call_is_wrapped(monkeypatch):
    def work(videos=None):
        return "done"

    monkeypatch.setitem(sys.modules, "spaces", None)
    assert on_gpu(None)(work) is work
    requested = {}

    def gpu(duration):
        requested["duration"] = duration
        return lambda function: (lambda *args, **kwargs: ("on gpu", function(*args, **kwargs)))

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    wrapped = on_gpu(None)(work)
    assert wrapped() == ("on gpu", "done") and requested["duration"] is run_duration
    tracks = on_gpu(None, duration=track_duration)(lambda key, points, evt=None: "tracked")
    assert tracks("0123456789abcdef", [[1, 2]]) == ("on gpu", "tracked") and requested["duration"] is track_duration
    assert track_duration("0123456789abcdef", [[1, 2]], object()) == TRACK_SECONDS, "any handler arguments size it"
