"""Start-up: flags and their environment twins, and the offline fallback with its banner."""

import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv.serving.model_store import banner_markdown, load_served_model
from vggt_mv.serving.settings import ServeSettings, parse_settings


def test_flags_override_environment_which_overrides_defaults(monkeypatch):
    assert parse_settings([]).checkpoint == "facebook/VGGT-1B"
    monkeypatch.setenv("VGGT_MV_PRESET", "tiny")
    monkeypatch.setenv("VGGT_MV_PORT", "9000")
    settings = parse_settings(["--port", "9100", "--checkpoint", "none"])
    assert settings.preset == "tiny" and settings.port == 9100 and settings.checkpoint is None


def test_on_a_space_the_app_listens_where_the_space_tells_gradio_to(monkeypatch):
    for variable in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "VGGT_MV_HOST", "VGGT_MV_PORT"):
        monkeypatch.delenv(variable, raising=False)
    assert parse_settings([]).host == "127.0.0.1", "a laptop's app is not exposed on the network"
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert (parse_settings([]).host, parse_settings([]).port) == ("0.0.0.0", 7861)
    monkeypatch.setenv("VGGT_MV_HOST", "127.0.0.2")
    assert parse_settings([]).host == "127.0.0.2" and parse_settings(["--port", "9000"]).port == 9000


def test_unreachable_weights_fall_back_to_tiny_random_with_a_banner(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    served = load_served_model(ServeSettings())
    assert served.preset == "tiny" and served.random_share == 1.0
    assert "RANDOM" in served.banner and "facebook/VGGT-1B" in served.banner
    shown = banner_markdown(served)
    summary = shown.split("<summary>")[1].split("</summary>")[0]
    assert "RANDOM" in summary and "\n" not in summary and "facebook/VGGT-1B" not in summary
    assert shown.startswith("<details") and html_unescaped(shown.split("<pre")[1]).count(served.fallback_error) == 1


def html_unescaped(text: str) -> str:
    import html

    return html.unescape(text)


def test_a_banner_without_a_fallback_reason_is_one_bold_line_and_no_banner_is_nothing():
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    assert banner_markdown(served).startswith("⚠️ **No weights were requested") and "<details" not in banner_markdown(
        served)
    served.banner = None
    assert banner_markdown(served) == ""


def test_a_mostly_random_model_gets_a_banner_and_a_loaded_one_does_not(tmp_path):
    state = tiny_state()
    full = write_safetensors(tmp_path / "full.safetensors", state)
    partial = write_safetensors(tmp_path / "partial.safetensors",
                                {k: v for k, v in state.items() if k.startswith("aggregator.frame_blocks.0.")})
    loaded = load_served_model(ServeSettings(checkpoint=str(full), preset="tiny"))
    assert loaded.banner is None and loaded.random_share == 0.0 and loaded.fallback_error is None
    assert isinstance(loaded.model.aggregator.camera_token, torch.nn.Parameter)
    mostly_random = load_served_model(ServeSettings(checkpoint=str(partial), preset="tiny"))
    assert mostly_random.random_share > 0.9 and "Weights tab" in mostly_random.banner


def test_replacing_the_served_model_refreshes_report_banner_and_recipe_and_forgets_cached_runs(tmp_path):
    from vggt_mv.pipeline import Reconstruction
    from vggt_mv.serving.app_state import AppState
    from vggt_mv.weights import build_and_load
    from vggt_mv.weights.source_specs import SourceSpec

    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    state = AppState(served, tmp_path / "sessions")
    old_tag, old_recipe = served.tag, served.recipe
    state.runs.put(Reconstruction({}, None, None, {}, "a run of the old model", None), old_tag, None)
    state.session_tracks.put("session", "a run of the old model", {"track": object()})
    path = write_safetensors(tmp_path / "t.safetensors", tiny_state())
    model, report = build_and_load(served.config, checkpoint=path)
    served.replace_model(model, report, mostly_random_share=0.5, sources=(SourceSpec("finetune", str(path)),))
    assert served.model is model and served.report is report and served.banner is None
    assert served.tag != old_tag and served.recipe.version == old_recipe.version + 1
    assert served.recipe.sources == (SourceSpec("finetune", str(path)),), "a GPU worker can rebuild it from this"
    assert state.runs.get("a run of the old model") is None
    assert state.session_tracks.get("session", "a run of the old model") == {}


def test_what_the_weights_were_trained_for_is_known_at_start_up(tmp_path):
    from vggt_mv.weights.checkpoint_writer import save_checkpoint

    plain = load_served_model(ServeSettings(checkpoint=str(write_safetensors(tmp_path / "vggt.safetensors", {
        k: v for k, v in tiny_state().items() if not k.startswith("aggregator.spatial_mask_head.")})), preset="tiny"))
    assert plain.trained.mode == "global" and "plain VGGT" in plain.trained.reason
    trained = save_checkpoint(plain.model, tmp_path / "mv.safetensors", "multi")
    assert load_served_model(ServeSettings(checkpoint=str(trained), preset="tiny")).trained.mode == "multi"
    assert load_served_model(ServeSettings(checkpoint=None, preset="tiny")).trained.mode is None


def test_on_zerogpu_the_model_is_served_on_cuda_without_asking_torch(monkeypatch):
    from vggt_mv.serving.model_store import startup_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: (_ for _ in ()).throw(AssertionError("asked CUDA")))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert startup_device(ServeSettings(device="auto")) == torch.device("cuda")
    assert startup_device(ServeSettings(device="cpu")) == torch.device("cpu")
