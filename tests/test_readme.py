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
    # The suite, then the phone runtimes' tests in their own environment (numpy 2: docs/testing.md).
    assert ".venv/bin/python -m pytest -q --ignore=tests/edge" in tests
    assert tests.endswith(".venv-edge/bin/python -m pytest -q tests/edge")
    assert tests in (REPO / ".ci" / "run").read_text()  # CI runs it as written


def test_demo_extra_brings_what_the_demo_needs() -> None:
    demo, _ = setup_commands()
    extra = re.search(r'-e "\.\[(\w+)\]"', demo).group(1)  # type: ignore[union-attr]
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    needed = " ".join(extras[extra])
    for part in ("cpu", "torch", "plot"):  # ONNX Runtime, export + the PyTorch comparison, the plot
        assert part in needed, f"the {extra!r} extra lacks {part}"


def test_readme_is_a_front_door() -> None:
    """At most 2,000 words; every result names its machine and a command that reproduces it, and
    that command's script is in the repository (tests/test_docs.py: links stay in the project)."""
    text = (REPO / "README.md").read_text()
    assert len(text.split()) <= 2000, len(text.split())
    section = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 5
    for what, figure, machine, command in rows[1:]:
        assert figure.strip() and machine.strip() and command.strip(), what
        assert any(word in machine for word in ("Xeon", "EPYC", "Zen", "GPU", "H100", "H200", "Jetson")), machine
        commands = re.findall(r"`([^`]+)`", command)
        assert commands or command.strip() in ("the second set-up command", "the first set-up command"), command
        for line in commands:
            words = line.split()
            assert words[0] in ("python", "bash", "trm-edge"), line
            if words[0] != "trm-edge":
                assert (REPO / words[1]).is_file(), f"{what}: {words[1]} is not in the repository"
