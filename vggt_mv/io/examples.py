"""The bundled example clips (assets/examples/<name>/) and their ground-truth cameras."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"


@dataclass(frozen=True)
class Example:
    """One multi-view clip: a video per camera and a cameras.json."""

    name: str
    video_paths: list[Path]
    cameras_json: Path


def list_examples(root: Path = EXAMPLES_DIR) -> list[Example]:
    """Every folder under assets/examples that holds a cameras.json."""
    examples = []
    for folder in sorted(p for p in root.glob("*") if (p / "cameras.json").is_file()):
        meta = json.loads((folder / "cameras.json").read_text())
        examples.append(Example(folder.name, [folder / c["video"] for c in meta["cameras"]], folder / "cameras.json"))
    return examples


def find_example(name: str) -> Example:
    """The example called `name`."""
    for example in list_examples():
        if example.name == name:
            return example
    raise KeyError(f"no example named {name!r}")


def load_ground_truth(example: Example, times: list[float], image_size_hw: tuple[int, int]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Extrinsics [T, N, 3, 4] and intrinsics [T, N, 3, 3] of the frame shown at each time, scaled to image size."""
    meta = json.loads(example.cameras_json.read_text())
    source_height, source_width = meta["image_size_hw"]
    scale = np.array([[image_size_hw[1] / source_width], [image_size_hw[0] / source_height], [1.0]])
    extrinsics, intrinsics = [], []
    for time in times:
        row_e, row_i = [], []
        for camera in meta["cameras"]:
            shown = [f for f in camera["frames"] if f["time"] <= time + 1e-6] or camera["frames"][:1]
            frame = shown[-1]
            row_e.append(np.array(frame["extrinsic"], dtype=np.float32))
            row_i.append((np.array(frame["intrinsic"], dtype=np.float64) * scale).astype(np.float32))
        extrinsics.append(row_e)
        intrinsics.append(row_i)
    return np.array(extrinsics), np.array(intrinsics)
