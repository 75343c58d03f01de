"""Comparing two checkpoints in real Chromium, as a researcher does at 1400x1000: the per-module table takes the
full width, no column is narrower than its header's words, rows are ranges as in the tree, it sorts and filters,
and the unchanged modules say they never trained; the screenshot lands in out/screenshots/."""

import pytest

from tests.browser.test_screenshots import SCREENSHOTS, VIEWPORT, browser, choose  # noqa: F401 (fixture)
from tests.support.app_server import running_app
from tests.support.checkpoints import tiny_state, write_safetensors

pytestmark = pytest.mark.slow

TABLE = "#compare-table"
# Per header cell: its width, and each word of its text with its rendered width and the lines it spans (a word
# broken over lines, or one character per line, spans more than one).
HEADER_WORDS = """(selector) => [...document.querySelectorAll(selector + " th[role=columnheader]")].map(th => {
  const span = th.querySelector(".header") || th;
  const node = [...span.childNodes].find(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
  const words = [];
  for (const match of node.textContent.matchAll(/\\S+/g)) {
    const range = document.createRange();
    range.setStart(node, match.index);
    range.setEnd(node, match.index + match[0].length);
    words.push({word: match[0], width: range.getBoundingClientRect().width, lines: range.getClientRects().length});
  }
  return {header: node.textContent.trim(), width: th.getBoundingClientRect().width, words};
})"""
ROWS = """(selector) => [...document.querySelectorAll(selector + " .virtual-row")].map(
  row => [...row.querySelectorAll("[role=gridcell]")].map(cell => cell.innerText.trim()))"""


@pytest.fixture(scope="module")
def two_random_inits(tmp_path_factory):
    """The issue's case: two tiny checkpoints that are random inits with different seeds."""
    folder = tmp_path_factory.mktemp("compare-weights")
    write_safetensors(folder / "seed1.safetensors", tiny_state(seed=1))
    write_safetensors(folder / "seed2.safetensors", tiny_state(seed=2))
    return folder


def sort_descending(page, header: str) -> None:
    """Sort the table by a column from its header's menu, as a visitor does (the menu button shows on hover)."""
    cell = page.locator(f"{TABLE} th[role=columnheader]", has_text=header)
    cell.hover()
    cell.locator("button.cell-menu-button").click()
    page.get_by_text("Sort descending", exact=True).click()
    page.wait_for_timeout(800)


def test_comparing_two_random_inits_shows_a_readable_full_width_table(browser, two_random_inits):  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app("--weights-dir", str(two_random_inits), "--allow-weight-loading") as (url, _):
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        page.get_by_role("tab", name="Weights").click()
        page.get_by_text("Compare two checkpoints").click()
        choose(page, "Checkpoint a (repo id or file)", "seed1.safetensors")
        choose(page, "Checkpoint b (repo id or file)", "seed2.safetensors")
        page.locator("#compare-button").click()
        table = page.locator(TABLE)
        table.get_by_text("aggregator.frame_blocks.{0..3}", exact=True).first.wait_for(timeout=120_000)
        page.locator("#compare-weights .treemaplayer").first.wait_for(timeout=60_000)
        page.mouse.move(0, 0)  # no hover label over the treemap in the screenshot
        page.wait_for_timeout(1500)
        section = page.locator("#compare-weights")
        section.scroll_into_view_if_needed()
        section.screenshot(path=str(SCREENSHOTS / "weights-compare.png"))

        content = section.bounding_box()
        assert table.bounding_box()["width"] >= 0.95 * content["width"] - 40, "the table takes the full width"
        assert content["height"] < 3000, "the section was 5,459 px tall with the table squeezed into a column"
        headers = page.evaluate(HEADER_WORDS, TABLE)
        assert [h["header"] for h in headers][:3] == ["module", "finding", "relative change"]
        for header in headers:
            for word in header["words"]:
                assert word["lines"] == 1, f"{word['word']!r} of {header['header']!r} is broken over lines"
                assert header["width"] >= word["width"], f"column {header['header']!r} is narrower than its words"

        rows = {row[0]: row for row in page.evaluate(ROWS, TABLE)}
        assert rows["aggregator.frame_blocks.{0..3}"][1] == "changed"
        assert not any(label.startswith("aggregator.frame_blocks.0") for label in rows), "collapsed by range"
        unchanged = page.locator("#compare-unchanged").inner_text()
        assert "still at init in both (never trained)" in unchanged and "frozen (equal, trained):" not in unchanged
        assert "aggregator.frame_blocks.{0..3}: attn.k_norm, attn.q_norm, ls1, ls2, norm1, norm2" in unchanged

        sort_descending(page, "parameters")
        counts = [int(row[3]) for row in page.evaluate(ROWS, TABLE) if row[3]]
        assert counts and counts == sorted(counts, reverse=True), "sorted by parameters, largest first"
        table.get_by_placeholder("Filter...").fill("norm")
        page.wait_for_timeout(800)
        filtered = page.evaluate(ROWS, TABLE)
        assert filtered and all("norm" in row[0] for row in filtered)
        assert {row[1] for row in filtered} == {"still at init in both (never trained)"}
