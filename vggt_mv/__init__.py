"""VGGT_MV: VGGT extended to multi-view video ([B, T, N] frames), with a weights inspector and a Gradio demo."""

from vggt_mv.config import VGGTMVConfig

__all__ = ["VGGTMVConfig", "VGGT_MV"]


def __getattr__(name: str):
    """Import the model lazily so `import vggt_mv` stays cheap for the CLI and the app's start-up."""
    if name == "VGGT_MV":
        from vggt_mv.model import VGGT_MV

        return VGGT_MV
    raise AttributeError(name)
