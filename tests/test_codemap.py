"""The README's code map matches the tree: every module of the package is listed, every listed
path exists, and every top-level folder of the repository is accounted for."""

import os
import re

import pytest

from conftest import REPO

pytestmark = pytest.mark.fast


def _code_map() -> dict[str, str]:
    readme = open(os.path.join(REPO, "README.md")).read()
    section = readme.split("\n## Code map\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, flags=re.M)
    assert len(rows) > 20, "the code map table is missing or malformed"
    return dict(rows)


def test_every_listed_path_exists():
    for path in _code_map():
        assert os.path.exists(os.path.join(REPO, path)), f"code map lists {path}, which is absent"


def test_every_module_of_the_package_is_listed():
    listed = set(_code_map())
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, "shiftlpips_jax")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), REPO)
                assert rel in listed, f"{rel} is not in the README's code map"


def test_every_top_level_folder_is_listed():
    listed = {p.rstrip("/").split("/")[0] for p in _code_map()}
    for name in os.listdir(REPO):
        path = os.path.join(REPO, name)
        if os.path.isdir(path) and not name.startswith(".") and name not in (
                "build", "dist") and not name.endswith(".egg-info"):
            if os.path.exists(os.path.join(path, "pyvenv.cfg")):
                continue  # a virtual environment
            assert name in listed, f"top-level folder {name}/ is not in the code map"
