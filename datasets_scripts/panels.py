"""Overlay panels a person can read: one PNG per frame, shared by evaluation, `tdos-predict`, `tdos-datasets inspect`
and the web demo.

A panel is a row of up to four pictures of one frame, with the frame id (and, where known, that frame's AP) in the
title:

1. the image;
2. the anomaly heat map (colour map `inferno`) with a colour bar; below it the colour range and the frame's own
   minimum and maximum score;
3. the thresholded anomaly mask (`score >= threshold`) outlined in cyan on the image, with the share of pixels above;
4. the ground truth where there is one: OOD pixels outlined in green on the image and void pixels greyed out (binary
   OOD labels 0/1/255), or the Cityscapes colours blended in (semantic trainIds, 19 = OOD object in magenta).

Colour scale. By default (`normalization="fixed"`) the heat map spans a fixed `value_range`, the same for every
frame, so two panels can be compared by eye (the callers pass the natural range of the anomaly score: [0, 1] for
the OOD probability). With `normalization="image"` each frame's heat map spans that frame's own minimum to maximum:
weak responses become visible, but colours no longer compare across frames. The range used is printed under the
colour bar either way.

Only numpy, PIL and matplotlib (the `plots` extra, object-oriented API: no global pyplot state) are imported, never
torch: `datasets_scripts` must load without the model package.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image


NORMALIZATIONS = ("fixed", "image")
MASK_COLOUR = np.array((0, 255, 255), dtype=np.uint8)  # predicted anomaly outline (cyan)
TRUTH_COLOUR = np.array((0, 230, 0), dtype=np.uint8)  # ground-truth OOD outline (green)
VOID_GREY = np.array((128, 128, 128), dtype=np.uint8)
# Cityscapes trainId colours, then 19 (OOD object) in magenta.
SEMANTIC_PALETTE = np.array(
    [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
     (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
     (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32), (255, 0, 255)],
    dtype=np.uint8,
)  # fmt: skip
OOD_PALETTE = np.array([(0, 160, 0), (255, 0, 0)], dtype=np.uint8)  # in-distribution, anomaly
VOID_COLOUR = np.array((0, 0, 0), dtype=np.uint8)


def colourise(label: np.ndarray, kind: str) -> np.ndarray:
    """RGB picture of a label map: `kind` `"semantic"` (trainIds) or `"ood"` (0/1); void / unknown values black."""
    palette = SEMANTIC_PALETTE if kind == "semantic" else OOD_PALETTE
    colours = np.tile(VOID_COLOUR, (256, 1))
    colours[: len(palette)] = palette
    return colours[label]


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Boolean map of the pixels of `mask` that touch a pixel outside it (4-neighbourhood), thickened to `width`."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    edge = mask & ~interior
    for _ in range(max(width, 1) - 1):
        grown = np.pad(edge, 1)
        edge = grown[:-2, 1:-1] | grown[2:, 1:-1] | grown[1:-1, :-2] | grown[1:-1, 2:] | edge
    return edge


def outline_on_image(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, width: int = 1, tint: float = 0.25):
    """`image` (H, W, 3 uint8) with `mask` tinted by `tint` of `colour` and its outline drawn `width` pixels thick
    in `colour`, on a black line as thick again (visible on any background)."""
    mask = np.asarray(mask, dtype=bool)
    out = image.astype(np.float32)
    out[mask] = out[mask] * (1 - tint) + colour * tint
    out[mask_outline(mask, width=2 * width)] = 0
    out[mask_outline(mask, width=width)] = colour
    return out.round().astype(np.uint8)


def value_range_of(score: np.ndarray, normalization: str, value_range: tuple[float, float]) -> tuple[float, float]:
    """The colour range of a heat map: `value_range` (`"fixed"`) or the frame's finite min..max (`"image"`)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization == "fixed":
        low, high = float(value_range[0]), float(value_range[1])
        if not high > low:
            raise ValueError(f"value_range must be (low, high) with high > low, got {tuple(value_range)}")
        return low, high
    finite = score[np.isfinite(score)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return (low, high) if high > low else (low, low + 1e-6)


def _ground_truth_picture(rgb: np.ndarray, label: np.ndarray, kind: str, width: int) -> tuple[np.ndarray, str]:
    if kind == "semantic":
        blend = (rgb.astype(np.uint16) + colourise(label, "semantic")) // 2
        return blend.astype(np.uint8), "ground truth (Cityscapes colours, OOD magenta)"
    if kind != "ood":
        raise ValueError(f"ground-truth kind must be 'ood' or 'semantic', got {kind!r}")
    picture = rgb.copy()
    void = label == 255
    picture[void] = (picture[void] * 0.35 + VOID_GREY * 0.65).astype(np.uint8)
    ood = label == 1
    share = ood.sum() / max((~void).sum(), 1)
    return outline_on_image(picture, ood, TRUTH_COLOUR, width), f"ground truth: OOD outlined ({share:.2%} px), void grey"


def overlay_panel(
    image,
    score: Optional[np.ndarray] = None,
    *,
    threshold: Optional[float] = None,
    threshold_name: str = "threshold",
    ground_truth: Optional[np.ndarray] = None,
    ground_truth_kind: str = "ood",
    title: Optional[str] = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    normalization: str = "fixed",
    range_name: str = "fixed",
    boxes: Optional[Sequence[tuple[tuple[int, int, int, int], str]]] = None,
    column_width: float = 4.0,
    dpi: int = 100,
) -> Image.Image:
    """
    One frame's panel as an RGB PIL image (see the module docstring for the columns and the colour scale).

    Args:
        image: the frame, a PIL image or an `(H, W, 3)` uint8 array.
        score: `(H, W)` anomaly scores (higher is more anomalous); without it, no heat-map or mask column.
        threshold: the mask column shows `score >= threshold`; no mask column without it.
        threshold_name: how the threshold was chosen, for the column title (e.g. `"best-F1 threshold"`).
        ground_truth: `(H, W)` labels of the frame: 0/1/255 (`ground_truth_kind="ood"`) or trainIds with 19 = OOD
            and 255 = void (`"semantic"`); no ground-truth column without it.
        title: the panel title (frame id, AP, ...).
        value_range, normalization: the heat map's colour scale, see `value_range_of`.
        range_name: where a fixed `value_range` comes from, printed under the heat map (e.g. `"score range"`).
        boxes: `((left, top, right, bottom), text)` rectangles drawn and labelled on the mask column (on the image
            without one), e.g. anomaly components and their names.
        column_width, dpi: size of one column in inches, and the resolution.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("overlay panels need matplotlib: pip install 'tdos[plots]' (or matplotlib)") from error
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be RGB (H, W, 3), got shape {rgb.shape}")
    size = rgb.shape[:2]
    for name, array in (("score", score), ("ground_truth", ground_truth)):
        if array is not None and np.shape(array) != size:
            raise ValueError(f"{name} has shape {np.shape(array)}, expected the image's {size}")
    # outlines about 1.5 pixels of the drawn panel thick, whatever the image size
    line = max(1, round(1.5 * max(size[1] / (column_width * dpi), 1.0)))
    columns: list[tuple[str, str, object]] = [("image", "image", rgb)]
    if score is not None:
        score = np.asarray(score, dtype=np.float32)
        columns.append(("heat", "anomaly score", score))
        if threshold is not None:
            mask = score >= threshold
            columns.append(
                ("mask", f"score >= {threshold:.4g} ({threshold_name}): {mask.mean():.2%} px",
                 outline_on_image(rgb, mask, MASK_COLOUR, line))
            )  # fmt: skip
    if ground_truth is not None:
        picture, caption = _ground_truth_picture(rgb, np.asarray(ground_truth), ground_truth_kind, line)
        columns.append(("truth", caption, picture))

    height, width = size
    row_height = column_width * height / width
    figure = Figure(figsize=(column_width * len(columns) + 0.6 * (score is not None), row_height + 0.9), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes_row = figure.subplots(1, len(columns), squeeze=False)[0]
    for axes, (kind, caption, picture) in zip(axes_row, columns):
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(caption, fontsize=9)
        if kind != "heat":
            axes.imshow(picture, interpolation="antialiased")
            if boxes and kind == ("mask" if any(c[0] == "mask" for c in columns) else "image"):
                _draw_boxes(axes, boxes, width)
            continue
        low, high = value_range_of(picture, normalization, value_range)
        shown = axes.imshow(picture, cmap="inferno", vmin=low, vmax=high, interpolation="antialiased")
        colour_bar = figure.colorbar(shown, cax=axes.inset_axes((1.02, 0.0, 0.04, 1.0)))
        colour_bar.ax.tick_params(labelsize=7)
        finite = picture[np.isfinite(picture)]
        frame_low, frame_high = (finite.min(), finite.max()) if finite.size else (float("nan"), float("nan"))
        scale = range_name if normalization == "fixed" else "this image's min..max"
        axes.set_xlabel(
            f"colour range {low:.4g} .. {high:.4g} ({scale})\nthis image: min {frame_low:.4g}, max {frame_high:.4g}",
            fontsize=8,
        )
    if title:
        figure.suptitle(title, fontsize=11)
    figure.canvas.draw()
    return Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3].copy())


def _draw_boxes(axes, boxes, width: int) -> None:
    from matplotlib.patches import Rectangle

    for (left, top, right, bottom), text in boxes:
        right_half = left > width / 2
        axes.add_patch(
            Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor="yellow", linewidth=1.2)
        )
        axes.text(
            right if right_half else left, top, text, fontsize=7, color="black", va="bottom",
            ha="right" if right_half else "left", clip_on=True,
            bbox={"facecolor": "yellow", "alpha": 0.8, "pad": 1, "linewidth": 0},
        )  # fmt: skip


def panel_title(frame_id: str, average_precision: Optional[float] = None, extra: Sequence[str] = ()) -> str:
    """`"frame <id>  |  AP 0.512  |  ..."`; AP shown as "n/a" when given as NaN (no OOD pixel in the frame)."""
    parts = [f"frame {frame_id}"]
    if average_precision is not None:
        parts.append("AP n/a (no OOD pixel)" if np.isnan(average_precision) else f"AP {average_precision:.3f}")
    return "  |  ".join(parts + list(extra))
