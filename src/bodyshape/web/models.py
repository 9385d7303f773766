"""Response bodies of the JSON API (they also document it in /openapi.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """Every error: one line for the user."""

    error: str = Field(examples=["expected a front photo but this looks like a side view; "
                                 "stand facing the camera"])


class Quality(BaseModel):
    """How well the mesh explains each photo, and every warning (plus any further fields
    of measurements.json's quality block)."""

    model_config = ConfigDict(extra="allow")

    iou_front: float = Field(description="IoU of the re-projected mesh with the front mask")
    iou_side: float = Field(description="IoU of the re-projected mesh with the side mask")
    warnings: list[str]


class ResultUrls(BaseModel):
    """Where the result files can be downloaded (until ``expires_at``)."""

    obj: str = Field(description="the mesh as Wavefront OBJ (meters, Z up)")
    glb: str = Field(description="the mesh as binary glTF (Y up, for web viewers)")
    json_: str = Field(alias="json", description="measurements.json: measurements and quality")
    overlay: str = Field(description="overlay.png: each photo with mask and mesh outline")


class MeasurementFit(BaseModel):
    """How one body measurement fits the recommended size."""

    measurement: str = Field(description="e.g. chest_cm (or chest_in)")
    value: float = Field(description="the body's value, in the request's units")
    range: list[float] = Field(description="[low, high]: the size's body range")
    fit: str = Field(description="tight (body above the range), good, or loose (below)")
    off: float = Field(description="how far outside the range (0 inside)")
    error: float | None = Field(description="mean absolute error of the measurement, or null")


class SizeRecommendation(BaseModel):
    """The size to buy for one garment of a size chart (docs/SIZING.md)."""

    garment: str
    size: str
    between: list[str] | None = Field(description="[smaller, larger] when two sizes are close")
    confidence: float | None = Field(description="chance (0-1) that the size is right, or "
                                     "null when the errors are unknown")
    outside_chart: bool = Field(description="a measurement lies beyond every size")
    note: str = Field(description="one line for people")
    fits: list[MeasurementFit]


class PredictResult(BaseModel):
    """One prediction: the content of measurements.json plus the result's id and URLs."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="random result id (32 hex digits)")
    measurements: dict[str, float] = Field(description="name -> value in `units`, e.g. "
                                           "chest_cm (or chest_in)")
    errors: dict[str, float] = Field(description="name -> the network's measured mean "
                                     "absolute error, where known")
    sizes: list[SizeRecommendation] = Field(default=[], description="one per garment of the "
                                            "size charts asked for")
    quality: Quality
    height_cm: float
    sex: str | None
    weight_kg: float | None = Field(None, description="the weight given, kg, or null")
    units: str = Field("cm", description="'cm' or 'in'")
    urls: ResultUrls
    expires_at: str = Field(description="when the result files are removed (ISO 8601, UTC)")
    elapsed_s: float = Field(description="server time for the prediction, seconds")


class Health(BaseModel):
    """Liveness and the limits a client should respect."""

    status: str
    version: str
    pending: int = Field(description="predictions running or waiting now")
    max_upload_mb: float = Field(description="largest accepted photo, MB (MiB), per file")
    ttl_minutes: float = Field(description="how long results stay downloadable")
    result_files: list[str]


class SizeCharts(BaseModel):
    """The shipped size charts: name -> garment -> size labels, smallest first."""

    charts: dict[str, dict[str, list[str]]]
