"""Regenerates the README figures: ``shift_study.png`` and ``eval_plot.png`` (in this folder).

Both come from real runs of the package on this machine (CPU is fine, about 5 minutes):

* ``shift_study.png``: ``run_shift_study`` (as ``shiftlpips shift-study``) with ST-LPIPS alex /
  vgg, LPIPS alex / vgg and L2 on the bundled photo plus five photos shipped inside
  scikit-image (astronaut, coffee, rocket, camera, gravel; public domain / CC0), each resized to
  a shorter side of 256 pixels; drawn with ``plot_shift_study`` (mean over the six images,
  shaded 95% Student-t CI of the mean, people's curve from the paper's user study).
* ``eval_plot.png``: ``shiftlpips eval --json`` for ST-LPIPS alex, LPIPS alex and L2 (Lab) on a
  generated BAPPS-layout folder (``tests/bapps_fixture.py``: 6 val sets x 24 triplets of real
  photo patches with real distortions, 64x64; the judges are random, so the 2AFC scores sit
  near chance and only the layout and the rank-flip rates are meaningful), drawn with
  ``plot_eval``.

Needs the test extra (scikit-image, matplotlib)::

    pip install -c constraints.txt -e '.[test]'
    python docs/figures/make_figures.py            # writes docs/figures/*.png
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from bapps_fixture import make_2afc  # noqa: E402

from shiftlpips_jax import cli  # noqa: E402
from shiftlpips_jax._src import plots  # noqa: E402
from shiftlpips_jax._src.evaluation import shift_study  # noqa: E402

PHOTOS = ("astronaut", "coffee", "rocket", "camera", "gravel")
EVAL_RUNS = (("ST-LPIPS alex", ["--net", "alex", "--variant", "shift_tolerant"]),
             ("LPIPS alex", ["--net", "alex", "--variant", "lpips"]),
             ("L2 (Lab)", ["--net", "l2", "--colorspace", "Lab"]))
DPI = 100          # keeps each PNG under 150 KB


def shift_study_figure(work: str, out: str) -> None:
    import skimage.data
    paths = [shift_study.default_image()]
    for name in PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        path = os.path.join(work, f"{name}.png")
        Image.fromarray(np.ascontiguousarray(img[..., :3])).save(path)
        paths.append(path)
    study = shift_study.run_shift_study(paths, out=None, load_size=256)
    plots.plot_shift_study(study.shifts, study.raw, out, human_same=study.human_same, dpi=DPI)


def eval_figure(work: str, out: str) -> None:
    root = os.path.join(work, "2afc")
    make_2afc(root, {f"val/{s}": 24 for s in ("traditional", "cnn", "superres", "deblur",
                                               "color", "frameinterp")}, size=64, seed=0)
    jsons = []
    for k, (_, args) in enumerate(EVAL_RUNS):
        path = os.path.join(work, f"eval_{k}.json")
        rc = cli.main(["eval", root, *args, "--load-size", "64", "--shifts", "1", "2", "3",
                       "--json", path, "--no-progress"])
        if rc != 0:
            raise SystemExit(f"shiftlpips eval {' '.join(args)} failed ({rc})")
        jsons.append(path)
    plots.plot_eval(jsons, out, names=[name for name, _ in EVAL_RUNS], dpi=DPI,
                    title="BAPPS 2AFC layout on a generated fixture (random judges: 2AFC near "
                          "50%; rank flips are real)")


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        for name, make in (("shift_study.png", shift_study_figure),
                           ("eval_plot.png", eval_figure)):
            out = os.path.join(HERE, name)
            make(work, out)
            print(f"wrote {out} ({os.path.getsize(out) / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
