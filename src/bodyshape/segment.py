"""Person segmentation of the front and side photos, and the checks that reject bad photos.

Segmentation uses MediaPipe's legacy Pose solution (BlazePose, ``model_complexity=1``, the
largest model shipped inside the mediapipe 0.10.21 wheel; complexity 2 downloads its model at
run time and fails offline) with its segmentation head. It finds at most one person and
returns 33 landmarks plus a soft person mask; the mask is cleaned up here (threshold, largest
connected component, holes filled, optionally refined with GrabCut).

Landmark indices follow BlazePose: 0 nose, 7/8 left/right ear, 11/12 shoulders, 15/16 wrists,
23/24 hips, 27/28 ankles, 29/30 heels ("left" is the subject's left).

The checks are pure functions of a :class:`Segmentation` (the mask carries the image size):
each ``reason_*`` returns a one-line reason or None; :func:`check_photo` raises the first
problem as a :class:`PhotoError` subclass; :func:`warnings_for` lists non-fatal issues.

A :class:`Segmenter` holds one MediaPipe graph (not thread-safe: calls are serialised by a
lock); create it once for a batch and ``close()`` it, or use it as a context manager.
:func:`segment_person` uses a cached process-wide default.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from bodyshape.native_logs import native_logs

logger = logging.getLogger(__name__)

View = Literal["front", "side"]

N_LANDMARKS = 33
NOSE, EAR_L, EAR_R = 0, 7, 8
SHOULDER_L, SHOULDER_R, WRIST_L, WRIST_R = 11, 12, 15, 16
HIP_L, HIP_R, ANKLE_L, ANKLE_R, HEEL_L, HEEL_R = 23, 24, 27, 28, 29, 30

MASK_THRESHOLD = 0.5
"""Soft-mask level above which a pixel is person."""
OTHER_PERSON_RATIO = 0.25
"""A second person-like region larger than this fraction of the kept person's area means
more than one person."""
OTHER_PASS_SIDE = 1024
"""Long side (px) of the shrunk copy the second-person pass runs on."""
MIN_HEIGHT_FRACTION = 0.30
"""The person's mask must span at least this fraction of the image height."""
MIN_VISIBILITY = 0.5
"""Key landmarks (nose, best ankle, best heel) need at least this MediaPipe visibility."""
VIEW_RATIO_SPLIT = 0.30
"""``view_of``: mean shoulder/hip x-separation over torso height; front above, side below."""
VIEW_RATIO_SCALE = 0.06
"""``view_of``: logistic scale of the ratio around the split (sets the confidence)."""
WRONG_VIEW_CONFIDENCE = 0.75
"""``check_photo`` rejects a photo whose detected view differs from the expected one with at
least this confidence; a less confident mismatch is only a warning."""
ARM_GAP_RATIO = 0.5
"""Front view: wrist-hip horizontal distance under this fraction of the shoulder width on
either side warns that the arms are too close to the body (about 12 degrees of
abduction on the mean body; 20 degrees gives ~0.7, hanging arms ~0.3)."""


# --------------------------------------------------------------------------------------------
# Results and errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The person found in one photo.

    Attributes:
        mask: (H, W) bool person mask (one connected component, holes filled; all False when
            nobody was found).
        landmarks: (33, 4) float64 BlazePose landmarks ``(x_px, y_px, z, visibility)``: x, y
            in image pixels (continuous, x right, y down), z the depth relative to the hips in
            the same pixel scale as x (smaller is nearer the camera), visibility in [0, 1];
            None when nobody was found.
        score: mean soft-mask confidence inside ``mask`` (0 when the mask is empty).
        other_ratio: area of the largest *other* person-like region (a second large mask
            component, or a second person detected with the first one blanked out) over the
            kept person's area; 0 when there is none.
    """

    mask: np.ndarray
    landmarks: np.ndarray | None
    score: float
    other_ratio: float = 0.0

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the photo, pixels."""
        return self.mask.shape[1], self.mask.shape[0]


class PhotoError(ValueError):
    """A photo that cannot be measured; ``str(err)`` is a one-line reason for the user."""


class NoPersonError(PhotoError):
    """Nobody was found."""


class MultiplePeopleError(PhotoError):
    """More than one person is in the photo."""


class CutOffError(PhotoError):
    """The person is cut off by the frame edge."""


class TooSmallError(PhotoError):
    """The person is too small in the frame."""


class WrongViewError(PhotoError):
    """A front photo where a side one was expected, or the other way round."""


# --------------------------------------------------------------------------------------------
# Mask clean-up
# --------------------------------------------------------------------------------------------


def clean_mask(soft: np.ndarray, threshold: float = MASK_THRESHOLD) -> tuple[np.ndarray, float]:
    """Threshold a soft mask, keep its largest 8-connected component and fill its holes.

    Args:
        soft: (H, W) float confidences in [0, 1].
        threshold: level above which a pixel is person.

    Returns:
        mask: (H, W) bool; other_ratio: second-largest component area over the largest one,
        both before hole filling (0 if there is at most one component).
    """
    binary = (np.asarray(soft) > threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return np.zeros(binary.shape, dtype=bool), 0.0
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(areas)[::-1]
    other = float(areas[order[1]] / areas[order[0]]) if n > 2 else 0.0
    return fill_holes(labels == order[0] + 1), other


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` (4-connected background) of a (H, W) bool mask.

    A flood fill of the background from the border with OpenCV, which is several times
    faster than scipy's iterated erosion on multi-megapixel photos (tested equal).
    """
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    cv2.floodFill(padded, None, (0, 0), 1, flags=4)  # the outside background becomes 1
    return mask | (padded[1:-1, 1:-1] == 0)


def refine_grabcut(image_rgb: np.ndarray, mask: np.ndarray, band: float = 0.015,
                   iterations: int = 3) -> np.ndarray:
    """Refine a person mask with GrabCut seeded by it.

    Definite foreground is the mask eroded by ``band`` of the mask height, definite background
    lies outside the mask dilated by the same amount; GrabCut decides the band in between. It
    runs on a crop around the dilated mask only.

    Args:
        image_rgb: (H, W, 3) uint8.
        mask: (H, W) bool, non-empty.
        band: half-width of the undecided band, as a fraction of the mask height.
        iterations: GrabCut iterations.

    Returns:
        (H, W) bool refined mask (largest component, holes filled).
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return mask
    r = max(2, int(round(band * (rows[-1] - rows[0] + 1))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    m8 = mask.astype(np.uint8)
    fg = cv2.erode(m8, kernel).astype(bool)
    maybe = cv2.dilate(m8, kernel).astype(bool)
    ys, xs = np.nonzero(maybe)
    h, w = mask.shape
    y0, y1 = max(ys.min() - r, 0), min(ys.max() + r + 1, h)
    x0, x1 = max(xs.min() - r, 0), min(xs.max() + r + 1, w)
    gc = np.full((y1 - y0, x1 - x0), cv2.GC_BGD, dtype=np.uint8)
    crop = (slice(y0, y1), slice(x0, x1))
    gc[maybe[crop]] = cv2.GC_PR_BGD
    gc[mask[crop]] = cv2.GC_PR_FGD
    gc[fg[crop]] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    bgr = np.ascontiguousarray(image_rgb[crop][..., ::-1])
    cv2.grabCut(bgr, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    out = np.zeros_like(mask, dtype=np.float32)
    out[crop] = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.float32)
    return clean_mask(out)[0]


# --------------------------------------------------------------------------------------------
# Segmenter
# --------------------------------------------------------------------------------------------


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    if min(img.shape[:2]) < 16:
        raise ValueError(f"image too small: {img.shape[1]}x{img.shape[0]}")
    return np.ascontiguousarray(img)


class Segmenter:
    """MediaPipe Pose (complexity 1, with segmentation) wrapped for single photos.

    Args:
        threshold: soft-mask level for the person mask.
        min_detection_confidence: MediaPipe's person-detector threshold.
        find_others: also look for a second person by running the detector again with the
            first person blanked out (MediaPipe Pose reports one person only, and its mask
            covers little beyond that person's crop); doubles the inference time.
    """

    def __init__(self, threshold: float = MASK_THRESHOLD, min_detection_confidence: float = 0.5,
                 find_others: bool = True):
        import mediapipe as mp  # deferred: the checks below work without mediapipe

        self.threshold = float(threshold)
        self.find_others = bool(find_others)
        self._lock = threading.Lock()
        with native_logs():  # MediaPipe's C++ log lines go to logging (native_logs)
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=True,
                min_detection_confidence=min_detection_confidence)

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graph (idempotent)."""
        with self._lock:
            if self._pose is not None:
                self._pose.close()
                self._pose = None

    def _process(self, img: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(33, 4) landmarks in pixels or None, and the (H, W) float32 soft mask."""
        with self._lock:
            if self._pose is None:
                raise RuntimeError("Segmenter is closed")
            with native_logs():
                res = self._pose.process(img)
        h, w = img.shape[:2]
        soft = (np.zeros((h, w), np.float32) if res.segmentation_mask is None
                else np.asarray(res.segmentation_mask, dtype=np.float32))
        if res.pose_landmarks is None:
            return None, soft
        lm = np.array([[p.x * w, p.y * h, p.z * w, p.visibility]
                       for p in res.pose_landmarks.landmark], dtype=np.float64)
        return lm, soft

    def _other_person(self, img: np.ndarray, mask: np.ndarray) -> float:
        """Area ratio of a second person found with the first one's box blanked out."""
        # Only an area ratio is wanted: on a copy shrunk to OTHER_PASS_SIDE px (MediaPipe's
        # person detector sees 224 px anyway) the blanking, the second pass and its mask
        # take about half the time they take on a 1536x2048 photo (measured on examples/).
        k = -(-max(mask.shape) // OTHER_PASS_SIDE)  # ceil
        if k > 1:
            size = (mask.shape[1] // k, mask.shape[0] // k)
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask.astype(np.uint8), size,
                              interpolation=cv2.INTER_NEAREST).astype(bool)
            if not mask.any():
                return 0.0
        h, w = mask.shape
        ys, xs = np.nonzero(mask)
        pad = int(0.03 * (ys.max() - ys.min() + 1)) + 2
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)
        ring = np.ones((h, w), dtype=bool)
        ring[y0:y1, x0:x1] = False
        grow = np.zeros_like(ring)
        grow[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad] = True
        ring &= grow
        fill = np.median(img[ring], axis=0) if ring.any() else np.median(img.reshape(-1, 3), 0)
        blank = img.copy()
        blank[y0:y1, x0:x1] = fill.astype(np.uint8)
        lm, soft = self._process(blank)
        if lm is None:
            return 0.0
        second, _ = clean_mask(soft, self.threshold)
        # Only what lies outside the blanked box is somebody else.
        second[y0:y1, x0:x1] = False
        return float(second.sum() / max(mask.sum(), 1))

    def segment(self, image_rgb: np.ndarray, refine: bool = False) -> Segmentation:
        """Find the person in an RGB photo.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            refine: refine the mask edges with GrabCut (slower: about a second per megapixel
                of the person's box).

        Returns:
            The segmentation (empty mask and ``landmarks=None`` when nobody is found).
        """
        img = _check_image(image_rgb)
        lm, soft = self._process(img)
        mask, other = clean_mask(soft, self.threshold)
        if lm is None or not mask.any():
            return Segmentation(np.zeros(img.shape[:2], dtype=bool), None, 0.0, 0.0)
        score = float(soft[mask].mean())
        if refine:
            mask = refine_grabcut(img, mask)
        if self.find_others:
            other = max(other, self._other_person(img, mask))
        return Segmentation(mask, lm, score, other)


@functools.lru_cache(maxsize=1)
def default_segmenter() -> Segmenter:
    """The process-wide Segmenter used by ``segment_person`` (created on first use)."""
    return Segmenter()


def segment_person(image_rgb: np.ndarray, refine: bool = False) -> Segmentation:
    """Segment the person in an (H, W, 3) uint8 RGB photo with the default Segmenter."""
    return default_segmenter().segment(image_rgb, refine=refine)


# --------------------------------------------------------------------------------------------
# Views from landmarks
# --------------------------------------------------------------------------------------------


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (N_LANDMARKS, 4):
        raise ValueError(f"landmarks must be ({N_LANDMARKS}, 4), got {lm.shape}")
    return lm


def view_ratio(landmarks: np.ndarray) -> float:
    """Mean horizontal separation of the shoulders and of the hips over the torso height
    (mid-shoulder to mid-hip, pixels/pixels): about 0.6 facing the camera, near 0 sideways."""
    lm = _check_landmarks(landmarks)
    sep = 0.5 * (abs(lm[SHOULDER_L, 0] - lm[SHOULDER_R, 0]) + abs(lm[HIP_L, 0] - lm[HIP_R, 0]))
    torso = np.hypot(*(0.5 * (lm[SHOULDER_L, :2] + lm[SHOULDER_R, :2])
                       - 0.5 * (lm[HIP_L, :2] + lm[HIP_R, :2])))
    return float(sep / max(torso, 1e-6))


def view_of(landmarks: np.ndarray) -> tuple[View, float]:
    """Front or side view from the landmarks.

    Returns:
        ("front" | "side", confidence): confidence in [0.5, 1] is a logistic function of how
        far ``view_ratio`` lies from ``VIEW_RATIO_SPLIT``.
    """
    r = view_ratio(landmarks)
    p_front = 1.0 / (1.0 + np.exp(-(r - VIEW_RATIO_SPLIT) / VIEW_RATIO_SCALE))
    return ("front", float(p_front)) if p_front >= 0.5 else ("side", float(1.0 - p_front))


def facing_of(landmarks: np.ndarray) -> Literal["left", "right"]:
    """Which way (image x) a person seen from the side faces: where the nose points relative to
    the ears (and, with a smaller weight, the shoulders)."""
    lm = _check_landmarks(landmarks)
    d = (lm[NOSE, 0] - 0.5 * (lm[EAR_L, 0] + lm[EAR_R, 0])
         + 0.5 * (lm[NOSE, 0] - 0.5 * (lm[SHOULDER_L, 0] + lm[SHOULDER_R, 0])))
    return "right" if d > 0 else "left"


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def reason_no_person(seg: Segmentation) -> str | None:
    """Nobody found (no landmarks or an empty mask)."""
    if seg.landmarks is None or not seg.mask.any():
        return "no person found in the photo"
    return None


def reason_multiple_people(seg: Segmentation) -> str | None:
    """A second person-like region larger than ``OTHER_PERSON_RATIO`` of the person."""
    if seg.other_ratio > OTHER_PERSON_RATIO:
        return (f"more than one person in the photo (another region {seg.other_ratio:.0%} of "
                "the person's size); photograph one person alone")
    return None


def _outside(xy: np.ndarray, width: int, height: int) -> bool:
    return bool(xy[0] < 0 or xy[0] > width or xy[1] < 0 or xy[1] > height)


def reason_cut_off(seg: Segmentation) -> str | None:
    """The mask touches the top or bottom border, or the nose, ankles or heels are outside the
    frame or barely visible (the better-visible one of each left/right pair counts, since one
    foot hides the other from the side)."""
    if reason_no_person(seg):
        return None
    if seg.mask[0].any():
        return "the person is cut off at the top of the photo; step back or tilt the phone"
    if seg.mask[-1].any():
        return "the person is cut off at the bottom of the photo; the feet must be visible"
    lm = seg.landmarks
    w, h = seg.image_size
    for name, idx in (("head", (NOSE,)), ("ankles", (ANKLE_L, ANKLE_R)),
                      ("heels", (HEEL_L, HEEL_R))):
        best = lm[max(idx, key=lambda i: lm[i, 3])]
        if _outside(best[:2], w, h) or best[3] < MIN_VISIBILITY:
            return f"the person's {name} are not visible; the whole body must be in the photo" \
                if name != "head" else "the person's head is not visible; the whole body " \
                "must be in the photo"
    return None


def reason_too_small(seg: Segmentation) -> str | None:
    """The mask spans under ``MIN_HEIGHT_FRACTION`` of the image height."""
    if reason_no_person(seg):
        return None
    rows = np.flatnonzero(seg.mask.any(axis=1))
    frac = (rows[-1] - rows[0] + 1) / seg.mask.shape[0]
    if frac < MIN_HEIGHT_FRACTION:
        return (f"the person is too small in the photo ({frac:.0%} of its height, need "
                f"{MIN_HEIGHT_FRACTION:.0%}); step closer")
    return None


def reason_wrong_view(seg: Segmentation, view: View) -> str | None:
    """The landmarks confidently show the other view than ``view``."""
    if view not in ("front", "side"):
        raise ValueError(f"view must be 'front' or 'side', got {view!r}")
    if reason_no_person(seg):
        return None
    got, conf = view_of(seg.landmarks)
    if got != view and conf >= WRONG_VIEW_CONFIDENCE:
        want = "facing the camera" if view == "front" else "turned sideways"
        return f"expected a {view} photo but this looks like a {got} view; stand {want}"
    return None


def problems(seg: Segmentation, view: View) -> list[tuple[type[PhotoError], str]]:
    """Every fatal problem of a photo, most basic first, as (error class, reason)."""
    out = []
    for cls, reason in ((NoPersonError, reason_no_person(seg)),
                        (MultiplePeopleError, reason_multiple_people(seg)),
                        (CutOffError, reason_cut_off(seg)),
                        (TooSmallError, reason_too_small(seg)),
                        (WrongViewError, reason_wrong_view(seg, view))):
        if reason is not None:
            out.append((cls, reason))
    return out


def check_photo(seg: Segmentation, view: View) -> None:
    """Raise the first fatal problem of a photo as a ``PhotoError`` subclass.

    Args:
        seg: the segmentation of the photo.
        view: the view the photo should show, "front" or "side".
    """
    found = problems(seg, view)
    if found:
        cls, reason = found[0]
        raise cls(reason)


def warnings_for(seg: Segmentation, view: View) -> list[str]:
    """Non-fatal issues of a photo, one line each (empty when the photo looks fine or when it
    has a fatal problem that ``check_photo`` reports)."""
    if view not in ("front", "side"):
        raise ValueError(f"view must be 'front' or 'side', got {view!r}")
    if reason_no_person(seg):
        return []
    out = []
    lm = seg.landmarks
    got, conf = view_of(lm)
    if got != view and conf < WRONG_VIEW_CONFIDENCE:
        out.append(f"cannot tell whether this is a {view} view (looks {got}, "
                   f"confidence {conf:.2f})")
    if seg.mask[:, 0].any() or seg.mask[:, -1].any():
        out.append("the person touches the side of the photo; an arm may be cut off")
    if view == "front":
        shoulders = abs(lm[SHOULDER_L, 0] - lm[SHOULDER_R, 0])
        gap = min(abs(lm[WRIST_L, 0] - lm[HIP_L, 0]), abs(lm[WRIST_R, 0] - lm[HIP_R, 0]))
        if gap < ARM_GAP_RATIO * shoulders:
            out.append("the arms are too close to the body; hold them slightly away from the "
                       "sides so the waist and hips are visible")
    return out
