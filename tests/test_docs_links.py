"""The documentation's relative links lead somewhere: every link in README.md and docs/*.md to a
file of the repository names one that exists, inside the repository, and a link to a heading
names a heading of that file (as GitHub makes its anchors)."""

import re
from pathlib import Path

import pytest

from conftest import PROJECT_DIR

DOCUMENTS = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
FENCED_BLOCK = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)


def _prose(path: Path) -> str:
    """The file's text without code, whose brackets and parentheses are no links."""
    return INLINE_CODE.sub("", FENCED_BLOCK.sub("", path.read_text()))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the file's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated one numbered."""
    anchors: set[str] = set()
    for heading in HEADING.findall(_prose(path)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, number = slug, 0
        while candidate in anchors:
            number += 1
            candidate = f"{slug}-{number}"
        anchors.add(candidate)
    return anchors


def _relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(_prose(path))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)
    ]


def test_the_documents_are_found_and_link_to_each_other():
    # given / then: the README links every file of docs/, so none is an orphan
    assert len(DOCUMENTS) > 5
    readme_links = {
        (PROJECT_DIR / target.split("#")[0]).resolve()
        for target in _relative_links(PROJECT_DIR / "README.md")
    }
    assert [path.name for path in DOCUMENTS[1:] if path.resolve() not in readme_links] == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_relative_link_names_an_existing_file_and_heading(document):
    # given
    broken = []

    # when
    for target in _relative_links(document):
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if not linked.is_relative_to(PROJECT_DIR) or not linked.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")

    # then
    assert broken == []
