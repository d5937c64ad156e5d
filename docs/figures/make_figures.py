"""Regenerates the README figures: ``shift_study.png`` and ``eval_plot.png`` (in this folder).

Both come from real runs of the command line on this machine (CPU is fine: 12m51s on this
project's shared 2-core CPU, 2026-12-01 — 269 s for the shift study, 488 s for the fixture and
the three evals, 208 s of it XLA compilation; the script prints each figure's time):

* ``shift_study.png``: ``shiftlpips shift-study --out shift_study.png`` as a user runs it:
  ST-LPIPS alex / vgg, LPIPS alex / vgg and L2 on the four bundled photos (CC0 / public
  domain, 256x256), mean over the photos with a shaded 95% Student-t CI of the mean, people's
  curve from the paper's user study.
* ``eval_plot.png``: ``shiftlpips eval --json`` for LPIPS alex and L2 (Lab), then
  ``shiftlpips eval --net alex --plot eval_plot.png --plot-with ...`` for ST-LPIPS alex, on a
  generated BAPPS-layout folder (``tests/bapps_fixture.py``: 6 val sets x 24 triplets of real
  photo patches with real distortions, 64x64). Its judges are random, so the 2AFC scores sit
  near chance and only the layout and the rank-flip rates are meaningful.

Needs the test extra (scikit-image for the fixture, matplotlib)::

    pip install -c constraints.txt -e '.[test]'
    python docs/figures/make_figures.py            # writes docs/figures/*.png
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from bapps_fixture import make_2afc  # noqa: E402

from shiftlpips_jax import cli  # noqa: E402

OTHER_RUNS = (["--net", "alex", "--variant", "lpips"], ["--net", "l2", "--colorspace", "Lab"])


def _shiftlpips(*argv: str) -> None:
    rc = cli.main(list(argv))
    if rc != 0:
        raise SystemExit(f"shiftlpips {' '.join(argv)} failed ({rc})")


def shift_study_figure(work: str, out: str) -> None:
    _shiftlpips("shift-study", "--out", out)


def eval_figure(work: str, out: str) -> None:
    root = os.path.join(work, "2afc")
    make_2afc(root, {f"val/{s}": 24 for s in ("traditional", "cnn", "superres", "deblur",
                                               "color", "frameinterp")}, size=64, seed=0)
    common = ["--load-size", "64", "--shifts", "1", "2", "3", "--no-progress"]
    others = []
    for k, args in enumerate(OTHER_RUNS):
        path = os.path.join(work, f"eval_{k}.json")
        _shiftlpips("eval", root, *args, *common, "--json", path)
        others.append(path)
    _shiftlpips("eval", root, "--net", "alex", "--variant", "shift_tolerant", *common,
                "--plot", out, "--plot-with", *others)


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        for name, make in (("shift_study.png", shift_study_figure),
                           ("eval_plot.png", eval_figure)):
            out = os.path.join(HERE, name)
            start = time.perf_counter()
            make(work, out)
            print(f"wrote {out} ({os.path.getsize(out) / 1024:.0f} KB, "
                  f"{time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
