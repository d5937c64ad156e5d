"""The README stays true: its Python snippets run, and the quickstart output is what we print."""

import io
import os
import re

from shiftlpips_jax._src.compare_cli import run_example
from conftest import REPO

README = open(os.path.join(REPO, "README.md")).read()


def test_python_snippets_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["d"].shape == (4,)
    assert namespace["m"].shape == (4, 64, 64, 1)
    assert namespace["grad"].shape == (4, 64, 64, 3)


def test_quickstart_has_two_commands_and_true_output():
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)[0].strip().splitlines()
    assert [c.split("#")[0].strip() for c in commands] == ["make example", "make test"]
    printed = re.findall(r"```\n(Bundled example.*?)```", quick, flags=re.S)[0]
    buf = io.StringIO()
    run_example(out=buf)
    assert buf.getvalue() == printed
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    assert "make test" in ci
