"""docs/architecture.md is the map of the tree: it cannot drift from it.

Every package (a folder with ``__init__.py``) has a row in "Where things live"
naming every module and data folder in it; `streams/` holds no loose modules;
the layers the page lists are the ones `make lint` enforces.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
CODE = ("streams", "sinks", "schemas")
NOT_MODULES = {"__init__.py", "__pycache__", "README.md"}


def _rows() -> dict[str, set[str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Where things live") :]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0].endswith("/`"):
            rows[cells[0].strip("`").rstrip("/")] = set(re.findall(r"`([^`]+)`", cells[2]))
    return rows


def _packages() -> list[Path]:
    return sorted(
        init.parent.relative_to(ROOT) for top in CODE for init in (ROOT / top).rglob("__init__.py")
    )


def _contents(package: Path) -> set[str]:
    """Modules and data files/folders of a package, without its subpackages."""
    out = set()
    for entry in (ROOT / package).iterdir():
        if entry.name in NOT_MODULES:
            continue
        if entry.is_dir():
            if not (entry / "__init__.py").exists():
                out.add(f"{entry.name}/")
        else:
            out.add(entry.name)
    return out


def test_every_package_has_a_row_and_every_row_a_package() -> None:
    rows = set(_rows())
    listed = {str(p) for p in _packages() if _contents(p)}
    assert rows == listed, (
        f"packages without a row: {sorted(listed - rows)}; rows without a package: "
        f"{sorted(rows - listed)}"
    )


def test_each_row_names_exactly_the_modules_of_its_package() -> None:
    for package, named in _rows().items():
        actual = _contents(Path(package))
        assert named - {"__init__.py"} == actual, (
            f"{package}/: missing from docs/architecture.md {sorted(actual - named)}, "
            f"named but not in the tree {sorted(named - actual - {'__init__.py'})}"
        )


def test_streams_has_no_loose_modules() -> None:
    loose = {
        p.name
        for p in (ROOT / "streams").iterdir()
        if p.suffix == ".py" and p.name not in {"__init__.py", "__main__.py"}
    }
    assert loose == set()


def test_the_layers_on_the_page_are_the_enforced_ones() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    enforced = [
        sorted(m.strip().removeprefix("vocflow.").replace(".", "/") for m in layer.split("|"))
        for layer in layers
    ]
    text = DOC.read_text(encoding="utf-8")
    listed = [
        sorted(re.findall(r"`([^`]+)`", line))
        for line in text.splitlines()
        if re.match(r"^\d+\. `", line)
    ]
    assert listed == enforced
