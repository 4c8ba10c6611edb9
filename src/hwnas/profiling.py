"""``hwnas profile``: build a device profile for the configured super-network, or check one.

Scriptable as ``profile_job(RunConfig(), Path("pi4.json"))`` and
``check_job(Path("pi4.json"), 200, Path("check"))``; the CLI is a thin face over both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from hwnas.config import RunConfig
from hwnas.errors import HwnasError
from hwnas.families import family_from_config, family_type
from hwnas.files import make_out, write_atomic
from hwnas.hardware.profile import (
    ProfilePrecision,
    build_profile,
    check_fits,
    check_profile,
    load_profile,
)
from hwnas.progress import Progress, SilentProgress


def profile_job(
    config: RunConfig,
    out: Path,
    samples: int = 200,
    rounds: int = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure this machine for ``config``'s super-network and input; write ``out``.

    With ``quantize.precisions`` in ``config``, the profile covers that precision search:
    every quantizable layer at each of those precisions too (and INT4 in the configured
    ``quantize.block_size``), predicted from quantized sub-networks."""
    from hwnas.run import prepare

    if out.exists():
        raise HwnasError(f"--out {out}: already exists; pick another name or delete it")
    if not out.parent.is_dir():
        raise HwnasError(f"--out {out}: folder {out.parent} does not exist")
    if config.latency.source != "measured":
        raise HwnasError("latency.source: a profile is built from measurements (use measured)")
    quantize = config.quantize
    started = time.perf_counter()
    _, model = prepare(config)
    precision = None
    if quantize.precisions:
        kinds = tuple(dict.fromkeys(["fp32", *quantize.precisions]))
        precision = ProfilePrecision(kinds, quantize.block_size)
    profile = build_profile(
        config.supernet.name, model, config.latency.settings(),
        samples=samples, rounds=rounds, seed=config.seed, progress=progress or SilentProgress(),
        precision=precision,
    )  # fmt: skip
    profile.save(out)
    return {
        "profile": str(out),
        "layers": len(profile.table.entries),
        "precisions": list(precision.precisions if precision else ["fp32"]),
        "validation": profile.validation,
        "reference": vars(profile.reference),
        "device": profile.device,
        "seconds": time.perf_counter() - started,
    }


def check_job(
    profile_path: Path,
    samples: int,
    out: Path,
    rounds: int = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure ``samples`` fresh sub-networks here; write ``out/check.json``.

    Everything that can be wrong (the profile, the output folder) is checked before the
    minutes of measuring start.
    """
    if samples < 10:
        raise HwnasError(f"--samples {samples}: a check needs at least 10 sub-networks")
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out}: exists and is not a folder")
    if not out.parent.is_dir():
        raise HwnasError(f"--out {out}: folder {out.parent} does not exist")
    if (out / "check.json").exists():
        raise HwnasError(f"--out {out}: already holds a check.json; pick another folder")
    profile = load_profile(profile_path)
    try:
        family_type(profile.supernet)
    except HwnasError as exc:
        raise HwnasError(f"profile {profile_path}: {exc}") from None
    try:
        model = family_from_config(profile.supernet, profile.config)
    except HwnasError as exc:
        raise HwnasError(f"profile {profile_path}: supernet.config: {exc}") from None
    check_fits(profile, profile_path, profile.supernet, model, profile.policy(model))
    make_out(out)
    torch.manual_seed(0)
    checked = check_profile(profile, model, samples, progress, rounds)
    result = {"profile": str(profile_path), **checked}
    write_atomic(out / "check.json", json.dumps(result, indent=1, allow_nan=False))
    return result
