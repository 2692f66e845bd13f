"""README's two set-up commands stay true: CI runs the second word for word (.ci/run); the first
installs an extra that must bring everything `trm-edge demo` imports, and ends in the demo."""

from __future__ import annotations

import re

import tomllib

from conftest import REPO


def setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_readme_has_exactly_the_demo_and_test_commands() -> None:
    demo, tests = setup_commands()
    assert demo.endswith(".venv/bin/trm-edge demo") and "torch==2.13.0" in demo
    assert tests.endswith(".venv/bin/python -m pytest -q")
    assert tests in (REPO / ".ci" / "run").read_text()  # CI runs it as written


def test_demo_extra_brings_what_the_demo_needs() -> None:
    demo, _ = setup_commands()
    extra = re.search(r'-e "\.\[(\w+)\]"', demo).group(1)  # type: ignore[union-attr]
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    needed = " ".join(extras[extra])
    for part in ("cpu", "torch", "plot"):  # ONNX Runtime, export + the PyTorch comparison, the plot
        assert part in needed, f"the {extra!r} extra lacks {part}"
