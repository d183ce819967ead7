"""Test support: axe-core (the accessibility checker) run inside the console's pages, and the
layout probes for Japanese text.

axe-core comes from npm: ``scripts/setup`` installs the pinned version into ``.venv/axe/``
(git-ignored) and the tests read ``axe.min.js`` from there (``IMSS_AXE`` names another file).
Without it the tests skip on a developer's machine but fail in CI (``CI`` set), so a broken
setup cannot turn the accessibility check off silently.

- ``load_axe()``: the text of axe.min.js;
- ``run_axe(driver, source)``: inject axe into the current page and return its violations;
- ``serious(violations)``: those of impact serious or critical, one line each for the report;
- ``one_character_lines(driver, selector)``: elements whose text wraps so that a line holds a
  single character (結/果, 現在のバージョ/ン).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
AXE_VERSION = "4.14.1"  # the version scripts/setup installs
AXE_FILE = REPO / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")

# axe.run on the whole document, violations only; the callback hands back what the report needs.
_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(
  result => done(result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(node => node.target.join(' ')),
  }))),
  error => done({error: String(error)}));
"""

# For each element matching arguments[0] whose text is at most arguments[1] characters: its
# text laid out line by line (one Range per character, grouped by the top of its box); an
# element is reported when its text has more than one character and some line holds exactly one.
_ONE_CHARACTER_LINES = """
const offenders = [];
for (const element of document.querySelectorAll(arguments[0])) {
  if (!element.getClientRects().length) { continue; }  // not rendered
  if (element.textContent.trim().length > arguments[1]) { continue; }  // long text may wrap
  const lines = new Map();
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.data.length; i++) {
      if (/\\s/.test(node.data[i])) { continue; }
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const box = range.getBoundingClientRect();
      if (box.width === 0 && box.height === 0) { continue; }
      const top = Math.round(box.top);
      lines.set(top, (lines.get(top) || '') + node.data[i]);
    }
  }
  const texts = [...lines.entries()].sort((a, b) => a[0] - b[0]).map(entry => entry[1]);
  const characters = texts.join('').length;
  if (characters > 1 && texts.length > 1 && texts.some(line => line.length === 1)) {
    offenders.push({tag: element.tagName.toLowerCase(), id: element.id, cls: element.className,
                    lines: texts});
  }
}
return offenders;
"""


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def line(self) -> str:
        return f"{self.rule} ({self.impact}): {self.help} -- {', '.join(self.targets)}"


def axe_file() -> Path:
    return Path(os.environ.get("IMSS_AXE") or AXE_FILE)


def load_axe() -> str:
    """Return the text of axe.min.js; skip the test without it, fail it in CI."""
    path = axe_file()
    if not path.is_file():
        why = f"axe-core is not installed at {path} (scripts/setup installs axe-core@{AXE_VERSION})"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    source = path.read_text(encoding="utf-8")
    if not source.startswith(f"/*! axe v{AXE_VERSION}\n"):
        pytest.fail(f"{path} is not axe-core {AXE_VERSION}: {source[:30]!r} (run scripts/setup)")
    return source


def run_axe(driver: Any, source: str) -> list[Violation]:
    """Inject axe into the page the driver shows and return every violation found there."""
    driver.set_script_timeout(60)
    driver.execute_script(source)
    found = driver.execute_async_script(_RUN)
    if isinstance(found, dict):
        raise AssertionError(f"axe could not run on {driver.current_url}: {found.get('error')}")
    return [Violation(item["id"], item["impact"] or "unknown", item["help"], tuple(item["targets"]))
            for item in found]


def serious(violations: list[Violation]) -> list[Violation]:
    return [violation for violation in violations if violation.impact in BLOCKING_IMPACTS]


def one_character_lines(driver: Any, selector: str, longest: int) -> list[str]:
    """Describe each element matching ``selector`` (with a text of at most ``longest``
    characters) that shows a line of a single character."""
    found = driver.execute_script(_ONE_CHARACTER_LINES, selector, longest)
    return [f"<{item['tag']} id={item['id']!r} class={item['cls']!r}> {' / '.join(item['lines'])}"
            for item in found]


def page_overflow(driver: Any) -> tuple[int, int]:
    """Return (the page's scroll width, the window's inner width)."""
    width, inner = driver.execute_script(
        "return [document.scrollingElement.scrollWidth, window.innerWidth];")
    return int(width), int(inner)


def used_fonts(driver: Any, selector: str) -> set[str]:
    """Return the names of the font faces Chromium really drew the first ``selector`` with."""
    from selenium.common.exceptions import WebDriverException

    driver.execute_cdp_cmd("DOM.enable", {})
    driver.execute_cdp_cmd("CSS.enable", {})
    query = f"document.querySelector({selector!r})"
    for _attempt in range(5):
        # chromedriver asks for the document itself now and then, which ends the node ids
        # handed out before: then ask again.
        try:
            driver.execute_cdp_cmd("DOM.getDocument", {"depth": -1})
            element = driver.execute_cdp_cmd("Runtime.evaluate", {"expression": query})
            object_id = element["result"].get("objectId")
            assert object_id, f"nothing matches {selector!r}"
            node = driver.execute_cdp_cmd("DOM.requestNode", {"objectId": object_id})["nodeId"]
            fonts = driver.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
            return {str(font["familyName"]) for font in fonts}
        except WebDriverException as error:
            if "does not belong to the document" not in str(error):
                raise
    raise AssertionError(f"the node ids for {selector!r} kept going stale")


# Each ISO date (with its time and zone) in a text node under arguments[0]: reported when the
# browser lays it out on more than one line (2027-/12-01).
_BROKEN_DATES = """
const broken = [];
const pattern = /\\d{4}-\\d\\d-\\d\\d( \\d\\d:\\d\\d(:\\d\\d)?( [A-Z]{2,5}| [+-]\\d{2}:?\\d{2})?)?/g;
const walker = document.createTreeWalker(document.querySelector(arguments[0]), NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  for (const match of node.data.matchAll(pattern)) {
    const range = document.createRange();
    range.setStart(node, match.index);
    range.setEnd(node, match.index + match[0].length);
    const tops = new Set([...range.getClientRects()].filter(box => box.width > 0)
                         .map(box => Math.round(box.top)));
    if (tops.size > 1) { broken.push(match[0]); }
  }
}
return broken;
"""


def broken_dates(driver: Any, selector: str = "main") -> list[str]:
    """Return each date (and time) under ``selector`` that wraps onto a second line."""
    return [str(date) for date in driver.execute_script(_BROKEN_DATES, selector)]
