"""The Reconstruct tab's downloads: a format is built when a visitor asks for it, into that session's run folder.

Each build writes into a fresh hidden folder and is renamed into place whole, so a download in progress never sees
half a file and two builds never share a folder. The folder holds the newest build of each format; a new run, new
tracks or the end of the session removes them (vggt_mv.serving.reconstruct_tab).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from vggt_mv.exports.formats import FORMATS, ExportOptions, Written, build_format, offered_files, unavailable
from vggt_mv.pipeline import counted
from vggt_mv.serving.app_state import AppState
from vggt_mv.serving.reconstruct_tab import (DisplayChoices, UserFacingError, is_session_folder, session_folder,
                                             session_result)

PARTIAL_PREFIX = ".partial-"


def format_folders(run_folder: Path, name: str) -> list[Path]:
    """The finished builds of one format in a run folder (named '<format>.<id>'), oldest first."""
    builds = [path for path in run_folder.glob(f"{name}.*") if path.is_dir() and not path.is_symlink()]
    return sorted(builds, key=lambda path: path.stat().st_mtime_ns)


def downloads_in(run_folder: Path) -> list[str]:
    """Every format built for this run so far, in the order of the buttons (the newest build of each)."""
    if not run_folder.is_dir():
        return []
    files = []
    for name in FORMATS:
        builds = format_folders(run_folder, name)
        if builds:
            files += sorted(str(path) for path in builds[-1].iterdir() if path.is_file())
    return files


def export_options(display: DisplayChoices, bundle_adjust) -> ExportOptions:
    """The scene's filters and point budget (the downloads hold the scene's points), and bundle adjustment."""
    if not isinstance(bundle_adjust, bool):
        raise UserFacingError("the bundle-adjustment toggle must be true or false")
    scene = display.scene_options()
    return ExportOptions(filters=scene.point_filters(), point_budget=scene.point_budget, bundle_adjust=bundle_adjust)


def publish(build: Path, run_folder: Path, name: str) -> None:
    """Rename a finished build into place and drop the older builds of that format."""
    older = format_folders(run_folder, name)
    build.rename(run_folder / f"{name}.{uuid.uuid4().hex[:12]}")
    for folder in older:
        shutil.rmtree(folder, ignore_errors=True)


def keep_offered_files_only(build: Path, written: Written) -> None:
    """Only what a browser downloads stays, at the top of the build folder (PLYs moved up, COLMAP's folder zipped)."""
    offered = [path.rename(build / path.name) if path.parent != build else path for path in offered_files(written)]
    for path in build.iterdir():
        if path not in offered:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def prepare_download(state: AppState, key: str | None, name, display: DisplayChoices, bundle_adjust,
                     session_hash: str | None) -> tuple[list[str], str]:
    """Build one format of the session's run (with its tracks and the scene's filters): the downloads list and a
    line saying what was built, how big, how long, and what it left out."""
    if not isinstance(name, str) or unavailable(name) is not None:
        raise UserFacingError(unavailable(name if isinstance(name, str) else repr(name)) or "unknown format")
    result = session_result(state, key, session_hash)
    if result is None:
        raise UserFacingError("run a reconstruction first; its downloads are built from it")
    options = export_options(display, bundle_adjust)
    run_folder = session_folder(state, session_hash) / result.key
    if not is_session_folder(state.sessions_root, run_folder.parent):
        raise UserFacingError("this session's download folder is not usable")
    run_folder.mkdir(exist_ok=True)
    build = run_folder / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}"
    try:
        written = build_format(name, result.predictions, build, options)
        keep_offered_files_only(build, written)
        publish(build, run_folder, name)
    except OSError as error:
        raise UserFacingError(f"could not write the {FORMATS[name].label} download: {error.strerror or error}")
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return downloads_in(run_folder), download_status(written, size_of(run_folder, name))


def size_of(run_folder: Path, name: str) -> int:
    """Bytes of the newest build of one format."""
    builds = format_folders(run_folder, name)
    return sum(path.stat().st_size for path in builds[-1].rglob("*") if path.is_file()) if builds else 0


def download_status(written: Written, size: int) -> str:
    """'COLMAP ready: 3 files, 4.2 MB, built in 0.8 s' and one line per note."""
    label = FORMATS[written.name].label
    count = counted(len(written.paths) if written.name == "ply" else 1, "file")
    lines = [f"**{label}** ready: {count}, {size / 1e6:.1f} MB, built in {written.seconds:.2f} s."]
    return "\n".join(lines + [f"- {note}" for note in written.notes])
