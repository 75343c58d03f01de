"""Progress from inside the model: one call per aggregator layer and per head chunk, in order, ending at total."""

import torch

from tests.model.test_outputs import ScalarReads
from tests.support.models import random_images, tiny_model
from vggt_mv.inference import predict


def record(calls: list):
    return lambda done, total, stage: calls.append((done, total, stage))


def test_progress_arrives_once_per_layer_and_head_chunk_in_order_ending_at_total():
    model = tiny_model()
    calls = []
    with torch.inference_mode():
        model(random_images(3, 2), query_points=torch.tensor([[[3.0, 5.0]]]), frames_chunk_size=4,
              progress=record(calls))
    depth = model.config.depth
    stages = [stage for _, _, stage in calls]
    assert stages[:depth] == [f"aggregator layer {i}/{depth}" for i in range(1, depth + 1)]
    assert stages[depth:] == ["camera head", "depth head frames 1-4 of 6", "depth head frames 5-6 of 6",
                              "world_points head frames 1-4 of 6", "world_points head frames 5-6 of 6", "track head"]
    assert [done for done, _, _ in calls] == list(range(1, len(calls) + 1))
    assert {total for _, total, _ in calls} == {len(calls)}


def test_progress_changes_no_output_and_reads_no_tensor_value():
    model = tiny_model()
    images = random_images(2, 2)
    queries = torch.tensor([[[3.0, 5.0]]])
    with torch.no_grad():
        quiet = model(images, query_points=queries)
        with ScalarReads() as reads:
            reported = model(images, query_points=queries, progress=record([]))
    assert reads.count == 0
    for key in quiet:
        torch.testing.assert_close(reported[key], quiet[key], atol=0, rtol=0)


def test_predict_passes_progress_through():
    calls = []
    predict(tiny_model(), random_images(2, 1)[0], progress=record(calls))
    assert calls and calls[-1][0] == calls[-1][1]
