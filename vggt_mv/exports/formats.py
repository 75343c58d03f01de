"""The downloads a run offers, each built only when someone asks for it (a button in the app, `--formats` in the CLI).

Nothing here runs on a run's hot path: the scene shows first, and a format costs only the visitor who wants it.
Every writer reads the predictions in memory and writes into the folder it is given; where that folder lives and
how long it is kept is the serving layer's business (vggt_mv.serving.downloads).
"""

from __future__ import annotations

import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from vggt_mv.exports.bad_values import camera_notes, camera_problems, non_finite_counts
from vggt_mv.exports.colmap import COLMAP_POINT_BUDGET, write_colmap_export
from vggt_mv.exports.rerun_recording import rerun_missing, write_recording
from vggt_mv.viz.export import (EXPORT_POINT_BUDGET, NPZ_KEYS, write_cameras_json, write_glb, write_npz,
                                write_ply_per_time)
from vggt_mv.viz.points import PointFilters


@dataclass(frozen=True)
class ExportFormat:
    """One download: its name in `--formats` and the API, its button, and what a user does with it."""

    name: str
    label: str
    description: str


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("glb", "GLB scene", "points and camera frustums for any 3D viewer (Blender, three.js, Windows)"),
    ExportFormat("npz", "NPZ predictions", "every prediction array, for numpy (`np.load`)"),
    ExportFormat("cameras", "cameras.json", "every camera's extrinsic and intrinsic per time step"),
    ExportFormat("ply", "PLY per time step", "one coloured point cloud per time step (MeshLab, CloudCompare)"),
    ExportFormat("colmap", "COLMAP", "per time step: images/ and sparse/0/ for COLMAP, gsplat and nerfstudio"),
    ExportFormat("rerun", "Rerun recording", "the whole 4D run on Rerun's timeline: `rerun recording.rrd`"),
    ExportFormat("zip", "Everything (zip)", "one zip of all the formats above"),
)}
# What the CLI writes unless --formats says otherwise: every format, but not the bundle of them all.
DEFAULT_CLI_FORMATS = tuple(name for name in FORMATS if name != "zip")


@dataclass(frozen=True)
class ExportOptions:
    """What the visitor chose: the scene's point filters and budget, float16 maps, bundle adjustment."""

    filters: PointFilters = PointFilters()
    point_budget: int = EXPORT_POINT_BUDGET
    float16: bool = False
    bundle_adjust: bool = False


@dataclass(frozen=True)
class Written:
    """One format as written: its files or folders, what it left out or changed (one line each), its time."""

    name: str
    paths: list[Path]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def files(self) -> list[Path]:
        """Every file written (the files inside written folders too)."""
        found = []
        for path in self.paths:
            found += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return found

    def bytes(self) -> int:
        """Bytes on disk, for the status and the benchmark."""
        return sum(path.stat().st_size for path in self.files())


def unavailable(name: str) -> str | None:
    """Why a format cannot be built on this install (None when it can)."""
    if name not in FORMATS:
        return f"unknown download format {str(name)[:40]!r}; choose one of {', '.join(FORMATS)}"
    return rerun_missing() if name == "rerun" else None


def npz_notes(predictions: dict[str, np.ndarray]) -> list[str]:
    """The NPZ's non-finite values, by array: they are 0 there, with a `<key>_finite` mask beside."""
    counts = non_finite_counts({key: predictions[key] for key in NPZ_KEYS if key in predictions})
    return [f"NPZ: {count:,} non-finite values in {key} written as 0 (see {key}_finite)"
            for key, count in counts.items()]


def build_glb(predictions: dict, folder: Path, options: ExportOptions) -> Written:
    """scene.glb, the cameras it could not draw named."""
    path = write_glb(folder / "scene.glb", predictions, options.filters, options.point_budget)
    notes = camera_notes(camera_problems(predictions), "the GLB")
    if not any(name == "points" for name in trimesh.load(path, force="scene").geometry):
        notes.append("the GLB holds no points: the scene's filters removed every one (only the cameras are in it)")
    return Written("glb", [path], notes)


def build_npz(predictions: dict, folder: Path, options: ExportOptions) -> Written:
    """predictions.npz (uint8 images; float16 maps only when asked)."""
    return Written("npz", [write_npz(folder / "predictions.npz", predictions, options.float16)],
                   npz_notes(predictions))


def build_cameras(predictions: dict, folder: Path, options: ExportOptions) -> Written:
    """cameras.json, with null where a camera's value is not finite."""
    problems = {key: reason for key, reason in camera_problems(predictions).items() if "finite" in reason}
    notes = [note.replace("left out of cameras.json", "written with null in cameras.json")
             for note in camera_notes(problems, "cameras.json")]
    return Written("cameras", [write_cameras_json(folder / "cameras.json", predictions)], notes)


def build_ply(predictions: dict, folder: Path, options: ExportOptions) -> Written:
    """ply/points_tNNN.ply, one per time step."""
    return Written("ply", write_ply_per_time(folder / "ply", predictions, options.filters, options.point_budget))


def build_colmap(predictions: dict, folder: Path, options: ExportOptions) -> Written:
    """colmap/tNNN/{images,sparse/0}: real multi-view tracks, optional bundle adjustment."""
    budget = min(options.point_budget, COLMAP_POINT_BUDGET)
    export = write_colmap_export(folder / "colmap", predictions, options.filters, budget,
                                 bundle_adjust=options.bundle_adjust)
    return Written("colmap", [export.folder], export.notes())


def build_rerun(predictions: dict, folder: Path, options: ExportOptions) -> Written:
    """recording.rrd (needs the rerun extra)."""
    summary = write_recording(folder / "recording.rrd", predictions, options.filters, options.point_budget)
    return Written("rerun", [summary.path], list(summary.notes))


def build_zip(predictions: dict, folder: Path, options: ExportOptions) -> Written:
    """everything.zip: every other format (Rerun when installed), built into the zip and nowhere else."""
    staging = folder / ".everything"
    parts = [build_format(name, predictions, staging, options) for name in FORMATS
             if name != "zip" and unavailable(name) is None]
    path = zip_folder(folder / "everything.zip", staging)
    shutil.rmtree(staging, ignore_errors=True)
    notes = [note for part in parts for note in part.notes]
    if unavailable("rerun") is not None:
        notes.append(f"the zip has no Rerun recording: {unavailable('rerun')}")
    return Written("zip", [path], notes)


BUILDERS = {"glb": build_glb, "npz": build_npz, "cameras": build_cameras, "ply": build_ply, "colmap": build_colmap,
            "rerun": build_rerun, "zip": build_zip}


def build_format(name: str, predictions: dict[str, np.ndarray], folder: Path,
                 options: ExportOptions = ExportOptions()) -> Written:
    """One format written into `folder`, timed; an unknown or unavailable format is a ValueError with the reason."""
    reason = unavailable(name)
    if reason is not None:
        raise ValueError(reason)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    written = BUILDERS[name](predictions, folder, options)
    return Written(written.name, written.paths, written.notes, time.perf_counter() - start)


def zip_folder(path: Path, folder: Path) -> Path:
    """Every file under `folder` in one zip, stored uncompressed: float maps barely compress, and fast matters."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(folder).as_posix())
    return path


def offered_files(written: Written) -> list[Path]:
    """What a browser downloads for a format: its files, a folder (COLMAP) as one zip beside it."""
    offered = []
    for path in written.paths:
        offered += [zip_folder(path.with_suffix(".zip"), path)] if path.is_dir() else [path]
    return offered
