"""Every download format, built on request and downloaded once in real Chromium, then opened with the tool its
users open it with: trimesh (GLB, PLY), numpy (NPZ), a strict JSON parser (cameras.json), pycolmap (COLMAP) and
Rerun's own reader (the recording)."""

import json
import zipfile

import numpy as np
import pycolmap
import pytest
import trimesh
from rerun.chunk import RrdReader

from tests.browser.test_screenshots import SCREENSHOTS, VIEWPORT, browser, choose, error_shown  # noqa: F401 (fixture)
from tests.support.app_server import launched_app
from tests.support.browser import open_app
from vggt_mv.exports.formats import FORMATS
from vggt_mv.io.examples import list_examples

pytestmark = pytest.mark.slow

OFFERED = {"glb": "scene.glb", "npz": "predictions.npz", "cameras": "cameras.json", "ply": "points_t001.ply",
           "colmap": "colmap.zip", "rerun": "recording.rrd", "zip": "everything.zip"}


def strict_json(text: str):
    """json.loads refusing NaN and Infinity, as a browser's JSON.parse does."""
    return json.loads(text, parse_constant=lambda constant: pytest.fail(f"not JSON: {constant}"))


def check_colmap(archive_path, folder) -> None:
    """pycolmap reads every time step, with its images present and points seen from more than one camera."""
    with zipfile.ZipFile(archive_path) as archive:
        archive.extractall(folder)
    steps = sorted(path for path in folder.iterdir() if path.name.startswith("t"))
    assert [path.name for path in steps] == ["t000", "t001"]
    for step in steps:
        model = pycolmap.Reconstruction(str(step / "sparse" / "0"))
        assert model.num_images() > 0
        for image in model.images.values():
            assert (step / "images" / image.name).is_file(), image.name


def check_download(name: str, path, tmp_path) -> None:
    """The downloaded file opens in its users' tool and holds the run (2 time steps x 3 cameras)."""
    if name == "glb":
        scene = trimesh.load(path)
        assert sum(type(g).__name__ == "PointCloud" for g in scene.geometry.values()) == 1
    elif name == "npz":
        archive = np.load(path)
        assert archive["images"].dtype == np.uint8 and archive["world_points"].shape[:2] == (2, 3)
    elif name == "cameras":
        assert len(strict_json(path.read_text())["frames"]) == 6
    elif name == "ply":
        assert len(trimesh.load(path).vertices) > 100
    elif name == "colmap":
        check_colmap(path, tmp_path / "colmap")
    elif name == "rerun":
        schema = RrdReader(path).store().schema()
        assert "time_step" in [column.name for column in schema.index_columns()]
    elif name == "zip":
        names = zipfile.ZipFile(path).namelist()
        assert {"scene.glb", "predictions.npz", "cameras.json", "ply/points_t000.ply",
                "colmap/t001/sparse/0/points3D.bin", "colmap/t001/images/camera0.png"} <= set(names)


def test_each_format_is_built_on_request_and_downloads_once(browser, tmp_path):  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with launched_app(timeout=120.0) as launched:
        page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
        open_app(page, launched.url)
        choose(page, "…or an example (uploads win)", list_examples()[0].name)
        frames = page.locator("#frames input[type=number]")
        frames.fill("2")
        frames.press("Enter")
        page.locator("#plan", has_text="2 time steps x 3 cameras").wait_for(timeout=60_000)
        page.get_by_role("button", name="Reconstruct", exact=True).click()
        status = page.locator("#run-status")
        status.get_by_text("2 time steps x 3 cameras").wait_for(timeout=240_000)
        assert "Downloads are built when you ask" in status.inner_text()
        assert page.locator("#downloads a").count() == 0, "the run itself wrote no download"
        for name in FORMATS:
            page.locator(f"#download-{name}").click()
            page.locator("#download-status", has_text=f"{FORMATS[name].label} ready").wait_for(timeout=240_000)
            link = page.locator(f"#downloads a[href*='{OFFERED[name]}']").first
            with page.expect_download() as download:
                link.click()
            saved = tmp_path / download.value.suggested_filename
            download.value.save_as(saved)
            assert saved.name == OFFERED[name]
            check_download(name, saved, tmp_path)
            assert not error_shown(page), name
        page.screenshot(path=str(SCREENSHOTS / "downloads-every-format.png"), full_page=True)
