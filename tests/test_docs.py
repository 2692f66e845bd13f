"""What the code and the docs point at exists: every project file a docstring, comment or document
names, and every link in README and docs/ (which never leaves the project)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import REPO

# A project path as prose names it: a top-level folder of the project, then a file with a suffix.
PROJECT_PATH = re.compile(r"(?<![\w./-])((?:trm_edge|runtime|export|train|tests|benchmarks|examples|docs|\.ci)/"
                          r"[\w./-]*\w\.(?:json|py|md|sh|mjs|js|yaml|html|png|txt|npz))\b")
OUTPUTS = ("benchmarks/results/",)  # what the benchmarks write (ignored by git), not files of the project
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked(*suffixes: str) -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / n for n in names if n.endswith(suffixes) and not n.startswith("tests/fixtures/")]


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_project_file_the_code_and_docs_name_exists() -> None:
    missing = []
    for path in tracked(".py", ".md", ".toml", ".yaml", ".sh"):
        for match in PROJECT_PATH.finditer(path.read_text(errors="replace")):
            named = match.group(1)
            if not named.startswith(OUTPUTS) and not (REPO / named).exists():
                missing.append(f"{path.relative_to(REPO)} names {named}")
    assert not missing, "\n".join(missing)


def test_every_link_in_the_docs_resolves_inside_the_project() -> None:
    """A relative link resolves from its document's folder to a file of the project; a user has
    only the project, so no path in a document leaves it (../ appears only inside such links)."""
    broken = []
    for doc in documents():
        text = doc.read_text()
        for target in MARKDOWN_LINK.findall(text):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            resolved = (doc.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                broken.append(f"{doc.name}: {target}")
        outside_links = MARKDOWN_LINK.sub("", text)
        if "../" in outside_links:
            broken.append(f"{doc.name}: a path with ../ outside a link")
    assert not broken, "\n".join(broken)
