# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Package metadata: the version is written once and the changelog follows it; the dependencies install without
warnings of our own making."""

import configparser
import importlib.metadata
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import zvp_trl


REPO = Path(__file__).resolve().parents[1]
CHANGELOG = REPO / "CHANGELOG.md"
VERSION_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d{2}-\d{2}|Unreleased)$")


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return config


def _install_requires() -> list[Requirement]:
    lines = _setup_cfg()["options"]["install_requires"].splitlines()
    return [Requirement(line.strip()) for line in lines if line.strip() and not line.strip().startswith("#")]


@pytest.mark.unit
def test_the_version_is_written_once():
    version = Version(zvp_trl.__version__)  # a valid PEP 440 version
    assert _setup_cfg()["metadata"]["version"] == "attr: zvp_trl.__version__"  # setup.cfg reads it from the package
    assert "[project]" not in (REPO / "pyproject.toml").read_text()  # no second metadata table to hold another
    # No other file of the package or its metadata spells the version out.
    spelled = re.compile(re.escape(version.base_version) + r"(?![\d])")
    files = [REPO / "setup.cfg", REPO / "pyproject.toml", *sorted((REPO / "zvp_trl").rglob("*.py"))]
    holders = [p.relative_to(REPO).as_posix() for p in files if spelled.search(p.read_text())]
    assert holders == ["zvp_trl/__init__.py"]


@pytest.mark.unit
def test_the_changelog_starts_at_the_current_version():
    lines = CHANGELOG.read_text().splitlines()
    assert lines[0] == "# Changelog"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings, "CHANGELOG.md has no version section"
    matches = [VERSION_HEADING.match(line) for line in headings]
    assert all(matches), [h for h, m in zip(headings, matches) if not m]
    versions = [Version(m["version"]) for m in matches]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(
        versions
    )  # newest first, once each
    assert versions[-1] == Version("0.1.0")  # the first version
    current = Version(zvp_trl.__version__)
    assert versions[0] == Version(current.base_version)
    # A development version is not released yet: its section carries no date.
    assert (matches[0]["date"] == "Unreleased") == current.is_devrelease
    # Keep a Changelog's kinds of change only.
    kinds = {line[4:] for line in lines if line.startswith("### ")}
    assert kinds and kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


@pytest.mark.unit
def test_no_requirement_asks_for_an_extra_its_package_does_not_provide_as_spelled():
    """pip before 24 compares extra names as written and warns on a mismatch (e.g. `antlr4_13_2` against math-verify's
    `antlr4-13-2`)."""
    requirements = _install_requires()
    assert {"trl", "math-verify", "antlr4-python3-runtime"} <= {r.name for r in requirements}
    for requirement in requirements:
        if requirement.extras:
            provided = importlib.metadata.metadata(requirement.name).get_all("Provides-Extra") or []
            assert requirement.extras <= set(provided), (str(requirement), provided)


@pytest.mark.unit
def test_the_antlr_runtime_is_the_one_math_verifys_extra_pins():
    (antlr,) = [r for r in _install_requires() if r.name == "antlr4-python3-runtime"]
    # math-verify's antlr4-13-2 extra -> latex2sympy2_extended's extra of that name -> the runtime pin.
    extra_requirements = [
        Requirement(line) for line in importlib.metadata.requires("latex2sympy2_extended") or [] if "extra ==" in line
    ]
    pins = {
        str(r.specifier)
        for r in extra_requirements
        if r.name == "antlr4-python3-runtime" and r.marker.evaluate({"extra": "antlr4-13-2"})
    }
    assert pins == {str(antlr.specifier)} == {"==4.13.2"}
    assert importlib.metadata.version("antlr4-python3-runtime") in antlr.specifier


@pytest.mark.unit
def test_the_deepspeed_extra_pins_the_version_the_tests_run():
    """`pip install -e ".[deepspeed]"` gives the DeepSpeed that tests/test_deepspeed.py trains with (on CPU processes)."""
    lines = _setup_cfg()["options.extras_require"]["deepspeed"].splitlines()
    (pin,) = [Requirement(line.strip()) for line in lines if line.strip() and not line.strip().startswith("#")]
    assert pin.name == "deepspeed" and str(pin.specifier).startswith("==")
    assert importlib.metadata.version("deepspeed") in pin.specifier


@pytest.mark.distributed
def test_the_wheel_ships_the_built_embedded_models(tmp_path):
    """The shipped base models are package data: a wheel holds every file of each (and nothing is built at install)."""
    import subprocess
    import sys
    import zipfile

    from zvp_trl.data.embedded.model import SHIPPED_DIR

    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = tmp_path.glob("zvp_trl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"zvp_trl/data/embedded/built-models/{p.parent.name}/{p.name}" for p in SHIPPED_DIR.glob("*/*")}
    assert len(expected) >= 12 and expected <= names, sorted(expected - names)
