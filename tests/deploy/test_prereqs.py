"""`make test` / `make demo` stop with what to install when Java or Maven is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run_make_prereqs(tmp_path: Path, tools: list[str]) -> subprocess.CompletedProcess[str]:
    """`make prereqs` with a PATH holding only `tools` (plus sh and python3)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python3")
    for tool in ["sh", "sed", "head", *tools]:
        os.symlink(shutil.which(tool), bin_dir / tool)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(
        [shutil.which("make"), "-s", "-C", str(ROOT), "prereqs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_java_missing(tmp_path: Path) -> None:
    result = run_make_prereqs(tmp_path, ["mvn"])
    assert result.returncode != 0
    assert "missing prerequisite: Java 17+ (java not found" in result.stderr
    assert "install: apt-get install openjdk-17-jre-headless" in result.stderr
    assert "Maven" not in result.stderr


def test_maven_missing(tmp_path: Path) -> None:
    result = run_make_prereqs(tmp_path, ["java"])
    assert result.returncode != 0
    assert "missing prerequisite: Maven (mvn not found" in result.stderr
    assert "install: apt-get install maven" in result.stderr
    assert "Java" not in result.stderr


def test_all_present(tmp_path: Path) -> None:
    result = run_make_prereqs(tmp_path, ["java", "mvn"])
    assert (result.returncode, result.stderr) == (0, "")
