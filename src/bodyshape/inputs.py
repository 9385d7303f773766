"""Prediction inputs: image decoding, masks, input checks and the facing cues of a view.

A view is given as a photo or a person mask (a two-valued image), by path or as an array.
:func:`read_view` turns it into a :class:`ViewInput`: the image, the person mask, which
ways the person may face (side views) and any warnings. Photos are segmented by
:mod:`bodyshape.segment`, whose pose landmarks tell the facing; a mask's facing comes from
its feet (:func:`toe_cue`). Every refusal is an ``InputError`` or ``segment.PhotoError``
(both ``ValueError``) whose message is one line for the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bodyshape.segment import PhotoError, Segmenter, check_photo, facing_of, warnings_for

HEIGHT_RANGE_CM = (50.0, 250.0)
WEIGHT_RANGE_KG = (20.0, 300.0)
# The largest image accepted, in pixels (width x height), checked from the file's header
# before the pixels are decoded: phone cameras reach 50 megapixels (8160 x 6120), and an
# RGB image of this size takes 150 MB once decoded. Larger images (decompression bombs: a
# 30,000 x 30,000 PNG is under 1 MB on disk) are refused.
MAX_PIXELS = 52_000_000
SEX_CODES = {None: -1, "female": 0, "male": 1}
# |toe cue| below this (fraction of body height) is too weak to decide a mask's facing. On
# 2,000 held-out synthetic side views it was decisive in 99.6 % and never wrong
# (benchmarks/bench_facing.py, docs/BENCHMARKS.md).
TOE_CUE_MIN = 0.006


class InputError(ValueError):
    """An unusable input (file, image, height, sex); ``str(err)`` is one line for the user."""


@dataclass(frozen=True, eq=False)
class ViewInput:
    """One view, read and segmented.

    Attributes:
        view: "front" or "side".
        image: (H, W, 3) uint8 RGB photo, or the mask itself for mask inputs.
        mask: (H, W) bool person mask of the full frame.
        is_photo: whether the input was a photo (segmented) rather than a mask.
        facings: side views: the facings to try, "right" and/or "left" (from the pose
            landmarks for photos, from the feet for masks; both when the feet are
            ambiguous); front views: ("front",).
        warnings: non-fatal issues of the segmentation.
        landmarks: (33, 4) MediaPipe Pose landmarks of a photo (``segment.Segmentation``),
            None for masks.
    """

    view: str
    image: np.ndarray
    mask: np.ndarray
    is_photo: bool
    facings: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    landmarks: np.ndarray | None = None


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a JPEG/PNG file as (H, W, 3) uint8 RGB (see :func:`decode_image`).

    Raises:
        InputError: missing file, or any refusal of :func:`decode_image`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    return decode_image(path, str(path))


def decode_image(source, label: str) -> np.ndarray:
    """Decode an image as (H, W, 3) uint8 RGB, honouring EXIF orientation.

    Args:
        source: a path or a binary file object (e.g. ``io.BytesIO`` of an upload).
        label: how messages name the image ("front photo", a path).
    Raises:
        InputError: unreadable, truncated, empty or one-colour image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(source) as im:  # reads the header only
            check_pixels(im.width, im.height, label)
            # In place, and no RGB conversion of an RGB image: each would copy a
            # multi-megapixel image (together ~25 ms of a photo pair's prediction, cProfile).
            ImageOps.exif_transpose(im, in_place=True)
            im.load()  # truncated files fail here, not later
            rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except UnidentifiedImageError:  # PIL's message names the source: not for the user
        raise InputError(f"{label}: not a readable image (not a JPEG or PNG?)") from None
    except Image.DecompressionBombError:  # PIL's own, larger limit, hit inside open()
        raise InputError(f"{label}: the image has more than {MAX_PIXELS / 1e6:g} megapixels; "
                         "use a smaller one") from None
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL's decoders raise OSError, SyntaxError,
        # struct.error, IndexError, EOFError... on corrupt data: all mean "unreadable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{label}: not a readable image ({reason})") from None
    if rgb.size == 0 or min(rgb.shape[:2]) < 16:
        raise InputError(f"{label}: the image is empty or tiny ({rgb.shape[1]}x{rgb.shape[0]})")
    if int(rgb.max()) == int(rgb.min()):
        raise InputError(f"{label}: the image is a single colour; no person in it")
    return rgb


def check_pixels(width: int, height: int, label: str) -> None:
    """Refuse an image over ``MAX_PIXELS`` (``InputError``, one line)."""
    if width * height > MAX_PIXELS:
        raise InputError(f"{label}: the image is {width}x{height} pixels, more than "
                         f"{MAX_PIXELS / 1e6:g} megapixels; use a smaller one")


def is_mask(image: np.ndarray) -> bool:
    """True for a two-valued image (a person mask): at most two distinct RGB colours."""
    # A photo almost always shows three colours within a sparse sample: answer from that
    # before scanning every pixel of a multi-megapixel image.
    return _two_colours(image[::17, ::13]) and _two_colours(image)


def _two_colours(image: np.ndarray) -> bool:
    """At most two distinct RGB colours in an (H, W, 3) uint8 image."""
    # One int32 code per pixel, built from the three channel planes, and no sort: numpy's
    # unique(axis=0) and reductions over the length-3 channel axis are several times slower.
    code = ((image[..., 0].astype(np.int32) << 16) | (image[..., 1].astype(np.int32) << 8)
            | image[..., 2]).reshape(-1)
    others = code[code != code[0]]
    return others.size == 0 or bool(np.all(others == others[0]))


def mask_from_image(image: np.ndarray) -> np.ndarray:
    """(H, W) bool person mask of a two-valued image: the brighter value is the person."""
    # Three times the grey level, summed plane by plane in int32 (numpy's mean over the
    # length-3 channel axis is several times slower); the test is the same as mean > midpoint.
    grey3 = image[..., 0].astype(np.int32) + image[..., 1] + image[..., 2]
    mask = 2 * grey3 > int(grey3.min()) + int(grey3.max())
    if not mask.any() or mask.all():
        raise InputError("the mask is empty (white person on black expected)")
    return mask


def toe_cue(mask: np.ndarray) -> float:
    """Signed forward reach of the feet in a side-view silhouette, in units of its height.

    The feet reach forward of the shins (toes ahead, the heel only slightly behind), so the
    centroid of the lowest 2.5 % of the silhouette lies ahead of that of the lower shins.

    Args:
        mask: (H, W) bool side-view silhouette (full frame or canvas).
    Returns:
        (feet - shins) centroid x offset / silhouette height: > 0 when the person faces +x
        (image right), < 0 when facing left; 0 for an empty mask.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return 0.0
    top, n = rows[0], rows[-1] - rows[0] + 1

    def centre(a: float, b: float) -> float:
        cols = np.nonzero(mask[top + int(a * n): top + max(int(b * n), int(a * n) + 1)])[1]
        return float(cols.mean()) if len(cols) else np.nan

    cue = (centre(0.975, 1.0) - centre(0.86, 0.93)) / n
    return 0.0 if np.isnan(cue) else cue


def mask_facings(mask: np.ndarray) -> tuple[str, ...]:
    """The facings of a side-view mask worth trying: the feet's answer when the toe cue is
    decisive, else both ("right" first)."""
    cue = toe_cue(mask)
    return ("right",) if cue > TOE_CUE_MIN else ("left",) if cue < -TOE_CUE_MIN else (
        "right", "left")


def _check_number(value, what: str, unit: str, symbol: str, bounds: tuple[float, float]
                  ) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number of {unit}, got {value!r}") from None
    lo, hi = bounds
    if not lo <= x <= hi:  # also refuses NaN
        raise InputError(f"{what} {x:g} {symbol} is outside {lo:g}-{hi:g} {symbol} (give it "
                         f"in {symbol})")
    return x


def check_height(height_cm) -> float:
    """The height as a float in ``HEIGHT_RANGE_CM``, else ``InputError``."""
    return _check_number(height_cm, "height", "centimeters", "cm", HEIGHT_RANGE_CM)


def check_weight(weight_kg) -> float:
    """The weight as a float in ``WEIGHT_RANGE_KG``, else ``InputError``."""
    return _check_number(weight_kg, "weight", "kilograms", "kg", WEIGHT_RANGE_KG)


def check_sex(sex) -> int:
    """The network's sex code of "female", "male" or None, else ``InputError``."""
    if sex not in SEX_CODES:
        raise InputError(f"sex must be 'female', 'male' or omitted, got {sex!r}")
    return SEX_CODES[sex]


def read_view(source, view: str, segmenter: Callable[[], Segmenter], masks: bool | None = None,
              refine_masks: bool = False) -> ViewInput:
    """Read one view (photo or mask) into a :class:`ViewInput`.

    Args:
        source: an image path or an (H, W, 3) uint8 RGB array.
        view: "front" or "side".
        segmenter: returns the segmenter to use for photos (called only for photos, so a
            mask-only caller never loads the segmentation model).
        masks: True: the input is a mask; False: a photo; None: detect (two-valued image).
        refine_masks: refine a photo's segmentation with GrabCut (slower).
    Raises:
        InputError, segment.PhotoError: one line for the user.
    """
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise InputError(f"{view} image: expected an (H, W, 3) uint8 RGB array, got "
                             f"{source.dtype} {source.shape}")
        check_pixels(source.shape[1], source.shape[0], f"{view} image")
    image = source if isinstance(source, np.ndarray) else load_image(source)
    if masks or (masks is None and is_mask(image)):
        mask = mask_from_image(image)
        facings = mask_facings(mask) if view == "side" else ("front",)
        return ViewInput(view, image, mask, False, facings)
    seg = segmenter().segment(image, refine=refine_masks)
    check_photo(seg, view)
    facings = (facing_of(seg.landmarks),) if view == "side" else ("front",)
    return ViewInput(view, image, seg.mask, True, facings, tuple(warnings_for(seg, view)),
                     seg.landmarks)


def _aspect(mask: np.ndarray) -> float:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)


def check_pair(front: ViewInput, side: ViewInput) -> None:
    """Refuse a mask pair whose front silhouette is narrower than its side one (swapped
    inputs); photos are checked by their pose landmarks instead."""
    if not side.is_photo and _aspect(front.mask) < _aspect(side.mask):
        raise PhotoError("the front and side inputs look swapped (the front silhouette is "
                         "narrower than the side one)")
