"""Figures with matplotlib: the shift study, BAPPS 2AFC results, spatial maps on one scale.

Each ``plot_*`` function takes plain arrays / dicts and a path, draws with matplotlib's Agg
renderer (a ``Figure`` of its own: no pyplot, no display, the caller's backend and rc settings
untouched), picks the format from the extension (``.png``, ``.svg``, ``.pdf``) and writes the
file atomically, refusing to write over one of its inputs; the ``render_*`` twins return the
bytes, for a caller that writes several outputs together. matplotlib is an optional dependency
(``pip install 'shiftlpips-jax[plot]'``), imported only when a figure is drawn; without it a
:class:`PlotDependencyError` says so. Colours are the Okabe-Ito palette and the maps use magma
(both readable with colour-blindness); lines also differ by marker.

Example::

    plot_shift_study(study.shifts, study.raw, "study.svg", human_same=study.human_same)
    plot_eval(["st_alex.json", "lpips_alex.json"], "eval.png")
    vmax = shared_vmax(maps)                              # one scale for the whole run
    map_figure(maps[0], "map0.png", vmax=vmax, image=img0)
"""

from __future__ import annotations

import io
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from . import outputs
from .errors import InputError, ShiftLPIPSError
from .streaming import student_t_quantile

__all__ = ["FORMATS", "MAX_MAPS", "PlotDependencyError", "figure_format", "render_shift_study",
           "plot_shift_study", "render_eval", "plot_eval", "shared_vmax", "render_map_figure",
           "map_figure"]

FORMATS = (".png", ".svg", ".pdf")
MAX_MAPS = 8  # side by side in one map figure
_INSTALL = "pip install 'shiftlpips-jax[plot]'"

# Okabe-Ito, without its yellow (too pale on white); markers tell lines apart in grey too.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_PEOPLE = "people: said “different” (1 − same rate)"

_RC = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.35, "grid.linewidth": 0.6,
    "lines.linewidth": 1.8, "lines.markersize": 5, "legend.frameon": False,
    # Text stays text in SVG (searchable, small) and PDF (TrueType, editable).
    "svg.fonttype": "none", "pdf.fonttype": 42, "svg.hashsalt": "shiftlpips",
}
# No dates or versions in the files: the same data gives the same bytes.
_METADATA = {".png": {"Software": None}, ".svg": {"Date": None, "Creator": None},
             ".pdf": {"CreationDate": None, "ModDate": None, "Producer": None,
                      "Creator": None}}


class PlotDependencyError(ShiftLPIPSError, ImportError):
    """matplotlib, needed to draw figures, is not installed."""


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotDependencyError(f"drawing figures needs matplotlib, which is not installed: "
                                  f"{_INSTALL}") from None
    return matplotlib, Figure, FigureCanvasAgg


def figure_format(path: str) -> str:
    """The figure format named by ``path``'s extension.

    Args:
      path: the output file.

    Returns:
      ``".png"``, ``".svg"`` or ``".pdf"``.

    Raises:
      InputError: any other extension, naming the accepted ones.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise InputError(f"cannot tell the figure format of {path}: the extension must be one "
                         f"of {', '.join(FORMATS)}" + (f" (got {ext})" if ext else ""))
    return ext


def _check_format(fmt: str) -> str:
    f = fmt.lower() if fmt.startswith(".") else "." + fmt.lower()
    if f not in FORMATS:
        raise InputError(f"unknown figure format {fmt!r}: use one of {', '.join(FORMATS)}")
    return f


def _new_figure(size: tuple[float, float]):
    matplotlib, Figure, Canvas = _matplotlib()
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=size, dpi=100)
        Canvas(fig)
    return matplotlib, fig


def _encode(matplotlib, fig, fmt: str, dpi: float) -> bytes:
    if not (isinstance(dpi, (int, float)) and 0 < dpi <= 2400):
        raise InputError(f"dpi must be a number in (0, 2400]; got {dpi!r}")
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format=fmt[1:], dpi=dpi, metadata=_METADATA[fmt])
    return buf.getvalue()


def _write(path: str, data: bytes) -> None:
    outputs.atomic_write_bytes(path, data)


# --------------------------------------------------------------------------------- shift study
def _normalise(curve: np.ndarray, k: int) -> tuple[float, float]:
    """(offset, scale) mapping curve[0] to 0 and curve[k-1] to 1 (scale 0 for a flat curve)."""
    span = float(curve[k - 1] - curve[0])
    return float(curve[0]), (1.0 / span if span != 0 else 0.0)


def _band(curves: np.ndarray, band: str | None) -> np.ndarray | None:
    """Half-width of the band around the mean over images (axis 0), or None."""
    n = curves.shape[0]
    if band is None or n < 2:
        return None
    std = np.std(curves, axis=0, ddof=1)
    if band == "std":
        return std
    return student_t_quantile(0.975, n - 1) * std / math.sqrt(n)


_BAND_TEXT = {"ci95": "95% CI of the mean (Student t)", "std": "±1 std over the images"}


def render_shift_study(shifts: Sequence[int], distances: Mapping[str, Any], *,
                       human_same: Sequence[float] | None = None, band: str | None = "ci95",
                       title: str | None = None, format: str = ".png",
                       dpi: float = 110) -> bytes:
    """Draws distance against pixel shift (raw and normalised panels); returns the file bytes.

    Left: each metric's mean distance over the images, with a shaded band. Right: the mean
    curves normalised to 0 at no shift and 1 at the last shift with people's data (as the
    shift study's table and RMSE do), beside people's "different" rate normalised the same
    way; no bands there, so the shapes stay readable.

    Args:
      shifts: (S,) increasing pixel shifts, e.g. 0..9.
      distances: ``{label: (images, S) or (S,)}`` raw distances per image and shift (the shift
        study's ``ShiftStudy.raw``).
      human_same: optional (S,) fraction of people who said "same", NaN where there is no data
        (``ShiftStudy.human_same``).
      band: ``"ci95"`` (Student-t 95% confidence interval of the mean over images), ``"std"``
        (±1 sample standard deviation over images) or ``None``; no band for one image.
      title: figure title (default: says the number of images and the band).
      format: ``".png"``, ``".svg"`` or ``".pdf"``.
      dpi: pixels per inch of a PNG (the figure is 11 x 4.6 inches).

    Returns:
      The encoded figure.

    Raises:
      InputError: shapes that do not fit, an unknown band or format.
      PlotDependencyError: matplotlib is not installed.
    """
    fmt = _check_format(format)
    x = np.asarray(shifts, np.float64)
    if x.ndim != 1 or x.size < 2 or not np.all(np.diff(x) > 0):
        raise InputError(f"shifts must be at least two increasing numbers; got {list(x)}")
    if band not in ("ci95", "std", None):
        raise InputError(f"band must be 'ci95', 'std' or None; got {band!r}")
    if not distances:
        raise InputError("distances is empty: give {label: (images, shifts) array}")
    curves = {}
    for label, d in distances.items():
        d = np.asarray(d, np.float64)
        d = d[None] if d.ndim == 1 else d
        if d.ndim != 2 or d.shape[1] != x.size or d.shape[0] < 1:
            raise InputError(f"distances[{label!r}] has shape {d.shape}; expected "
                             f"(images, {x.size}) or ({x.size},)")
        curves[str(label)] = d
    people = None
    if human_same is not None:
        h = np.asarray(human_same, np.float64)
        if h.shape != x.shape:
            raise InputError(f"human_same has shape {h.shape}; expected {x.shape}")
        people = h
    # Normalise over the leading shifts with people's data (all shifts without it).
    k = int(np.sum(np.isfinite(people))) if people is not None else 0
    if k < 2 or not np.all(np.isfinite(people[:k])):
        k, people = x.size, None
    images = {c.shape[0] for c in curves.values()}
    n_img = images.pop() if len(images) == 1 else None

    matplotlib, fig = _new_figure((11.0, 4.6))
    with matplotlib.rc_context(_RC):
        ax_raw, ax_norm = fig.subplots(1, 2)
        handles = []
        for j, (label, c) in enumerate(curves.items()):
            colour, marker = _COLOURS[j % len(_COLOURS)], _MARKERS[j % len(_MARKERS)]
            mean = c.mean(axis=0)
            half = _band(c, band)
            (line,) = ax_raw.plot(x, mean, color=colour, marker=marker, label=label)
            handles.append(line)
            off, scale = _normalise(mean, k)
            ax_norm.plot(x[:k], (mean[:k] - off) * scale, color=colour, marker=marker)
            if half is not None:
                ax_raw.fill_between(x, mean - half, mean + half, color=colour, alpha=0.18,
                                    linewidth=0)
        if people is not None:
            diff = 1.0 - people[:k]
            off, scale = _normalise(diff, k)
            (line,) = ax_norm.plot(x[:k], (diff - off) * scale, color="black", linestyle="--",
                                   linewidth=2.4, marker="*", markersize=8, label=_PEOPLE)
            handles.append(line)
        ax_raw.set_xlabel("right shift (pixels)")
        ax_raw.set_ylabel("distance to the unshifted crop")
        ax_raw.set_title("Raw distance")
        ax_raw.set_ylim(bottom=min(0.0, ax_raw.get_ylim()[0]))
        last = f"{x[k - 1]:g} px"
        ax_norm.set_xlabel("right shift (pixels)")
        ax_norm.set_ylabel(f"normalised (0 = no shift, 1 = {last})")
        ax_norm.set_title("Normalised" + (", beside people" if people is not None else ""))
        for ax in (ax_raw, ax_norm):
            ax.set_xticks(x if x.size <= 16 else ax.get_xticks())
            ax.set_xlim(x[0] - 0.3, x[-1] + 0.3)
        ax_norm.set_xlim(x[0] - 0.3, x[k - 1] + 0.3)
        if title is None:
            what = ("one image" if n_img == 1 else f"mean over {n_img} images" if n_img else
                    "mean over the images")
            if band and (n_img or 2) >= 2:
                what += f", shaded: {_BAND_TEXT[band]}"
            title = f"Sensitivity to pixel shift: {what}"
        fig.suptitle(title, fontsize=12)
        ncol = min(len(handles), 6 if len(handles) <= 6 else 4)
        fig.legend(handles=handles, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, 0.0))
        rows = math.ceil(len(handles) / ncol)
        fig.subplots_adjust(left=0.07, right=0.985, top=0.86, wspace=0.22,
                            bottom=0.15 + 0.05 * rows)
    return _encode(matplotlib, fig, fmt, dpi=dpi)


def plot_shift_study(shifts: Sequence[int], distances: Mapping[str, Any], path: str, *,
                     human_same: Sequence[float] | None = None, band: str | None = "ci95",
                     title: str | None = None, dpi: float = 110) -> None:
    """Writes the shift-study figure (see :func:`render_shift_study`) to ``path`` atomically.

    Args:
      shifts, distances, human_same, band, title, dpi: as :func:`render_shift_study`.
      path: output file; ``.png``, ``.svg`` or ``.pdf``.

    Raises:
      InputError: bad data, an unknown extension or an unwritable path.
      PlotDependencyError: matplotlib is not installed.
    """
    fmt = figure_format(path)
    outputs.check_outputs([("figure", path)])
    _write(path, render_shift_study(shifts, distances, human_same=human_same, band=band,
                                    title=title, format=fmt, dpi=dpi))


# ----------------------------------------------------------------------------------- eval plot
def _number(v: Any, where: str) -> float:
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{where} must be a number or null; got {v!r}")
    return float(v)


def _load_result(item: Any, k: int) -> tuple[dict, str, str | None]:
    """(json dict, default name, source path or None)."""
    if isinstance(item, Mapping):
        res, path = item, None
        where = f"result {k}"
    else:
        path = os.fspath(item)
        where = path
        try:
            with open(path, encoding="utf-8") as fh:
                res = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"eval result {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"cannot read eval result {path}: {err}") from None
    if not isinstance(res, Mapping):
        raise InputError(f"{where}: expected a JSON object written by 'shiftlpips eval --json'")
    if "2afc" not in res:
        if "jnd_map" in res:
            raise InputError(f"{where} is a JND result (jnd_map); the eval plot draws 2AFC "
                             "results ('shiftlpips eval --mode 2afc --json')")
        raise InputError(f"{where} has no '2afc' scores; expected the JSON of 'shiftlpips "
                         "eval --json' ({{\"2afc\": {{set: %, \"mean\": %}}, \"r_rf\": ...}})")
    if not isinstance(res["2afc"], Mapping) or not res["2afc"]:
        raise InputError(f"{where}: '2afc' must map set names to scores in %")
    rrf = res.get("r_rf", {})
    if not isinstance(rrf, Mapping):
        raise InputError(f"{where}: 'r_rf' must map shifts to {{set: %}}")
    for n, per in rrf.items():
        try:
            int(n)
        except (TypeError, ValueError):
            raise InputError(f"{where}: r_rf key {n!r} is not a pixel shift") from None
        if not isinstance(per, Mapping):
            raise InputError(f"{where}: r_rf[{n!r}] must map set names to rates in %")
    default = str(res.get("model") or (os.path.splitext(os.path.basename(path))[0] if path
                                       else f"result {k + 1}"))
    return dict(res), default, path


def _read_results(results: Sequence[Any], names: Sequence[str] | None):
    if isinstance(results, (str, os.PathLike, Mapping)):
        results = [results]
    results = list(results)
    if not results:
        raise InputError("no eval results given")
    loaded = [_load_result(r, k) for k, r in enumerate(results)]
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(loaded):
            raise InputError(f"{len(names)} names for {len(loaded)} results")
    else:
        names = [d for _, d, _ in loaded]
    seen: dict[str, int] = {}
    unique = []
    for n in names:                       # two runs of one model still get two legend entries
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return [r for r, _, _ in loaded], unique, [p for _, _, p in loaded if p]


def _short_sets(sets: list[str]) -> list[str]:
    prefixes = {s.split("/", 1)[0] for s in sets if "/" in s}
    if len(prefixes) == 1 and all("/" in s or s == "mean" for s in sets):
        return [s.split("/", 1)[1] if "/" in s else s for s in sets]
    return sets


def render_eval(results: Sequence[Any], *, names: Sequence[str] | None = None,
                title: str | None = None, format: str = ".png", dpi: float = 110) -> bytes:
    """Draws 2AFC per set (grouped bars) and r_rf against shift (lines); returns the bytes.

    Args:
      results: one or more results of ``shiftlpips eval --json`` (2AFC mode): dicts or paths
        to the JSON files, ``{"2afc": {set: %, "mean": %}, "r_rf": {"1": {set: %, "mean": %},
        ...}, "model": ...}``. Sets missing from a result get no bar; ``null`` scores neither.
      names: legend labels, one per result (default: each JSON's ``model``, else the file
        name without extension).
      title: figure title.
      format: ``".png"``, ``".svg"`` or ``".pdf"``.
      dpi: pixels per inch of a PNG (the figure is 4.6 inches high).

    Returns:
      The encoded figure: one panel per kind of score present (r_rf needs ``--shifts``).

    Raises:
      InputError: a file that is not a 2AFC result of ``shiftlpips eval``, or bad ``names``.
      PlotDependencyError: matplotlib is not installed.
    """
    fmt = _check_format(format)
    res, names, _ = _read_results(results, names)
    sets: list[str] = []
    for r in res:
        for s in r["2afc"]:
            if s != "mean" and s not in sets:
                sets.append(str(s))
    if any("mean" in r["2afc"] for r in res):
        sets.append("mean")
    scores = np.array([[_number(r["2afc"].get(s), f"2afc[{s!r}] of {n}") for s in sets]
                       for r, n in zip(res, names)])
    shifts = sorted({int(n) for r in res for n in r.get("r_rf", {})})
    rrf = np.array([[_number(r.get("r_rf", {}).get(str(n), {}).get("mean"),
                             f"r_rf[{n}]['mean'] of {name}") for n in shifts]
                    for r, name in zip(res, names)]) if shifts else None

    two = rrf is not None
    width = max(6.0, 1.0 + 0.55 * len(sets) * max(1.5, len(res) * 0.55))
    matplotlib, fig = _new_figure((min(width, 9.5) + (4.2 if two else 0.0), 4.6))
    with matplotlib.rc_context(_RC):
        if two:
            ax_bar, ax_rrf = fig.subplots(1, 2, width_ratios=[min(width, 9.5), 4.2])
        else:
            ax_bar, ax_rrf = fig.subplots(1, 1), None
        m = len(res)
        group = 0.8
        bw = group / m
        pos = np.arange(len(sets), dtype=np.float64)
        pos[-1] += 0.35 if sets[-1] == "mean" and len(sets) > 1 else 0.0   # set the mean apart
        handles = []
        for j, name in enumerate(names):
            colour = _COLOURS[j % len(_COLOURS)]
            xs = pos - group / 2 + bw * (j + 0.5)
            ok = np.isfinite(scores[j])
            bars = ax_bar.bar(xs[ok], scores[j][ok], width=bw * 0.92, color=colour, label=name,
                              zorder=3)
            handles.append(bars)
            if len(sets) * m <= 36:
                ax_bar.bar_label(bars, fmt="%.1f", fontsize=7 if m > 2 else 8, padding=1.5,
                                 rotation=90 if m > 2 else 0)
        finite = scores[np.isfinite(scores)]
        lo = min(50.0, 10.0 * math.floor((finite.min() - 3.0) / 10.0)) if finite.size else 0.0
        hi = min(100.0, finite.max() + (9.0 if m > 2 else 5.0)) if finite.size else 100.0
        ax_bar.set_ylim(max(0.0, lo), hi)
        ax_bar.axhline(50.0, color="0.4", linewidth=0.9, linestyle=":", zorder=2)
        ax_bar.set_xticks(pos, _short_sets(sets))
        if len(sets) > 4:
            for t in ax_bar.get_xticklabels():
                t.set_rotation(25)
                t.set_ha("right")
        ax_bar.set_ylabel("2AFC agreement with people (%)")
        ax_bar.set_title("2AFC per set (dotted: chance, 50%)")
        ax_bar.grid(axis="x", visible=False)
        if ax_rrf is not None:
            for j, name in enumerate(names):
                ok = np.isfinite(rrf[j])
                ax_rrf.plot(np.array(shifts)[ok], rrf[j][ok], color=_COLOURS[j % len(_COLOURS)],
                            marker=_MARKERS[j % len(_MARKERS)], label=name)
            ax_rrf.set_xticks(shifts)
            ax_rrf.set_xlim(min(shifts) - 0.3, max(shifts) + 0.3)
            ax_rrf.set_ylim(bottom=0.0, top=max(1.0, float(np.nanmax(rrf)) * 1.15)
                            if np.isfinite(rrf).any() else 1.0)
            ax_rrf.set_xlabel("shift of p0 and p1 against the reference (pixels)")
            ax_rrf.set_ylabel("rank-flip rate r_rf (%), mean over sets")
            ax_rrf.set_title("Rank flips under shift (lower is better)")
        fig.suptitle(title or ("BAPPS 2AFC: agreement with people"
                               + (" and shift tolerance" if two else "")), fontsize=12)
        ncol = min(m, 4)
        fig.legend(handles=handles, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, 0.0))
        rows = math.ceil(m / ncol)
        bottom = 0.1 + (0.07 if len(sets) > 4 else 0.0) + 0.05 * rows
        fig.subplots_adjust(left=0.07 if two else 0.1, right=0.985, top=0.86, wspace=0.25,
                            bottom=bottom)
    return _encode(matplotlib, fig, fmt, dpi=dpi)


def plot_eval(results: Sequence[Any], path: str, *, names: Sequence[str] | None = None,
              title: str | None = None, dpi: float = 110) -> None:
    """Writes the eval figure (see :func:`render_eval`) to ``path`` atomically.

    Args:
      results, names, title, dpi: as :func:`render_eval`.
      path: output file; ``.png``, ``.svg`` or ``.pdf``; never one of the result files.

    Raises:
      InputError: bad results, an unknown extension, an unwritable path or one that is an input.
      PlotDependencyError: matplotlib is not installed.
    """
    fmt = figure_format(path)
    items = [results] if isinstance(results, (str, os.PathLike, Mapping)) else list(results)
    inputs = [os.fspath(r) for r in items if not isinstance(r, Mapping)]
    outputs.check_outputs([("figure", path)], inputs)
    _write(path, render_eval(items, names=names, title=title, format=fmt, dpi=dpi))


# ---------------------------------------------------------------------------------- heat maps
def _as_maps(maps: Any) -> np.ndarray:
    """(N, H, W) float64 from (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1)."""
    try:
        m = np.asarray(maps, np.float64)
    except (TypeError, ValueError):
        raise InputError("maps must be numeric arrays of one shape: (H, W), (H, W, 1), "
                         "(N, H, W) or (N, H, W, 1)") from None
    if m.ndim in (3, 4) and m.shape[-1] == 1:          # (H, W, 1) or (N, H, W, 1)
        m = m[..., 0]
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or 0 in m.shape:
        raise InputError(f"maps of shape {np.shape(maps)}: expected (H, W), (H, W, 1), "
                         "(N, H, W) or (N, H, W, 1)")
    return m


def shared_vmax(maps: Any, *, percentile: float = 99.0) -> float:
    """One colour-scale top for every map of a run: a high percentile of all their values.

    The 99th percentile (default) over all pixels of all maps keeps one hot spot from
    darkening every other map; the few values above it show at the top colour (the colour bar
    marks them with an arrow). ``percentile=100`` gives the plain maximum.

    Args:
      maps: the run's maps, (H, W) arrays (a list, maybe of different sizes) or one stack.
      percentile: in (0, 100].

    Returns:
      A positive float (1.0 if every value is 0).

    Raises:
      InputError: no finite values, or ``percentile`` out of range.
    """
    if not 0.0 < percentile <= 100.0:
        raise InputError(f"percentile must be in (0, 100]; got {percentile}")
    if isinstance(maps, np.ndarray) or not isinstance(maps, (list, tuple)):
        parts = [_as_maps(maps).reshape(-1)]
    else:
        parts = [_as_maps(m).reshape(-1) for m in maps]
    if not parts:
        raise InputError("shared_vmax() needs at least one map")
    v = np.concatenate(parts)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise InputError("the maps hold no finite values")
    top = float(np.percentile(v, percentile)) if percentile < 100 else float(v.max())
    return top if top > 0 else 1.0


def render_map_figure(maps: Any, *, vmax: float, image: Any = None, alpha: float = 0.55,
                      titles: Sequence[str] | None = None, label: str = "distance",
                      format: str = ".png", dpi: float = 100) -> bytes:
    """Draws spatial distance maps on one fixed colour scale with a colour bar; returns bytes.

    Colours run from 0 (dark) to ``vmax`` (bright) in magma, the same for every map and every
    figure drawn with the same ``vmax`` (see :func:`shared_vmax`), so maps compare across a
    run. With ``image`` the map is laid over the image, drawn in grey (its colours would read
    as distances), with opacity ``alpha``.

    Args:
      maps: (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1) non-negative values (e.g.
        ``metric(x, y, spatial=True)``); N <= :data:`MAX_MAPS` maps are drawn side by side.
      vmax: the top of the colour scale (> 0).
      image: optional (H', W', 3) uint8 image, or (N, H', W', 3), under the maps (stretched
        to the map's extent).
      alpha: opacity of the map over ``image``, in (0, 1].
      titles: optional caption per map.
      label: colour-bar label.
      format: ``".png"``, ``".svg"`` or ``".pdf"``.
      dpi: pixels per inch (each map is 4 inches wide alone, 3.2 side by side).

    Returns:
      The encoded figure.

    Raises:
      InputError: shapes that do not fit, a bad ``vmax`` or ``alpha``.
      PlotDependencyError: matplotlib is not installed.
    """
    fmt = _check_format(format)
    m = _as_maps(maps)
    n, h, w = m.shape
    if n > MAX_MAPS:
        raise InputError(f"{n} maps in one figure; draw at most {MAX_MAPS} side by side (one "
                         "figure per image, with one shared vmax, compares a whole run)")
    try:
        vmax = float(vmax)
    except (TypeError, ValueError):
        raise InputError(f"vmax must be a positive number; got {vmax!r}") from None
    if not (vmax > 0 and math.isfinite(vmax)):
        raise InputError(f"vmax must be a positive finite number; got {vmax}")
    if not 0.0 < float(alpha) <= 1.0:
        raise InputError(f"alpha must be in (0, 1]; got {alpha}")
    imgs = None
    if image is not None:
        imgs = np.asarray(image)
        if imgs.ndim == 3:
            imgs = np.broadcast_to(imgs[None], (n,) + imgs.shape)
        if imgs.ndim != 4 or imgs.shape[0] != n or imgs.shape[-1] != 3 or \
                imgs.dtype != np.uint8:
            raise InputError(f"image of shape {np.shape(image)} and dtype {imgs.dtype}: "
                             f"expected (H, W, 3) or ({n}, H, W, 3) uint8")
    if titles is not None:
        titles = [str(t) for t in titles]
        if len(titles) != n:
            raise InputError(f"{len(titles)} titles for {n} maps")

    # Fixed geometry (no automatic layout): a map's pixels land in the same place whatever
    # the values or the colour-bar labels, so figures of one run line up.
    pw = 3.2 if n > 1 else 4.0
    ph = pw * h / w
    top_pad = 0.45 if titles else 0.15
    left, gap, cb_gap, cb_w, right = 0.15, 0.15, 0.15, 0.18, 1.0
    fw = left + n * pw + (n - 1) * gap + cb_gap + cb_w + right
    fh = ph + top_pad + 0.2
    matplotlib, fig = _new_figure((fw, fh))
    with matplotlib.rc_context(_RC):
        cmap = matplotlib.colormaps["magma"]
        mappable = None
        for i in range(n):
            ax = fig.add_axes(((left + i * (pw + gap)) / fw, 0.2 / fh, pw / fw, ph / fh))
            ax.set_axis_off()
            extent = (0, w, h, 0)
            if imgs is not None:
                # The image in grey under the map: its own colours would read as distances.
                grey = imgs[i].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
                ax.imshow(grey, cmap="gray", vmin=0, vmax=255, extent=extent,
                          interpolation="nearest")
            mappable = ax.imshow(m[i], cmap=cmap, vmin=0.0, vmax=vmax, extent=extent,
                                 interpolation="nearest",
                                 alpha=float(alpha) if imgs is not None else None)
            if titles:
                ax.set_title(titles[i], fontsize=10)
        cax = fig.add_axes(((left + n * pw + (n - 1) * gap + cb_gap) / fw, 0.2 / fh,
                            cb_w / fw, ph / fh))
        finite = m[np.isfinite(m)]
        over = finite.size > 0 and float(finite.max()) > vmax
        bar = fig.colorbar(mappable, cax=cax, extend="max" if over else "neither")
        bar.solids.set_alpha(1.0)            # the scale itself is opaque, even over an image
        bar.set_label(f"{label} (fixed scale, 0 to {vmax:.3g})")
    return _encode(matplotlib, fig, fmt, dpi=dpi)


def map_figure(maps: Any, path: str, *, vmax: float, image: Any = None, alpha: float = 0.55,
               titles: Sequence[str] | None = None, label: str = "distance",
               dpi: float = 100) -> None:
    """Writes spatial maps on one fixed scale (see :func:`render_map_figure`) atomically.

    Args:
      maps, vmax, image, alpha, titles, label, dpi: as :func:`render_map_figure`.
      path: output file; ``.png``, ``.svg`` or ``.pdf``.

    Raises:
      InputError: bad data, an unknown extension or an unwritable path.
      PlotDependencyError: matplotlib is not installed.
    """
    fmt = figure_format(path)
    outputs.check_outputs([("figure", path)])
    _write(path, render_map_figure(maps, vmax=vmax, image=image, alpha=alpha, titles=titles,
                                   label=label, format=fmt, dpi=dpi))
