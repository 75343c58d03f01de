"""The in-figure time player: one Plotly animation frame per time step, a slider and play/pause buttons at a few
speeds, all in the browser (no server call per step). Also how its frames reach Gradio, whose gr.Plot passes only
data, layout and config to Plotly.react: the frames ride in layout.meta and a page script hands them to Plotly."""

from __future__ import annotations

import plotly.graph_objects as go

PLAYER_MODES = ("step", "trail", "all")
PLAYER_MODE_LABELS = {"step": "this step only", "trail": "up to this step (trail)", "all": "all steps"}
PLAYER_SPEEDS_FPS = (1, 3, 8)
PLAYER_MARGIN_PX = 120
FRAMES_META_KEY = "player_frames"  # read by GRADIO_PLAYER_JS


def frame_name(time_step: int) -> str:
    """The name of step t's animation frame (what the slider and buttons animate to)."""
    return str(time_step)


def visible_steps(mode: str, current: int, num_steps: int) -> list[bool]:
    """Which time steps' points show while the player stands at `current`."""
    if mode not in PLAYER_MODES:
        raise ValueError(f"player mode must be one of {PLAYER_MODES}")
    if mode == "step":
        return [step == current for step in range(num_steps)]
    if mode == "trail":
        return [step <= current for step in range(num_steps)]
    return [True] * num_steps


def _animation_options(duration_ms: float) -> dict:
    """Plotly.animate options: no tweening (3D traces cannot tween) and a full redraw per frame, which scatter3d
    needs; the scene camera is not part of any frame, so the user's view stays."""
    return {"mode": "immediate", "fromcurrent": True, "frame": {"duration": duration_ms, "redraw": True},
            "transition": {"duration": 0}}


def player_controls(num_steps: int) -> dict:
    """Layout entries: play buttons (one per speed) plus pause, and under them a time-step slider as wide as the
    figure, all below the 3D view (in the bottom margin, PLAYER_MARGIN_PX high)."""
    steps = [{"method": "animate", "label": frame_name(step), "args": [[frame_name(step)], _animation_options(0)]}
             for step in range(num_steps)]
    slider = {"active": 0, "steps": steps, "x": 0.0, "len": 1.0, "xanchor": "left", "y": 0, "yanchor": "top",
              "pad": {"t": 42, "b": 0, "l": 10, "r": 10}, "transition": {"duration": 0},
              "currentvalue": {"prefix": f"time step (0..{num_steps - 1}): ", "font": {"size": 13}}}
    buttons = [{"method": "animate", "label": f"▶ {fps} fps", "args": [None, _animation_options(1000 / fps)]}
               for fps in PLAYER_SPEEDS_FPS]
    buttons.append({"method": "animate", "label": "❚❚ pause",
                    "args": [[None], {"mode": "immediate", "frame": {"duration": 0, "redraw": False},
                                      "transition": {"duration": 0}}]})
    menu = {"type": "buttons", "direction": "right", "showactive": False, "buttons": buttons, "x": 0.0,
            "xanchor": "left", "y": 0, "yanchor": "top", "pad": {"t": 4, "l": 10}}
    return {"sliders": [slider], "updatemenus": [menu]}


def move_frames_into_layout(figure: go.Figure) -> go.Figure:
    """The same figure (changed in place) with its frames in layout.meta, for gr.Plot, which drops a figure's
    frames; GRADIO_PLAYER_JS gives them back to Plotly on the page."""
    frames = [frame.to_plotly_json() for frame in figure.frames]
    figure.frames = ()
    figure.update_layout(meta={**(figure.layout.meta or {}), FRAMES_META_KEY: frames})
    return figure


def gradio_head_script() -> str:
    """The <script> for the page head that makes gr.Plot keep the player's frames (see GRADIO_PLAYER_JS)."""
    return f"<script>\n{GRADIO_PLAYER_JS}\n</script>"


# gr.Plot calls Plotly.react(div, data, layout, config): the figure's frames are lost. Plotly's bundle assigns
# window.Plotly when it loads, so a setter on window wraps react before Gradio's first call, and passes the frames
# found in layout.meta as react's {data, layout, config, frames} form (which replaces the old frames). gr.Plot also
# draws each new figure into a new element, where uirevision cannot keep the user's view: the wrapper remembers the
# camera the user last chose per uirevision and hands it to the new element, so a rebuild keeps the view too.
GRADIO_PLAYER_JS = """
(() => {
  const KEY = "%s";
  const userCameras = {};
  const keepFrames = (plotly) => {
    if (!plotly || typeof plotly.react !== "function" || plotly.__framesFromMeta) return;
    const react = plotly.react;
    plotly.react = function (div, data, layout, config) {
      const frames = layout && layout.meta && layout.meta[KEY];
      if (!Array.isArray(data) || !Array.isArray(frames)) return react.apply(this, arguments);
      const revision = String(layout.uirevision);
      if (!div._fullLayout && userCameras[revision]) {
        layout.scene = Object.assign({}, layout.scene, {camera: userCameras[revision]});
      }
      const drawn = react.call(this, div, {data: data, layout: layout, config: config, frames: frames});
      Promise.resolve(drawn).then(() => {
        if (div.__remembersCamera || typeof div.on !== "function") return;
        div.__remembersCamera = true;
        div.on("plotly_relayout", (change) => {
          if (change && change["scene.camera"]) userCameras[String(div.layout.uirevision)] = change["scene.camera"];
        });
      });
      return drawn;
    };
    plotly.__framesFromMeta = true;
  };
  let current = window.Plotly;
  keepFrames(current);
  Object.defineProperty(window, "Plotly", {
    configurable: true, enumerable: true, get: () => current,
    set: (value) => { current = value; keepFrames(value); },
  });
})();
""" % FRAMES_META_KEY
