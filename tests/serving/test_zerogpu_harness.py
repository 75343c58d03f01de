"""The ZeroGPU harness itself: the real `spaces` package forks, pickles, reuses workers and asks a scheduler, here
for a toy app (tests/support/zerogpu_toy_app.py) driven through gradio_client."""

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.support.app_server import zerogpu_app
from tests.support.zerogpu_scheduler import DurationTooLong, Grant, NoGpu, QuotaExceeded, zerogpu_scheduler

TOY_APP = "tests/support/zerogpu_toy_app.py"
GPU_SECONDS = 17  # the toy's @spaces.GPU(duration=...)
ROOT = Path(__file__).resolve().parents[2]
# In a fresh interpreter (the guard patches torch for good): a CUDA tensor made on a thread, a cache flush on the
# main thread, then a memory query in a forked child; prints what each raised.
GUARD_PROBE = """
import os, sys, threading
from pathlib import Path
import torch
from tests.support.zerogpu_launch import install_cuda_guard
install_cuda_guard(Path(sys.argv[1]))
def outcome(call):
    try:
        call()
        return "ok"
    except BaseException as error:
        return type(error).__name__ + ": " + str(error)
results = {}
thread = threading.Thread(target=lambda: results.update(thread=outcome(lambda: torch.zeros(1, device="cuda"))))
thread.start()
thread.join()
print("thread", results["thread"])
print("main", outcome(torch.cuda.empty_cache))
sys.stdout.flush()
if (pid := os.fork()) == 0:
    print("child", outcome(torch.cuda.mem_get_info))
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.fixture(scope="module")
def app():
    with zerogpu_app(script=TOY_APP) as launched:
        yield launched


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def updates_of(job) -> list:
    """Every status and output update of a submitted job, in arrival order."""
    async def collect():
        return [update async for update in job]
    return asyncio.run(collect())


def ip_token(payload: dict) -> str:
    """An X-IP-Token as the Hugging Face proxy sends it: a JWT, of which spaces reads only the payload."""
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"e30.{encoded}.signature"


def test_the_stand_in_answers_what_it_is_told_refuses_unknown_tokens_and_stops_with_its_block():
    with zerogpu_scheduler() as scheduler:
        assert scheduler.url.startswith("http://127.0.0.1:")
        scheduler.answer_next(Grant(idle=False), QuotaExceeded(left=4, wait=30.0), NoGpu(queued=False))
        with httpx.Client(base_url=scheduler.url) as http:
            granted = http.post("/schedule", params={"durationSeconds": 9}).json()
            quota = http.post("/schedule")
            no_gpu = http.post("/schedule")
            assert http.post("/allow", params={"allowToken": "never-granted", "pid": 5}).status_code == 404
            assert http.post("/allow", params={"allowToken": granted["allowToken"], "pid": 5}).status_code == 200
            releases = [http.post("/release", params={"allowToken": granted["allowToken"], "fail": False})
                        for _ in range(2)]
            assert http.post("/schedule").json()["idle"] is True, "after the script, a reusable grant"
        url = scheduler.url
    assert granted["idle"] is False and set(granted) == {"idle", "nvidiaIndex", "nvidiaUUID", "allowToken"}
    assert (quota.status_code, quota.json()) == (429, {"left": 4, "wait": 30.0})
    assert no_gpu.status_code == 503
    assert [release.status_code for release in releases] == [200, 404], "a token is released once"
    assert [request.endpoint for request in scheduler.requests()] == ["/schedule"] * 3 + ["/allow"] * 2 + [
        "/release"] * 2 + ["/schedule"]
    assert scheduler.requests("/schedule")[0].duration == 9 and not scheduler.requests("/release")[0].fail
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/schedule", timeout=2)


def test_the_cuda_guard_refuses_and_records_the_guarded_process_and_lets_its_forks_through(tmp_path):
    log = tmp_path / "guard.jsonl"
    probe = subprocess.run([sys.executable, "-c", GUARD_PROBE, str(log)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    said = dict(line.split(" ", 1) for line in probe.stdout.splitlines())
    assert said["thread"].startswith("RuntimeError: CUDA guard: torch.cuda._lazy_init called"), probe.stderr
    assert said["main"].startswith("RuntimeError: CUDA guard: torch.cuda.empty_cache called")
    assert said["child"] == "AssertionError: Torch not compiled with CUDA enabled", "a fork reaches torch itself"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [record["call"] for record in records] == ["torch.cuda._lazy_init", "torch.cuda.empty_cache"]
    assert records[0]["thread"] != "MainThread" and records[1]["stack"][-1].endswith("in outcome")


@pytest.mark.slow
def test_a_gpu_call_runs_in_a_forked_worker_whose_state_never_reaches_the_main_process(app, client):
    before = client.predict(api_name="/main_process_view")
    app.scheduler.answer_next(Grant(idle=False))
    mark = app.scheduler.request_count()
    stored = client.predict(key="colour", value="red", api_name="/remember")
    after = client.predict(api_name="/main_process_view")
    assert before["pid"] == after["pid"] == app.pid
    assert stored["pid"] != app.pid and stored["state"] == {"colour": "red"}
    assert before["state"] == after["state"] == {}, "the worker's STATE is its own copy"
    allowed = [int(request.params["pid"]) for request in app.scheduler.requests("/allow", since=mark)]
    assert allowed == [stored["pid"]], "spaces has the scheduler allow the fresh worker's pid"


@pytest.mark.slow
def test_the_worker_is_reused_while_the_scheduler_says_idle_and_forked_anew_when_not(app, client):
    first = client.predict(key="a", value="1", api_name="/remember")
    mark = app.scheduler.request_count()
    second = client.predict(key="b", value="2", api_name="/remember")
    assert second["pid"] == first["pid"] and second["state"] == {**first["state"], "b": "2"}
    assert app.scheduler.requests("/allow", since=mark) == [], "a reused worker is not allowed again"
    app.scheduler.answer_next(Grant(idle=False))
    mark = app.scheduler.request_count()
    third = client.predict(key="c", value="3", api_name="/remember")
    assert third["pid"] not in (first["pid"], app.pid)
    assert third["state"] == {"c": "3"}, "a new worker forks from the main process, not from the last worker"
    assert [int(request.params["pid"]) for request in app.scheduler.requests("/allow", since=mark)] == [third["pid"]]


@pytest.mark.slow
def test_each_call_schedules_the_duration_its_decorator_asks_and_releases_its_grant(app, client):
    assert len(app.scheduler.requests("/startup-report")) == 1, "spaces reports once, at launch"
    mark = app.scheduler.request_count()
    client.predict(key="d", value="4", api_name="/remember")
    client.predict(count=3, api_name="/count_up")
    schedules = app.scheduler.requests("/schedule", since=mark)
    releases = app.scheduler.requests("/release", since=mark)
    assert [request.duration for request in schedules] == [GPU_SECONDS, 5 + 3], "fixed, then computed from args"
    assert [(request.status, request.fail) for request in releases] == [(200, False)] * 2


@pytest.mark.slow
def test_a_gpu_generator_streams_every_yield_and_its_progress(app, client):
    updates = updates_of(client.submit(count=3, api_name="/count_up"))
    streamed = [update.outputs for update in updates if update.type == "output" and not update.final]
    assert [value["value"] for value in streamed] == [0, 1, 2]
    assert len({value["pid"] for value in streamed}) == 1 and streamed[0]["pid"] != app.pid
    progress = [unit.desc for update in updates if update.type == "status" and update.progress_data
                for unit in update.progress_data]
    assert progress and progress == sorted(progress) and set(progress) <= {"value 0", "value 1", "value 2"}, (
        "the worker's progress is relayed, in order")


@pytest.mark.slow
def test_progress_and_toasts_from_a_gpu_function_reach_the_client(client):
    updates = updates_of(client.submit(message="halfway there", api_name="/tell"))
    assert ("halfway there", "info") in [update.log for update in updates if update.type == "status"]
    progress = [(unit.progress, unit.desc) for update in updates if update.type == "status" and update.progress_data
                for unit in update.progress_data]
    assert (0.5, "halfway") in progress


@pytest.mark.slow
def test_quota_exceeded_reaches_the_client_as_spaces_says_it(app):
    anonymous = Client(app.url, verbose=False)
    visitor = Client(app.url, verbose=False, headers={"X-IP-Token": ip_token({"ip": "192.0.2.1"})})
    app.scheduler.answer_next(QuotaExceeded(left=0, wait=90.0), QuotaExceeded(left=3, wait=90.0), DurationTooLong())
    mark = app.scheduler.request_count()
    with pytest.raises(AppError) as space_limit:
        anonymous.predict(key="e", value="5", api_name="/remember")
    with pytest.raises(AppError) as visitor_limit:
        visitor.predict(key="e", value="5", api_name="/remember")
    with pytest.raises(AppError) as too_long:
        anonymous.predict(key="e", value="5", api_name="/remember")
    assert space_limit.value.title == visitor_limit.value.title == "ZeroGPU quota exceeded"
    assert str(space_limit.value).startswith("Space app has reached its GPU limit.")
    assert str(visitor_limit.value).startswith(f"You have exceeded your ZeroGPU quota ({GPU_SECONDS}s requested "
                                               "vs. 3s left). Try again in 0:01:30.")
    assert too_long.value.title == "ZeroGPU illegal duration"
    assert str(too_long.value).startswith(f"The requested GPU duration ({GPU_SECONDS}s) is larger than the maximum")
    schedules = app.scheduler.requests("/schedule", since=mark)
    assert "token" not in schedules[0].params and schedules[1].params["token"] == ip_token({"ip": "192.0.2.1"})
    assert [request.endpoint for request in app.scheduler.requests(since=mark)] == ["/schedule"] * 3, (
        "a refused call forks no worker and releases nothing")


@pytest.mark.slow
def test_no_gpu_reaches_the_client_as_spaces_says_it_and_a_queued_grant_runs(app, client):
    app.scheduler.answer_next(NoGpu(queued=True), NoGpu(queued=False), Grant(queued=True))
    with pytest.raises(AppError) as after_queueing:
        client.predict(key="f", value="6", api_name="/remember")
    with pytest.raises(AppError) as at_once:
        client.predict(key="f", value="6", api_name="/remember")
    assert (after_queueing.value.title, str(after_queueing.value)) == (
        "ZeroGPU quota exceeded",
        "No GPU was available after 60s. Try re-running outside of examples if it happened after clicking one")
    assert (at_once.value.title, str(at_once.value)) == ("ZeroGPU client error", "No GPU was available")
    assert client.predict(key="f", value="6", api_name="/remember")["state"]["f"] == "6"


@pytest.mark.slow
def test_an_aborted_worker_surfaces_as_gpu_task_aborted_and_the_next_call_forks_a_new_one(app, client):
    mark = app.scheduler.request_count()
    with pytest.raises(AppError) as aborted:
        client.predict(exit_now=True, api_name="/abort_worker")
    assert (aborted.value.title, str(aborted.value)) == ("ZeroGPU worker error", "GPU task aborted")
    assert [request.fail for request in app.scheduler.requests("/release", since=mark)] == [True]
    (allowed,) = app.scheduler.requests("/allow", since=mark)
    alive = client.predict(exit_now=False, api_name="/abort_worker")
    assert alive["pid"] not in (int(allowed.params["pid"]), app.pid), "the dead worker is not reused"


@pytest.mark.slow
def test_a_gr_error_in_the_worker_keeps_its_message_and_any_other_error_only_its_class_name(app, client):
    with pytest.raises(AppError) as refused:
        client.predict(kind="gradio", api_name="/fail")
    with pytest.raises(AppError) as crashed:
        client.predict(kind="value", api_name="/fail")
    assert (refused.value.title, str(refused.value)) == ("Refused", "the frames are too many")
    assert (crashed.value.title, str(crashed.value)) == ("ZeroGPU worker error", "ValueError")
    assert "a detail only the server log should see" in app.log_text(), "the worker's traceback goes to the log"


@pytest.mark.slow
def test_a_gr_request_reaches_the_worker_with_its_headers_and_session(app):
    probing = Client(app.url, verbose=False, headers={"X-Probe": "42"})
    described = probing.predict(api_name="/describe_request")
    assert described["pid"] != app.pid and described["probe"] == "42"
    assert described["session_hash"] == probing.session_hash and described["client_host"] == "127.0.0.1"


@pytest.mark.slow
def test_a_tensor_put_on_cuda_at_start_up_reaches_the_worker_and_is_emptied_in_the_main_process(client):
    worker = client.predict(api_name="/placed_values")
    main = client.predict(api_name="/main_process_view")
    assert (worker["device"], worker["values"]) == ("cpu", [0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    assert worker["larger_sum"] == sum(range(3000)), "the second tensor of the pack is read from its own offset"
    assert (main["placed_device"], main["placed_values"]) == ("cpu", [0.0] * 6), (
        "a handler thread of the main process sees spaces' fake: no device emulation there, data packed away")


@pytest.mark.slow
def test_the_cuda_guard_records_the_main_process_cuda_call_and_nothing_else(app, client):
    client.predict(key="g", value="7", api_name="/remember")
    client.predict(count=2, api_name="/count_up")
    client.predict(api_name="/main_process_view")
    assert client.predict(api_name="/worker_memory")["allocated"] == 0, "workers may call CUDA"
    assert app.cuda_violations() == []
    with pytest.raises(AppError, match="CUDA guard: torch.cuda.mem_get_info called in the ZeroGPU main process"):
        client.predict(api_name="/free_memory")
    (violation,) = app.cuda_violations()
    assert violation["call"] == "torch.cuda.mem_get_info" and violation["pid"] == app.pid
    assert violation["stack"][-1].endswith("in free_memory") and "zerogpu_toy_app.py" in violation["stack"][-1]
