"""VGGT-MV demo: Gradio UI wiring only; every computation lives in the vggt_mv package."""

from __future__ import annotations

try:  # ZeroGPU asks for `spaces` to be imported before anything touches CUDA; elsewhere it may be absent
    import spaces  # noqa: F401
except ImportError:
    pass

import logging
import sys

import gradio as gr

from vggt_mv.exports.formats import FORMATS, unavailable
from vggt_mv.serving import downloads, reconstruct_tab, weights_tab
from vggt_mv.serving.app_state import AppState
from vggt_mv.serving.memory import limit_malloc_arenas, return_freed_memory
from vggt_mv.serving.model_store import banner_markdown, load_served_model
from vggt_mv.serving.settings import ServeSettings, parse_settings
from vggt_mv.tracking import MAX_QUERY_POINTS
from vggt_mv.viz.player import PLAYER_MODE_LABELS, gradio_head_script

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("vggt_mv.app")


def user_error(error: Exception) -> gr.Error:
    """The message for the browser, logged as one line (no traceback: the server is fine)."""
    logger.info("refused: %s", error)
    return gr.Error(str(error), print_exception=False)


def build_demo(settings: ServeSettings) -> gr.Blocks:
    """The two tabs around one shared model; what the app keeps lives in one AppState."""
    state = AppState(load_served_model(settings), settings.sessions_dir, settings.max_total_frames,
                     settings.max_time_steps, settings.gpu_memory_bytes)
    served = state.served

    def reconstruct(videos: list[str] | None = None, example: str | None = None, frames_per_camera: int = 8,
                    window_start: float = 0.0, window_end: float = 1.0, offsets: str = "", mode: str = "auto",
                    color_by: str = "rgb", conf_percentile: float = 25.0, point_budget: int = 200_000,
                    player_mode: str = "step", depth_edges: bool = True, max_dynamic: float = 1.0,
                    query_points: list | None = None, resize: str = "fit", request: gr.Request = None,
                    progress=gr.Progress()):
        """Reconstruct the uploaded videos (one per camera) or a bundled example; with query_points [[x, y], ...]
        (pixels of camera 0's first processed frame) also track them through every frame. resize: fit (every pixel,
        longer side 518) or crop (VGGT's crop mode)."""
        display = reconstruct_tab.DisplayChoices(color_by=color_by, conf_percentile=conf_percentile,
                                                 point_budget=point_budget, player_mode=player_mode,
                                                 depth_edges=depth_edges, max_dynamic=max_dynamic)
        session = getattr(request, "session_hash", None)
        try:
            frames_per_camera = reconstruct_tab.check_request(frames_per_camera, window_start, window_end, mode,
                                                              color_by, conf_percentile, point_budget,
                                                              settings.max_time_steps, resize)
            display.scene_options()  # refuses a bad display field before the session's earlier run is removed
            reconstruct_tab.checked_query_points(query_points)  # and bad query points
            reconstruct_tab.forget_earlier_runs(state, session)
            yield from reconstruct_tab.run_progressively(
                state, videos, example, frames_per_camera, window_start, window_end, offsets, mode, display, session,
                progress=lambda fraction, message: progress(fraction, desc=message), query_points=query_points,
                resize=resize)
        except reconstruct_tab.UserFacingError as error:
            raise user_error(error) from None
        finally:
            return_freed_memory()

    def redraw(key, color_by, conf_percentile, conf_threshold, point_budget, player_mode, depth_edges, max_dynamic,
               show_ground_truth, request: gr.Request = None):
        display = reconstruct_tab.DisplayChoices(color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                                                 depth_edges, max_dynamic, show_ground_truth)
        try:
            return reconstruct_tab.redraw(state, key, display, getattr(request, "session_hash", None))
        except reconstruct_tab.UserFacingError as error:
            raise user_error(error) from None

    # Tracks: each handler gets (key, tracked points, strip step, the 8 display controls, ...), redraws from the
    # cached run and never runs the aggregator (reconstruct_tab.track_view says why when it cannot); only the track
    # head runs in a GPU call.
    def track_click(key, points, strip_step, color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                    depth_edges, max_dynamic, show_ground_truth, evt: gr.SelectData, request: gr.Request = None):
        """A click on the reference frame: track that pixel too (track head only, from the cached run)."""
        display = reconstruct_tab.DisplayChoices(color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                                                 depth_edges, max_dynamic, show_ground_truth)
        try:
            return reconstruct_tab.track_point(state, key, points, getattr(evt, "index", None), display, strip_step,
                                               getattr(request, "session_hash", None))
        except reconstruct_tab.UserFacingError as error:
            raise user_error(error) from None
        finally:
            return_freed_memory()

    def track_grid(key, points, strip_step, color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                   depth_edges, max_dynamic, show_ground_truth, count, request: gr.Request = None):
        """'Track grid': a grid of K points over the reference frame (track head only)."""
        display = reconstruct_tab.DisplayChoices(color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                                                 depth_edges, max_dynamic, show_ground_truth)
        try:
            return reconstruct_tab.track_grid(state, key, count, display, strip_step,
                                              getattr(request, "session_hash", None))
        except reconstruct_tab.UserFacingError as error:
            raise user_error(error) from None
        finally:
            return_freed_memory()

    def clear_tracks(key, points, strip_step, color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                     depth_edges, max_dynamic, show_ground_truth, request: gr.Request = None):
        """'Clear tracks': the run drawn again without them."""
        display = reconstruct_tab.DisplayChoices(color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                                                 depth_edges, max_dynamic, show_ground_truth)
        try:
            return reconstruct_tab.clear_tracks(state, key, display, strip_step,
                                                getattr(request, "session_hash", None))
        except reconstruct_tab.UserFacingError as error:
            raise user_error(error) from None

    def prepare_download(key, name, color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                         depth_edges, max_dynamic, show_ground_truth, bundle_adjust, request: gr.Request = None):
        """Build one download format of this session's run (name: glb, npz, cameras, ply, colmap, rerun, zip) with
        the scene's filters; returns every download built for the run so far and what this one holds."""
        display = reconstruct_tab.DisplayChoices(color_by, conf_percentile, conf_threshold, point_budget, player_mode,
                                                 depth_edges, max_dynamic, show_ground_truth)
        try:
            return downloads.prepare_download(state, key, name, display, bundle_adjust,
                                              getattr(request, "session_hash", None))
        except reconstruct_tab.UserFacingError as error:
            raise user_error(error) from None
        finally:
            return_freed_memory()

    def track_controls_after_run(key, request: gr.Request = None):
        return reconstruct_tab.track_controls_after_run(state, key, getattr(request, "session_hash", None))

    def redraw_strip(key, strip_step, request: gr.Request = None):
        try:
            return reconstruct_tab.redraw_strip(state, key, strip_step, getattr(request, "session_hash", None))
        except reconstruct_tab.UserFacingError as error:
            raise user_error(error) from None

    with gr.Blocks(title="VGGT-MV", delete_cache=settings.delete_cache) as demo:
        gr.Markdown("# VGGT-MV: multi-view video reconstruction\nUpload one synchronized video per camera; "
                    "VGGT_MV predicts cameras, depth and points for every time step and camera.")
        banner = gr.Markdown(banner_markdown(served), elem_id="model-banner")
        with gr.Tab("Reconstruct"):
            with gr.Row():
                with gr.Column(scale=1, min_width=340):
                    videos = gr.File(label="Videos (one per camera, 1 to 8)", file_count="multiple",
                                     file_types=reconstruct_tab.VIDEO_FILE_TYPES, height=150, elem_id="videos")
                    example = gr.Dropdown(label="…or an example (uploads win)",
                                          choices=reconstruct_tab.example_names(), value=None)
                    run_button = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-button")
                    plan = gr.Markdown(elem_id="plan")
                    upload_preview = gr.Gallery(label="Uploads (first frame)", show_label=False, columns=4,
                                                height="auto", object_fit="contain", visible=False,
                                                elem_id="upload-preview", elem_classes=["captioned-gallery"])
                    with gr.Row():
                        frames = gr.Slider(1, settings.max_time_steps, value=8, step=1,
                                           label="Frames per camera (T)", min_width=140, elem_id="frames")
                        mode = gr.Radio(["auto", "multi", "global"], value="auto", label="Attention mode",
                                        min_width=140)
                    resize = gr.Radio([("Fit: every pixel, longer side 518", "fit"),
                                       ("Crop: VGGT's crop mode, width 518", "crop")], value="fit",
                                      label="Frame sizing", elem_id="resize")
                    with gr.Row():
                        window_start = gr.Slider(0, 0.95, value=0, step=0.05, label="Window start", min_width=140)
                        window_end = gr.Slider(0.05, 1, value=1, step=0.05, label="Window end", min_width=140)
                    offsets = gr.Textbox(value="", label="Per-camera offsets in seconds (optional)",
                                         placeholder="0, 0.1, 0")
                    reference = gr.Image(label="Tracks: click the reference frame (camera 0, first step)",
                                         type="numpy", format="png", interactive=False, buttons=[],
                                         elem_id="reference-frame")
                    with gr.Row():
                        grid_count = gr.Number(value=16, precision=0, minimum=1, maximum=MAX_QUERY_POINTS,
                                               label="Track a grid of K points", min_width=120)
                        grid_button = gr.Button("Track grid", elem_id="track-grid", min_width=90)
                        clear_button = gr.Button("Clear tracks", elem_id="clear-tracks", min_width=90)
                    tracks_status = gr.Markdown(elem_id="tracks-status")
                    query_points = gr.JSON(value=None, visible=False, label="query points")
                with gr.Column(scale=2):
                    scene = gr.Plot(label="Scene", elem_id="scene")
                    with gr.Row():
                        color_by = gr.Radio(list(reconstruct_tab.COLOURS), value="rgb", label="Colour by")
                        player_mode = gr.Radio([(label, mode) for mode, label in PLAYER_MODE_LABELS.items()],
                                               value="step", label="Player shows", elem_id="player-mode")
                    with gr.Row():
                        conf_percentile = gr.Slider(0, 95, value=25, step=5, label="Drop lowest confidence (%)")
                        conf_threshold = gr.Number(value=0, label="Min confidence")
                        point_budget = gr.Slider(10_000, 400_000, value=200_000, step=10_000,
                                                 label="Point budget (split over the time steps)")
                    with gr.Row():
                        depth_edges = gr.Checkbox(value=True, label="Drop depth-edge points (flying pixels)",
                                                  elem_id="depth-edges")
                        max_dynamic = gr.Slider(0, 1, value=1, step=0.05, label="Hide points with dynamic score over",
                                                info="the spatial mask head's per-patch motion score; 1 hides none")
                        show_ground_truth = gr.Checkbox(value=True, label="Ground-truth cameras", visible=False)
                    gr.Markdown(reconstruct_tab.strip_heading())
                    strip_step = gr.Slider(0, 31, value=0, step=1, label="Strip time step", elem_id="strip-step")
                    strip = gr.Gallery(label="Per camera: input | depth | confidence", show_label=False, columns=1,
                                       height="auto", object_fit="contain", elem_id="camera-strip",
                                       elem_classes=["captioned-gallery"])
                    status = gr.Markdown(elem_id="run-status")
                    gr.Markdown(DOWNLOADS_HEADING)
                    with gr.Row():
                        download_buttons = {
                            name: gr.Button(download_button_label(name), size="sm", elem_id=f"download-{name}",
                                            interactive=unavailable(name) is None, min_width=80)
                            for name in FORMATS}
                    bundle_adjust = gr.Checkbox(False, label="Bundle-adjust the COLMAP export (pycolmap; reports "
                                                "the reprojection error before and after)", elem_id="bundle-adjust")
                    download_status = gr.Markdown(elem_id="download-status")
                    download_files = gr.File(label="Downloads", file_count="multiple", elem_id="downloads",
                                             interactive=False)
                    # For API clients (gradio_client): the same build, with the format as an argument.
                    download_format = gr.Textbox(visible=False, label="download format")
                    download_api_button = gr.Button(visible=False)
            key = gr.State(None)
            points = gr.State([])
            # One listener for the three inputs, run one at a time and always on the latest values: separate
            # listeners ran side by side, and an older plan (the example chosen, T still 8) could land last.
            plan_inputs = [videos, example, frames, resize]
            gr.on([component.change for component in plan_inputs],
                  lambda v, e, f, r: reconstruct_tab.describe_plan(state, v, e, f, r), plan_inputs, plan,
                  trigger_mode="always_last", concurrency_limit=1, api_visibility="private")
            videos.change(reconstruct_tab.upload_preview_update, videos, upload_preview,
                          api_visibility="private")
            run = run_button.click(reconstruct, [videos, example, frames, window_start, window_end, offsets, mode,
                                                 color_by, conf_percentile, point_budget, player_mode, depth_edges,
                                                 max_dynamic, query_points, resize],
                                   [scene, strip, download_files, status, key], api_name="reconstruct")
            run.success(lambda run_key: reconstruct_tab.display_control_updates(state, run_key), key,
                        [strip_step, show_ground_truth], api_visibility="private")
            run.success(track_controls_after_run, key, [reference, tracks_status, points], api_visibility="private")
            display_inputs = [key, color_by, conf_percentile, conf_threshold, point_budget, player_mode, depth_edges,
                              max_dynamic, show_ground_truth]
            track_inputs = [key, points, strip_step] + display_inputs[1:]
            track_outputs = [scene, strip, reference, tracks_status, download_files, points]
            reference.select(track_click, track_inputs, track_outputs, api_visibility="private")
            grid_button.click(track_grid, track_inputs + [grid_count], track_outputs, api_visibility="private")
            clear_button.click(clear_tracks, track_inputs, track_outputs, api_visibility="private")
            for control in (conf_percentile, point_budget, max_dynamic):
                control.release(redraw, display_inputs, scene, api_visibility="private")
            for control in (color_by, player_mode, depth_edges, conf_threshold, show_ground_truth):
                control.change(redraw, display_inputs, scene, api_visibility="private")
            conf_threshold.submit(redraw, display_inputs, scene, api_visibility="private")
            strip_step.release(redraw_strip, [key, strip_step], strip, api_visibility="private")
            for name, button in download_buttons.items():
                button.click(prepare_download, [key, gr.State(name)] + display_inputs[1:] + [bundle_adjust],
                             [download_files, download_status], concurrency_id="downloads", concurrency_limit=2,
                             api_visibility="private")
            download_api_button.click(prepare_download, [key, download_format] + display_inputs[1:] + [bundle_adjust],
                                      [download_files, download_status], concurrency_id="downloads",
                                      concurrency_limit=2, api_name="download")
        with gr.Tab("Weights", id="weights"):
            build_weights_tab(demo, served, settings, banner)

        def forget_session(request: gr.Request):
            reconstruct_tab.remove_session_folder(state, request.session_hash)

        demo.unload(forget_session)
        # Set in the page once Gradio has mounted every component: browser tests wait on it, never on a guess.
        demo.load(None, None, None, js=APP_READY_JS)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    return demo


APP_READY_JS = "() => { document.documentElement.dataset.appReady = 'true'; }"
DOWNLOADS_HEADING = ("**Downloads**, built when you ask, from what the scene shows (its filters and point budget, "
                     "the session's tracks):")


def download_button_label(name: str) -> str:
    """A format's button; one this install cannot build says why instead (the Rerun extra)."""
    reason = unavailable(name)
    return FORMATS[name].label if reason is None else f"{FORMATS[name].label} ({reason})"


# Captions under each gallery image (not over it, not faded), images at their own aspect ratio.
CSS = """
.captioned-gallery .thumbnail-item { aspect-ratio: auto; height: auto; }
.captioned-gallery .thumbnail-item img { height: auto; object-fit: contain; }
.captioned-gallery .grid-container { grid-template-rows: none; grid-auto-rows: auto; }
.captioned-gallery .grid-wrap { height: auto; max-height: none; overflow: visible; }
.captioned-gallery .caption-label { position: static; opacity: 1; max-width: 100%; white-space: normal; }
"""
LOAD_DISABLED_LABEL = "Load into the app's model (disabled: start with --allow-weight-loading)"
COMPARE_DISABLED_LABEL = "Compare (disabled: reads both files whole; start with --allow-weight-loading)"


def build_weights_tab(demo: gr.Blocks, served, settings: ServeSettings, banner: gr.Markdown) -> None:
    """Where every parameter came from: totals, treemap, tree, tables, JSON; dry runs and (optionally) loads of up
    to 4 named sources, later ones overriding earlier ones."""
    choices = weights_tab.allowed_files(settings.weights_dir)
    rule_sets = list(weights_tab.BUILTIN_RULE_SETS)
    source_rows = []
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown("Sources, loaded in order (later ones override): a Hub repo id (`facebook/VGGT-1B`, "
                        "`yyfz233/Pi3`, or `yyfz233/Pi3X` with rule set `pi3x-decoder`)"
                        + (f", a file under the server's weights folder ({len(choices)} files)" if choices else "")
                        + ", or an upload. A tensor's status is its source's name.")
            for number, (name, rules) in enumerate(weights_tab.DEFAULT_SOURCE_ROWS, 1):
                with (gr.Group() if number <= 2 else gr.Accordion(f"Source {number} (optional)", open=False)):
                    with gr.Row():
                        row_name = gr.Textbox(value=name, label=f"Source {number} name", max_lines=1, min_width=100,
                                              placeholder=f"e.g. finetune{number}")
                        row_rules = gr.Dropdown(rule_sets, value=rules, label="Rule set", min_width=120)
                    row_text = gr.Dropdown(choices=choices, value=None, allow_custom_value=True,
                                           label=weights_tab.SOURCE_LABELS[number - 1] + " (repo id or file)")
                    row_upload = gr.File(label="…or upload", file_types=[".safetensors", ".pt", ".pth", ".bin"])
                source_rows.append((row_name, row_text, row_upload, row_rules))
            preset = gr.Dropdown(["vggt-1b", "tiny"], value=served.preset, label="Model layout")
            with gr.Row():
                dry_run_button = gr.Button("Dry run (headers only)", variant="primary")
                load_button = gr.Button("Load into the app's model" if settings.allow_weight_loading
                                        else LOAD_DISABLED_LABEL, interactive=settings.allow_weight_loading)
            json_file = gr.File(label="JSON report")
        with gr.Column(scale=3):
            totals = gr.Markdown(elem_id="weights-totals")
            treemap = gr.Plot(label="Provenance treemap")
    tree_html = gr.HTML(label="Module tree")
    with gr.Row():
        mismatched = gr.Dataframe(headers=["model key", "source", "source key", "model shape", "source shape"],
                                  label="Mismatched (not loaded)", wrap=True)
        overridden = gr.Dataframe(headers=["model key", "now from", "source key", "overrode"], label="Overridden")
    with gr.Row():
        unexpected = gr.Dataframe(headers=["source", "key prefix", "tensors"], label="Unexpected keys by prefix")
        rules = gr.Dataframe(headers=["source", "rule", "matched", "mapping"], label="Rules")
    outputs = [totals, treemap, tree_html, mismatched, unexpected, overridden, rules, json_file, banner]

    def show(view: weights_tab.WeightsView):
        return (view.totals, view.treemap, view.tree_html, view.mismatched, view.unexpected, view.overridden,
                view.rules, view.json_path, banner_markdown(served))

    def run(apply: bool):
        def handler(*values):
            *fields, layout = values
            requests = [weights_tab.SourceRequest(*fields[i:i + 4]) for i in range(0, len(fields), 4)]
            try:
                return show(weights_tab.inspect_sources(served, requests, settings.weights_dir, apply,
                                                        settings.allow_weight_loading, layout,
                                                        settings.mostly_random_share))
            except weights_tab.WeightsTabError as error:
                raise user_error(error) from None
        return handler

    inputs = [component for row in source_rows for component in row] + [preset]
    dry_run_button.click(run(False), inputs, outputs, api_name="weights_dry_run")
    load_button.click(run(True), inputs, outputs, api_visibility="private")
    demo.load(lambda: show(weights_tab.served_view(served)), None, outputs, api_visibility="private")

    def inspect_weights(checkpoint: str = "", pi3: str = "", pi3_rules: str = "decoder", preset: str = "",
                        dry_run: bool = True) -> dict:
        """The JSON report (the CLI's schema): with no source, the served model's; else a dry run of the checkpoint
        and Pi3, or of loading them into the served model."""
        return answer(lambda: weights_tab.api_source_requests(checkpoint, pi3, pi3_rules, None), preset, dry_run)

    def inspect_sources(sources: list, preset: str = "", dry_run: bool = True) -> dict:
        """The JSON report of up to 4 named sources in order ([{name, source, rules}], later ones override)."""
        return answer(lambda: weights_tab.api_source_requests("", "", "decoder", sources), preset, dry_run)

    def answer(requests_of, preset, dry_run) -> dict:
        try:
            requests = requests_of()
            return weights_tab.inspect_sources(served, requests, settings.weights_dir, not dry_run,
                                               settings.allow_weight_loading, preset or None).report
        except weights_tab.WeightsTabError as error:
            raise user_error(error) from None

    gr.api(inspect_weights, api_name="inspect_weights")
    gr.api(inspect_sources, api_name="inspect_sources")
    build_compare_mode(settings, choices)


def build_compare_mode(settings: ServeSettings, choices: list[str]) -> None:
    """Two checkpoints side by side: per module ||a - b|| / ||b|| as a treemap and a full-width table to sort and
    filter; unchanged modules told apart (frozen, or still at init in both) and grouped by module range."""
    with gr.Accordion("Compare two checkpoints", open=False, elem_id="compare-weights"):
        gr.Markdown("Per module, the relative change ||a − b|| / ||b|| over the keys both have. A module whose "
                    "values are all equal is *frozen (equal, trained)* or *still at init in both (never trained)*, "
                    "told apart by the untrained-tensor check on both sides; keys only one side has are listed. "
                    "Reads every byte of both files.")
        sides = []
        with gr.Row():
            for role in ("a", "b"):
                with gr.Column():
                    text = gr.Dropdown(choices=choices, value=None, allow_custom_value=True,
                                       label=f"Checkpoint {role} (repo id or file)", elem_id=f"compare-{role}")
                    upload = gr.File(label="…or upload", file_types=[".safetensors", ".pt", ".pth", ".bin"])
                    sides.append((text, upload))
        compare_button = gr.Button("Compare" if settings.allow_weight_loading else COMPARE_DISABLED_LABEL,
                                   interactive=settings.allow_weight_loading, elem_id="compare-button")
        with gr.Row():
            with gr.Column(scale=1):
                summary = gr.Markdown(elem_id="compare-summary")
                json_file = gr.File(label="JSON comparison")
            with gr.Column(scale=2):
                treemap = gr.Plot(label="Relative change per module")
        table = gr.Dataframe(headers=weights_tab.COMPARE_TABLE_HEADERS, datatype=weights_tab.COMPARE_TABLE_TYPES,
                             column_widths=weights_tab.COMPARE_TABLE_WIDTHS, show_search="filter", wrap=True,
                             interactive=False, max_height=520, elem_id="compare-table",
                             label="Change per module, ranges collapsed as in the tree (sort from a column's ⋮ menu, "
                                   "filter with the box)")
        unchanged = gr.Markdown(elem_id="compare-unchanged")

    def compare(text_a, upload_a, text_b, upload_b, progress=gr.Progress()):
        def on_tensor(done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"compared {done} of {total} tensors")

        try:
            view = weights_tab.compare_checkpoint_files(text_a, upload_a, text_b, upload_b, settings.weights_dir,
                                                        settings.allow_weight_loading, on_tensor)
        except weights_tab.WeightsTabError as error:
            raise user_error(error) from None
        return view.summary, view.treemap, view.table, view.unchanged, view.json_path

    inputs = [sides[0][0], sides[0][1], sides[1][0], sides[1][1]]
    compare_button.click(compare, inputs, [summary, treemap, table, unchanged, json_file], api_visibility="private")

    def compare_weights(a: str = "", b: str = "") -> dict:
        """The JSON comparison (schema in vggt_mv/weights/compare.py) of checkpoints a and b: Hub repo ids or files
        under the server's weights folder; needs --allow-weight-loading."""
        try:
            return weights_tab.compare_checkpoint_files(a, None, b, None, settings.weights_dir,
                                                        settings.allow_weight_loading).comparison
        except weights_tab.WeightsTabError as error:
            raise user_error(error) from None

    gr.api(compare_weights, api_name="compare_weights")


def main(argv: list[str] | None = None) -> None:
    """python app.py [--checkpoint SRC] [--pi3 SRC] [--preset ...] [--device ...] [--port ...]"""
    settings = parse_settings(argv)
    limit_malloc_arenas()
    demo = build_demo(settings)
    demo.launch(server_name=settings.host, server_port=settings.port, allowed_paths=[str(settings.sessions_dir)],
                css=CSS, head=gradio_head_script())


if __name__ == "__main__":
    main(sys.argv[1:])
