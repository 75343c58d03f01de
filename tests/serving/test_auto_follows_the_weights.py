"""`auto` attention follows what the served weights were trained for, and the plan, the status and the Weights
tab say which mode it chose and why."""

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv.io.examples import list_examples
from vggt_mv.serving import reconstruct_tab, weights_tab
from vggt_mv.serving.app_state import AppState
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.reconstruct_tab import DisplayChoices
from vggt_mv.serving.settings import ServeSettings
from vggt_mv.weights import build_and_load
from vggt_mv.weights.checkpoint_writer import save_checkpoint

MASK_HEAD = "aggregator.spatial_mask_head."


def plain_vggt_checkpoint(folder):
    """A VGGT-layout file: every VGGT key, none of VGGT_MV's extension tensors."""
    return write_safetensors(folder / "vggt.safetensors",
                             {k: v for k, v in tiny_state().items() if not k.startswith(MASK_HEAD)})


def multi_view_checkpoint(folder):
    """What a VGGT_MV training run writes: save_checkpoint with the mode it trained."""
    model, _ = build_and_load(load_served_model(ServeSettings(checkpoint=None, preset="tiny")).config,
                              checkpoint=write_safetensors(folder / "start.safetensors", tiny_state(seed=2)))
    return save_checkpoint(model, folder / "trained.safetensors", "multi")


def test_auto_runs_global_for_plain_vggt_weights_and_the_plan_and_status_say_why(tmp_path):
    served = load_served_model(ServeSettings(checkpoint=str(plain_vggt_checkpoint(tmp_path)), preset="tiny"))
    state = AppState(served, tmp_path / "sessions")
    example = list_examples()[0].name
    plan = reconstruct_tab.describe_plan(state, None, example, 1)
    assert "- Attention: auto chose global for 3 cameras: " in plan and "plain VGGT checkpoint" in plan
    *_, status, key = reconstruct_tab.run(state, None, example, 1, 0.0, 1.0, "", "auto",
                                          DisplayChoices(point_budget=2000), "s")
    assert "attention global)" in status and "auto chose global for 3 cameras" in status
    assert state.runs.get(key).mode.mode == "global"
    *_, status, _ = reconstruct_tab.run(state, None, example, 1, 0.0, 1.0, "", "multi",
                                        DisplayChoices(point_budget=2000), "s")
    assert "attention multi)" in status and "multi, as chosen (the weights were trained for global)" in status
    assert "**Trained for:** global attention" in weights_tab.served_view(served).totals


def test_auto_runs_multi_for_weights_saved_by_save_checkpoint_with_multi_view_training(tmp_path):
    served = load_served_model(ServeSettings(checkpoint=str(multi_view_checkpoint(tmp_path)), preset="tiny"))
    state = AppState(served, tmp_path / "sessions")
    example = list_examples()[0].name
    assert "- Attention: auto chose multi for 3 cameras" in reconstruct_tab.describe_plan(state, None, example, 1)
    *_, status, key = reconstruct_tab.run(state, None, example, 1, 0.0, 1.0, "", "auto",
                                          DisplayChoices(point_budget=2000), "s")
    assert "attention multi)" in status and state.runs.get(key).mode.mode == "multi"
    assert "**Trained for:** multi attention" in weights_tab.served_view(served).totals


def test_a_load_in_the_weights_tab_changes_what_auto_chooses(tmp_path):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    state = AppState(served, tmp_path / "sessions")
    example = list_examples()[0].name
    assert "auto chose global" in reconstruct_tab.describe_plan(state, None, example, 1)
    assert "**Trained for:** nothing (random weights)" in weights_tab.served_view(served).totals
    trained = multi_view_checkpoint(tmp_path)
    view = weights_tab.inspect_sources(served, [weights_tab.SourceRequest("checkpoint", trained.name)], tmp_path,
                                       apply=True, allow_apply=True)
    assert "**Trained for:** multi attention" in view.totals
    assert "auto chose multi" in reconstruct_tab.describe_plan(state, None, example, 1)
