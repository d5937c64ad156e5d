"""The shift study (``shiftlpips shift-study``): distance versus pixel shift, beside people.

The paper's user study (Ghildyal & Liu, ECCV 2022, project page table "Pixel shift / Said Yes
(Same)") asked people whether an image and its copy shifted by 0-9 pixels were the same; the
"same" rate falls gradually with the shift. This command shifts each image right by n = 0 ..
``max_shift`` pixels as a crop-shift (``ref = img[:, :W-m]``, ``shifted = img[:, n:n+W-m]``, m =
``max_shift``), measures each metric's distance, and plots, on one scale, every metric's
distance normalised to its value at ``max_shift`` next to the people's "different" rate
(1 - same) normalised the same way (0 at no shift, 1 at the largest shift), so the shapes of the
curves can be compared. It also prints (and writes with ``--csv``) the raw numbers, the RMSE of
each normalised curve against people's, and the Pearson correlation of the raw distances with
people's "different" rate.

Example::

    study = run_shift_study(["a.png"], max_shift=9, out="study.png", csv_path="study.csv")
    print(study.table())
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import sys
from typing import Sequence, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from shiftlpips_jax._src import images as images_lib
from shiftlpips_jax._src import outputs
from shiftlpips_jax._src.errors import InputError
from shiftlpips_jax._src.data.folder import resize_shorter_side
from shiftlpips_jax._src.evaluation import chart as _chart
from shiftlpips_jax._src.evaluation.runner import tile_features
from shiftlpips_jax._src.pixels import to_unit_range
from shiftlpips_jax._src.evaluation import distances as _distances

__all__ = ["MODELS", "DEFAULT_MODELS", "ShiftStudy", "human_same_rate", "shift_distances",
           "run_shift_study", "default_image", "DESCRIPTION"]

# id -> (net, variant, label)
MODELS = {
    "st-alex": ("alex", "shift_tolerant", "ST-LPIPS alex"),
    "st-vgg": ("vgg", "shift_tolerant", "ST-LPIPS vgg"),
    "lpips-alex": ("alex", "lpips", "LPIPS alex"),
    "lpips-vgg": ("vgg", "lpips", "LPIPS vgg"),
    "l2": ("l2", "RGB", "L2 (RGB)"),
}
DEFAULT_MODELS = tuple(MODELS)
_ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "assets")


def default_image() -> str:
    """The bundled photo (scikit-image's ``chelsea``, CC0, a 256x256 crop)."""
    return os.path.join(_ASSETS, "shift_study_chelsea.png")


def human_same_rate() -> dict[int, float]:
    """{shift: fraction of people who said "same"} from the paper's user-study table."""
    path = os.path.join(_ASSETS, "user_study_shift.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {int(r["shift"]): int(r["said_same"]) / (int(r["said_same"]) + int(r["said_shifted"]))
            for r in rows}


def _normalise(curve: np.ndarray) -> np.ndarray:
    """0 at shift 0, 1 at the last shift (all zeros for a flat curve)."""
    curve = np.asarray(curve, np.float64)
    span = curve[-1] - curve[0]
    return (curve - curve[0]) / span if span != 0 else np.zeros_like(curve)


def _dist(model: str) -> _distances.Distance:
    net, variant, _ = MODELS[model]
    if net == "l2":
        return _distances.l2_distance(variant)
    return _distances.get_distance(net, variant)


def shift_distances(image: np.ndarray, dist: _distances.Distance, max_shift: int) -> np.ndarray:
    """Distances (max_shift + 1,) between ``img[:, :W-m]`` and ``img[:, n:n+W-m]``, n = 0..m."""
    h, w = image.shape[:2]
    width = w - max_shift
    if min(h, width) < dist.min_size:
        raise InputError(f"image of {h}x{w} is too small for shifts up to {max_shift} with "
                         f"{dist.name} (needs {dist.min_size} pixels after cropping)")
    x = to_unit_range(jnp.asarray(image)[None])
    shifted = jnp.concatenate([x[:, :, n:n + width] for n in range(max_shift + 1)])
    with jax.default_matmul_precision("highest"):
        f = dist.features(dist.params, shifted)
        # The reference crop is the n = 0 crop: reuse its features for every shift.
        f_ref = jax.tree.map(lambda a: a[:1], f)
        d = dist.compare(dist.params, tile_features(f_ref, max_shift + 1), f)
    return np.asarray(d, np.float64)


@dataclasses.dataclass
class ShiftStudy:
    """Results: per-model raw distances (image mean) and people's "same" rate per shift."""
    shifts: np.ndarray
    images: list[str]
    human_same: np.ndarray                  # NaN where the study has no data (shift > 9)
    raw: dict[str, np.ndarray]              # label -> (images, shifts)

    @property
    def mean(self) -> dict[str, np.ndarray]:
        return {k: v.mean(axis=0) for k, v in self.raw.items()}

    @property
    def human_span(self) -> int:
        """Number of leading shifts with human data."""
        return int(np.sum(np.isfinite(self.human_same)))

    def normalised(self) -> dict[str, np.ndarray]:
        """Curves on one scale over the shifts with human data: 0 at no shift, 1 at the last."""
        k = self.human_span if self.human_span >= 2 else len(self.shifts)
        out = {"people (1 - same rate)": _normalise(1.0 - self.human_same[:k])} \
            if self.human_span >= 2 else {}
        out.update({label: _normalise(m[:k]) for label, m in self.mean.items()})
        return out

    def agreement(self) -> dict[str, tuple[float, float]]:
        """{label: (RMSE of normalised curves vs people, Pearson r of raw distance vs
        people's "different" rate)} over the shifts with human data."""
        k = self.human_span
        if k < 2:
            return {}
        people = 1.0 - self.human_same[:k]
        norm = self.normalised()
        ref = norm["people (1 - same rate)"]
        out = {}
        for label, m in self.mean.items():
            rmse = float(np.sqrt(np.mean((norm[label] - ref) ** 2)))
            r = float(np.corrcoef(m[:k], people)[0, 1]) if np.std(m[:k]) > 0 else float("nan")
            out[label] = (rmse, r)
        return out

    def table(self) -> str:
        labels = list(self.raw)
        head = f"{'shift':>5}{'people same %':>15}" + "".join(f"{lab:>16}" for lab in labels)
        lines = [f"Distance vs right crop-shift, mean over {len(self.images)} image(s)", head,
                 "-" * len(head)]
        for j, n in enumerate(self.shifts):
            hs = self.human_same[j]
            line = f"{n:>5d}" + (f"{100 * hs:>15.1f}" if np.isfinite(hs) else f"{'-':>15}")
            line += "".join(f"{self.mean[lab][j]:>16.4f}" for lab in labels)
            lines.append(line)
        agree = self.agreement()
        if agree:
            lines.append("")
            lines.append(f"Agreement with people over shifts 0-{self.human_span - 1} "
                         "(normalised-curve RMSE, lower is closer; Pearson r of distance with "
                         "the 'different' rate):")
            for lab, (rmse, r) in sorted(agree.items(), key=lambda kv: kv[1][0]):
                lines.append(f"  {lab:<16} RMSE {rmse:.3f}   r {r:+.3f}")
        return "\n".join(lines)

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        norm = self.normalised()
        k = len(next(iter(norm.values())))
        labels = list(self.raw)
        w.writerow(["shift", "people_same_rate", "people_norm"]
                   + [f"{lab} distance" for lab in labels] + [f"{lab} norm" for lab in labels])
        for j, n in enumerate(self.shifts):
            hs = self.human_same[j]
            pn = norm.get("people (1 - same rate)")
            row = [int(n), f"{hs:.4f}" if np.isfinite(hs) else "",
                   f"{pn[j]:.6f}" if pn is not None and j < k else ""]
            row += [f"{self.mean[lab][j]:.8g}" for lab in labels]
            row += [f"{norm[lab][j]:.6f}" if j < k else "" for lab in labels]
            w.writerow(row)
        return buf.getvalue()

    def chart(self) -> np.ndarray:
        norm = self.normalised()
        k = len(next(iter(norm.values())))
        xs = list(self.shifts[:k])
        series = []
        if "people (1 - same rate)" in norm:
            series.append(_chart.Series("people: 1 - same rate", xs,
                                        norm["people (1 - same rate)"], color=(0, 0, 0),
                                        width=4, dashed=True))
        series += [_chart.Series(lab, xs, norm[lab]) for lab in self.raw]
        note = "\n".join(f"{lab}: RMSE {rmse:.3f}" for lab, (rmse, _) in
                         sorted(self.agreement().items(), key=lambda kv: kv[1][0]))
        return _chart.line_chart(
            series, title="Sensitivity to pixel shift: metrics vs people",
            xlabel="right shift (pixels)",
            ylabel="normalised difference (0 = no shift, 1 = largest)",
            ylim=(min(0.0, float(min(np.min(s.y) for s in series))),
                  max(1.0, float(max(np.max(s.y) for s in series)))),
            note=("RMSE vs people\n" + note) if note else "")


def run_shift_study(images: Sequence[str] | None = None, *, max_shift: int = 9,
                    models: Sequence[str] = DEFAULT_MODELS, load_size: int | None = 256,
                    out: str | None = "shift_study.png", csv_path: str | None = None,
                    stream: TextIO | None = None) -> ShiftStudy:
    """Runs the study on ``images`` (default: the bundled photo), writes the PNG / CSV.

    Args:
      images: image files; each is resized so its shorter side is ``load_size`` (bicubic;
        ``None`` keeps it).
      max_shift: largest shift in pixels (the user study covers 0-9).
      models: ids from :data:`MODELS` (``st-alex``, ``st-vgg``, ``lpips-alex``, ``lpips-vgg``,
        ``l2``).
      out, csv_path: where to write the chart (PNG) and the numbers (CSV), atomically (both
        or neither are replaced); checked before the work starts.
    """
    stream = stream or sys.stdout
    if max_shift < 1:
        raise InputError(f"--max-shift must be at least 1; got {max_shift}")
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise InputError(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    paths = list(images) if images else [default_image()]
    # Before any image is read or model loaded: the outputs are writable, distinct, not inputs.
    outputs.check_outputs([("--out", out or None), ("--csv", csv_path or None)], paths)
    imgs = []
    for p in paths:
        img = images_lib.load_rgb(p)
        imgs.append(resize_shorter_side(img, load_size) if load_size else img)
    human = human_same_rate()
    shifts = np.arange(max_shift + 1)
    raw = {}
    for m in models:
        dist = _dist(m)
        raw[MODELS[m][2]] = np.stack([shift_distances(img, dist, max_shift) for img in imgs])
    study = ShiftStudy(shifts=shifts, images=paths,
                       human_same=np.array([human.get(int(n), np.nan) for n in shifts]), raw=raw)
    print(study.table(), file=stream)
    files = []
    if out:
        files.append((out, images_lib.png_bytes(study.chart())))
    if csv_path:
        files.append((csv_path, study.csv_text().encode()))
    outputs.atomic_write_many(files)
    for path, _ in files:
        print(f"wrote {path}", file=stream)
    return study


# The command's --help text: this module's synopsis up to its example.
DESCRIPTION = __doc__.split("Example::")[0].replace(
    "The shift study (``shiftlpips shift-study``): ", "", 1)
