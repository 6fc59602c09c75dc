"""The README and docs/ stand alone: no path outside the repository, and every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OUTSIDE = re.compile(r"\.\./shared|/work/|shared/reference")
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_path_outside_the_repository(page):
    hits = [f"{page.name}:{i}: {line.strip()}" for i, line in enumerate(page.read_text().splitlines(), 1)
            if OUTSIDE.search(line)]
    assert not hits, "a page points outside the repository:\n" + "\n".join(hits)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor on the same page
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name} links to missing files: {broken}"


def test_the_readme_is_short_and_names_its_two_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "make run" in text and "make test" in text
