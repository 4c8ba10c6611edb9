"""How timings are taken: one validated set of settings for measuring, profiles and configs.

A run config's ``latency`` section, a profile file's ``settings`` and the Python API all use
this model, so a value refused in one place is refused in all (and no torch import is needed
to validate a config).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LatencySettings(BaseModel):
    """Strictly typed (no ``"4"`` for 4, no ``true`` for 1) and bounded, generously: up to
    1024 threads and a batch of 65,536 (as ``train``), a million warm-up or timed runs, a
    95% interval of at most +/-100%, and an hour per timing. Unbounded, one typo
    (``threads: 2**64``) reaches the runtime as a number it cannot take."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    backend: Literal["onnxruntime", "torch"] = "onnxruntime"
    threads: int = Field(1, ge=1, le=1024)
    batch_size: int = Field(1, ge=1, le=65_536)
    warmup: int = Field(10, ge=0, le=10**6)
    min_runs: int = Field(10, ge=3, le=10**6)
    max_runs: int = Field(2000, ge=3, le=10**6)
    target_ci: float = Field(
        0.01, gt=0, le=1, description="stop when the median's 95% CI is this tight"
    )
    max_seconds: float = Field(2.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _runs_in_order(self) -> LatencySettings:
        if self.max_runs < self.min_runs:
            raise ValueError("max_runs must be at least min_runs")
        return self
