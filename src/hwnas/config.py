"""The main job's settings: one validated tree, from YAML or Python, unknown keys refused.

Every field has a default, so ``hwnas run`` with no config trains and searches the default
problem; a YAML file overrides only what it names.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hwnas.errors import HwnasError, KeyedError, first_invalid, one_line
from hwnas.files import MiB, read_text_limited
from hwnas.hardware.settings import LatencySettings
from hwnas.pareto import Objective

MAX_CONFIG_BYTES = 1 * MiB
"""A config is tens of lines; anything near a MiB is a wrong file, not a config."""
MAX_YAML_NODES = 100_000
"""Values in a config once YAML's aliases are expanded: refuses an alias bomb ("billion
laughs") that a few lines expand to billions of values, which validating would walk."""


Section = TypeVar("Section", bound=BaseModel)


class _Strict(BaseModel):
    """Strict types: YAML says what a value is, so ``seed: true`` or ``epochs: "5"`` is a
    mistake to report, not a value to coerce; floats take ints and must be finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


def _check_path(path: str | None) -> str | None:
    if path is not None and ("\0" in path or len(path) > 4096):
        raise ValueError("not a usable path (a NUL byte, or over 4096 characters)")
    return path


class DataConfig(_Strict):
    """The data set and its loader's options; an option left unset takes the loader's default,
    and one the data set does not take (``context`` for images) is refused when it loads."""

    name: Literal["digits", "cifar10", "image-folder", "python"] = "digits"
    path: str | None = None
    image_size: int | None = Field(None, ge=8, le=512, description="images: side in pixels")
    val_fraction: float | None = Field(
        None, gt=0, lt=1,
        description="share held out for validation, which the search scores sub-networks "
        "on: more gives finer accuracy steps at the cost of training data",
    )  # fmt: skip
    context: int | None = Field(None, ge=2, le=8192, description="text: tokens a model sees")
    windows_per_epoch: int | None = Field(None, ge=1, le=10**7, description="text")
    eval_windows: int | None = Field(None, ge=1, le=10**6, description="text")
    tokenizer: str | None = Field(
        None, description="text: a tokenizer.json, or a model folder holding one, whose ids "
        "the model reads (bytes when unset; hwnas instatune sets a model folder's own)"
    )  # fmt: skip

    _path_usable = field_validator("path", "tokenizer")(_check_path)

    def options(self) -> dict[str, Any]:
        """What is passed to the loader: the options that are set."""
        return self.model_dump(exclude={"name", "path"}, exclude_none=True)


class SupernetConfig(_Strict):
    name: str = "mobilenet"
    overrides: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """Training settings. Those left unset (None) take the family's defaults (optimizer,
    learning rate, weight decay, warm-up, gradient clipping, ``teacher_only``,
    ``distillation``) or the task's (label smoothing); ``hwnas.train.resolve_settings`` fills
    them in.

    ``teacher_only``: the share of the first steps in which only the teacher trains. A
    student distilled from an untrained teacher is pulled towards its first guesses, and
    with several students sharing its weights so is the teacher (a transformer language
    model stalls at the byte frequencies; docs/benchmarks.md). ``distillation``: the weight of
    the teacher's soft targets in a student's loss, the rest going to the labels (1 is
    BigNAS's in-place distillation; Once-for-All mixes both). ``dense``: train the largest
    sub-network alone, a dense model (InstaTune's starting point: ``hwnas train --dense``).
    ``device``: where training and fine-tuning run (``cuda`` or ``cuda:N``, refused at load
    on a machine without it); the search and export run on the CPU, where latency is
    measured."""

    epochs: int = Field(12, ge=0, le=100_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    optimizer: Literal["sgd", "adamw"] | None = None
    learning_rate: float | None = Field(None, gt=0, le=10)
    weight_decay: float | None = Field(None, ge=0, le=10)
    warmup: float | None = Field(None, ge=0, lt=1, description="share of steps warming up")
    grad_clip: float | None = Field(None, gt=0, le=1e6, description="largest gradient norm")
    random_subnets: int = Field(2, ge=0, le=64)
    teacher_only: float | None = Field(None, ge=0, lt=1, description="share of first steps")
    distillation: float | None = Field(None, ge=0, le=1, description="students' soft-target share")
    temperature: float = Field(1.0, gt=0, le=100)
    label_smoothing: float | None = Field(None, ge=0, lt=1)
    progressive: bool = False
    dense: bool = False
    threads: int = Field(1, ge=1, le=1024, description="torch threads; 1 is fastest on 2 cores")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:[0-9]{1,3})?)$", description="cpu, cuda[:N]")

    @field_validator("device")
    @classmethod
    def _device_exists(cls, device: str) -> str:
        if device == "cpu":
            return device
        import torch

        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= available:
            found = f"{available} CUDA device(s)" if available else "no CUDA device"
            raise ValueError(f"{device!r}: this machine has {found}")
        return device

    @model_validator(mode="after")
    def _progressive_needs_every_phase(self) -> TrainConfig:
        if self.progressive and 0 < self.epochs < 4:
            raise ValueError("progressive shrinking needs at least 4 epochs (one per phase)")
        if self.progressive and self.dense:
            raise ValueError("dense trains the largest network alone; progressive shrinks it")
        return self


class LatencyConfig(LatencySettings):
    """Where ``latency_ms`` comes from and, when measured, how (``LatencySettings``).

    ``source`` is ``measured`` (time each sub-network here) or ``profile:FILE`` (estimate it
    from a device profile made by ``hwnas profile``; the profile's own settings then apply).
    Measured, each sub-network is timed in ``rounds`` rounds with a reference (the
    family's largest sub-network) before and after each, and ``latency_relative`` says how
    long it took next to the reference: on a shared VM, whose speed moves by tens of
    percent within minutes, ratios measured an hour apart compare where milliseconds do not.
    """

    source: str = "measured"
    device: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="measured on the workers of hwnas worker --device NAME",
    )  # fmt: skip
    rounds: int = Field(
        3, ge=1, le=1000,
        description="rounds each measured sub-network is timed in, the reference beside it",
    )  # fmt: skip
    recalibrate: bool = Field(
        False,
        description="profile: time the profile's reference here once and give latency_ms at "
        "this machine's speed now (on the profiled machine only)",
    )

    @model_validator(mode="after")
    def _known_source(self) -> LatencyConfig:
        if self.source != "measured" and not (
            self.source.startswith("profile:") and len(self.source) > len("profile:")
        ):
            raise ValueError(f"source {self.source!r}: expected measured or profile:FILE")
        if self.device is not None and self.source != "measured":
            raise ValueError("device: only measured latency is timed on a device's workers")
        if self.recalibrate and self.source == "measured":
            raise ValueError("recalibrate: only a profile's estimates are recalibrated")
        return self

    def settings(self) -> LatencySettings:
        """How each timing is taken (the part a profile stores)."""
        return LatencySettings(
            **self.model_dump(exclude={"source", "device", "rounds", "recalibrate"})
        )


class QuantizeConfig(_Strict):
    """Per-layer precision searched with the architecture (SimQ-NAS; ``hwnas.precision``).

    ``precisions`` empty (the default): fp32 only, searched exactly as without this section.
    Several: each quantizable layer of the family chooses among them (``int4``, weight-only,
    only for layers that are all matrix products: the transformer's blocks). One: every
    layer fixed to it (``[int8]``: quantize everything, the usual recipe). Quality, latency
    and size are then measured on the quantized ONNX model. ``calibration``: inputs (from
    the task's calibration split) that set activation ranges and AWQ's scales; ``awq``:
    activation-aware INT4 scales, else round-to-nearest; ``block_size``: INT4 weights per
    scale. ``fixed``: layers pinned to a precision, not searched (``{stem: fp32}``: the first
    layer of a CNN is often kept in float)."""

    precisions: list[Literal["fp32", "int8", "int4"]] = Field(default_factory=list, max_length=3)
    fixed: dict[str, Literal["fp32", "int8", "int4"]] = Field(default_factory=dict, max_length=4096)
    calibration: int = Field(64, ge=1, le=4096)
    awq: bool = True
    block_size: Literal[16, 32, 64, 128, 256] = 32

    @model_validator(mode="after")
    def _distinct(self) -> QuantizeConfig:
        if len(set(self.precisions)) != len(self.precisions):
            raise ValueError(f"precisions {self.precisions}: each at most once")
        return self


class ProxyConfig(_Strict):
    """Zero-cost proxies recorded of every sub-network, as metrics ``proxy_<name>`` (e.g.
    ``proxy_nwot``) that objectives and constraints may name: ``names`` from
    ``hwnas.proxies.PROXIES``, scored on one training minibatch of ``batch_size``, on the
    sub-network freshly initialised (``weights: init``, how the proxies are defined) or
    with the super-network's weights (``trained``)."""

    names: list[str] = Field(default_factory=list, max_length=32)
    batch_size: int = Field(64, ge=2, le=4096)
    weights: Literal["init", "trained"] = "init"

    @field_validator("names")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        from hwnas.proxies import check_proxy_names

        try:
            check_proxy_names(names)
        except HwnasError as exc:
            raise ValueError(str(exc)) from None
        if len(set(names)) != len(names):
            raise ValueError(f"{names}: each proxy at most once")
        return names


class OneShotConfig(_Strict):
    """Gradient one-shot search (``hwnas oneshot``): the architecture weights are learned
    with the network's (``hwnas.oneshot``), then read off as one cell by each of
    ``selections``. ``method``: ``darts`` (first order) or ``pc-darts`` (1/``partial_channels``
    of each edge's channels through the mixture, edge normalisation) over the NAS-Bench-201
    cell space, or ``fbnet`` over the MobileNet's per-layer choices (``hwnas.oneshot.fbnet``:
    Gumbel-softmax sampling, the latency of device ``profile`` in the loss, pulled toward
    ``latency_target_ms``, read off by ``argmax`` and ``on_target``: of ``target_draws``
    sub-networks drawn from the learned distribution, the most probable whose profile
    estimate is within ``target_tolerance`` of the target). The defaults are
    DARTS's on CIFAR-10 but for ``epochs``. ``table``: a NAS-Bench-201 table
    (``nb201_acc_latency.csv.gz``) to look each derived cell up in, its accuracy on
    ``table_dataset`` and latency on ``table_device``."""

    method: Literal["darts", "pc-darts", "fbnet"] = "darts"
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=2, le=4096)
    learning_rate: float = Field(0.025, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0, le=1)
    arch_learning_rate: float = Field(3e-4, gt=0, le=10)
    arch_weight_decay: float = Field(1e-3, ge=0, le=1)
    partial_channels: int = Field(4, ge=2, le=64, description="pc-darts: K of 1/K")
    selections: list[Literal["argmax", "perturbation", "on_target"]] | None = Field(
        None, min_length=1, max_length=2,
        description="unset: argmax and perturbation (darts, pc-darts), argmax and on_target "
        "(fbnet)",
    )  # fmt: skip
    tune_steps: int = Field(20, ge=0, le=100_000, description="weight steps per fixed edge")
    retrain_epochs: int = Field(10, ge=0, le=10_000, description="each derived cell, alone")
    table: str | None = None
    table_dataset: Literal["cifar10", "cifar100", "ImageNet16-120"] = "cifar10"
    table_device: str = "pixel3"
    profile: str | None = Field(None, description="fbnet: a profile from hwnas profile create")
    latency_target_ms: float | None = Field(None, gt=0, le=1e6, description="fbnet")
    latency_weight: float = Field(1.0, ge=0, le=1e4, description="fbnet: of |E/target - 1|")
    temperature: float = Field(5.0, gt=0, le=100, description="fbnet: Gumbel-softmax, first")
    temperature_min: float = Field(0.5, gt=0, le=100, description="fbnet: at the last epoch")
    warmup_epochs: int = Field(0, ge=0, le=10_000, description="fbnet: weights only, uniform")
    target_draws: int = Field(2000, ge=1, le=1_000_000, description="fbnet: on_target's draws")
    target_tolerance: float = Field(0.05, gt=0, le=1, description="fbnet: on_target's, of "
                                    "|estimate/target - 1|")  # fmt: skip

    _paths_usable = field_validator("table", "profile")(_check_path)

    @property
    def selected(self) -> list[str]:
        """``selections``, or the method's own when unset."""
        if self.selections is not None:
            return list(self.selections)
        return ["argmax", "on_target" if self.method == "fbnet" else "perturbation"]

    @model_validator(mode="after")
    def _consistent(self) -> OneShotConfig:
        if len(set(self.selected)) != len(self.selected):
            raise ValueError(f"selections {self.selections}: each at most once")
        own = {"argmax", "on_target" if self.method == "fbnet" else "perturbation"}
        if not set(self.selected) <= own:
            raise ValueError(f"selections {self.selections}: {self.method} reads its "
                             f"sub-networks off by {' and '.join(sorted(own))}")  # fmt: skip
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs {self.warmup_epochs}: must be below epochs "
                             f"{self.epochs}, or no epoch learns the architecture")  # fmt: skip
        if self.temperature_min > self.temperature:
            raise ValueError(f"temperature_min {self.temperature_min}: above temperature "
                             f"{self.temperature}; the temperature anneals down")  # fmt: skip
        return self


class SearchConfig(_Strict):
    """What to search for and how. ``objectives`` left unset are the task's quality metric
    (``accuracy:max`` for images, ``bits_per_byte:min`` for text) and ``latency_ms:min``."""

    searcher: str = "linas"
    options: dict[str, Any] = Field(default_factory=dict, description="searcher arguments")
    budget: int = Field(80, ge=1, le=10**7)
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1,
        description="the searcher's seed; unset, the run's. Another one searches a trained "
        "super-network again (its supernet.safetensors* copied into --out) without training it",
    )  # fmt: skip
    objectives: list[str] | None = None
    constraints: list[str] = Field(default_factory=list)
    calibration_images: int = Field(256, ge=8, le=10**6)
    retries: int = Field(2, ge=0, le=100, description="more attempts at an evaluation that raises")

    @model_validator(mode="after")
    def _searcher_takes_options(self) -> SearchConfig:
        """Searcher and options are checked here, before data loads or training starts."""
        from hwnas.search import SEARCHERS, check_options

        if self.searcher not in SEARCHERS:
            known = ", ".join(SEARCHERS)
            raise HwnasError(f"search.searcher: unknown {self.searcher!r}; choose {known}")
        try:
            check_options(self.searcher, self.options)
        except HwnasError as exc:
            raise HwnasError(f"search.options: {exc}") from None
        return self

    @model_validator(mode="after")
    def _specs_parse(self) -> SearchConfig:
        checks = (("objectives", self.objectives or (), Objective.parse),
                  ("constraints", self.constraints, parse_constraint))  # fmt: skip
        for key, specs, parse in checks:
            for spec in specs:
                try:
                    parse(spec)
                except HwnasError as exc:
                    raise HwnasError(f"search.{key}: {exc}") from None
        if self.objectives == []:
            raise HwnasError("search.objectives: at least one objective is needed")
        return self

    def parsed_objectives(self, default: Sequence[str]) -> list[Objective]:
        """Objectives (``default`` when unset), each constraint on an objective folded in as
        that objective's limit."""
        specs = default if self.objectives is None else self.objectives
        objectives = {o.name: o for o in (Objective.parse(s) for s in specs)}
        for name, op, limit in map(parse_constraint, self.constraints):
            if name in objectives:
                direction = objectives[name].direction
                if (op == "<=") != (direction == "min"):
                    expected = "<=" if direction == "min" else ">="
                    raise HwnasError(
                        f"search.constraints: '{name} {op} {limit:g}': {name} is "
                        f"{direction}imised, its limit takes {expected}"
                    )
                objectives[name] = Objective(name, direction, limit)
        return list(objectives.values())

    def parsed_constraints(self, default: Sequence[str]) -> list[Objective]:
        """Constraints on metrics that are not objectives: limits only, never optimised."""
        names = {o.name for o in self.parsed_objectives(default)}
        return [
            Objective(name, "min" if op == "<=" else "max", limit)
            for name, op, limit in map(parse_constraint, self.constraints)
            if name not in names
        ]


def parse_constraint(spec: str) -> tuple[str, str, float]:
    """``latency_ms <= 2`` or ``accuracy >= 90`` -> (name, operator, finite limit)."""
    for op in ("<=", ">="):
        if op in spec:
            name, _, value = spec.partition(op)
            try:
                limit = float(value)
            except ValueError:
                break
            if math.isfinite(limit) and name.strip():
                return name.strip(), op, limit
            break
    raise HwnasError(f"constraint {spec!r}: expected NAME <= LIMIT or NAME >= LIMIT")


class ExecutionConfig(_Strict):
    """Where evaluations run. Not part of a run's identity: a killed run may resume with
    more or fewer workers (exactly only with the same number of jobs in flight, which
    decides when the searcher is asked; ``hwnas.study``).

    ``workers`` above 1 starts that many local worker processes (``pool``: the standard
    library's, or a local Dask cluster); ``scheduler`` runs on a Dask cluster instead, its
    workers started with ``hwnas worker``. Workers rebuild the run from its config and
    checkpoint, so the data paths must be valid on each of them."""

    workers: int = Field(1, ge=1, le=4096)
    scheduler: str | None = Field(None, pattern=r"^(tcp|tls|ws|wss|inproc)://\S{1,200}$")
    pool: Literal["process", "dask"] = "process"
    in_flight: int | None = Field(None, ge=1, le=100_000, description="default: the workers")
    tell_order: Literal["asked", "arrival"] = "asked"

    @property
    def parallel(self) -> bool:
        return self.workers > 1 or self.scheduler is not None


class RunConfig(_Strict):
    seed: int = Field(0, ge=0, le=2**32 - 1, description="numpy and torch take 32-bit seeds")
    data: DataConfig = Field(default_factory=DataConfig)
    supernet: SupernetConfig = Field(default_factory=SupernetConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    proxies: ProxyConfig = Field(default_factory=ProxyConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    oneshot: OneShotConfig = Field(default_factory=OneShotConfig)

    @model_validator(mode="after")
    def _proxies_of_float_networks(self) -> RunConfig:
        if self.proxies.names and self.quantize.precisions:
            raise ValueError("proxies.names: proxies score the float network, so they cannot "
                             "be combined with quantize.precisions")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _supernet_fits_the_data(self) -> RunConfig:
        """The family and its overrides, checked against what the data's options decide of
        the task (input size, context), without reading data or building the network: a
        misspelt override or a size that would ask for terabytes fails in one line before
        anything loads."""
        from hwnas.families import family_type
        from hwnas.tasks import expected_spec

        try:
            family = family_type(self.supernet.name)
        except HwnasError as exc:
            raise HwnasError(f"supernet.name: {exc}") from None
        check = getattr(family.config_class, "for_spec", None)
        if check is None:
            return self
        try:
            check(self.supernet.overrides, expected_spec(self.data.name, self.data.options()))
        except KeyedError as exc:
            raise exc.under("supernet.overrides") from None
        except HwnasError as exc:
            raise HwnasError(f"supernet.overrides: {exc}") from None
        return self

    @model_validator(mode="after")
    def _quantized_models_run_on_onnxruntime(self) -> RunConfig:
        if self.quantize.precisions and self.latency.backend != "onnxruntime":
            raise HwnasError("quantize.precisions: quantized models run on ONNX Runtime "
                             "(latency.backend: onnxruntime)")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _a_device_has_its_workers(self) -> RunConfig:
        if self.latency.device is not None and self.execution.scheduler is None:
            raise HwnasError(f"latency.device: {self.latency.device} is timed by its own Dask "
                             "workers (hwnas worker --device); set execution.scheduler "
                             "(--scheduler) to their scheduler")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _timings_have_their_cores(self) -> RunConfig:
        """Latency timed while more local workers than cores compete for them is wrong
        (measured: the median sub-network 1.6x slow, one 3.6x; docs/benchmarks.md 8)."""
        cores = os.cpu_count() or 1
        run = self.execution
        if run.scheduler is None and run.workers > cores and self.latency.source == "measured":
            raise HwnasError(f"execution.workers: {run.workers} local workers on {cores} cores "
                             "would time latency while competing for them; use at most "
                             f"{cores}, device workers (latency.device) or a profile "
                             "(latency.source: profile:FILE)")  # fmt: skip
        return self

    def identity(self) -> dict[str, Any]:
        """What decides a run's results, and so must match for it to resume: everything
        but where its evaluations run."""
        return self.model_dump(mode="json", exclude={"execution"})


def load_config(path: str | Path | None) -> RunConfig:
    """Read and validate a YAML config; every problem is one line naming the file and key."""
    if path is None:
        return RunConfig()
    path = Path(path)
    raw = _parse_yaml(read_text_limited(path, "config", MAX_CONFIG_BYTES), path)
    if raw is None:  # empty, or only comments: a wrong file, not a wish for every default
        raise HwnasError(f"config {path}: holds no settings; omit --config for the defaults")
    if not isinstance(raw, dict):
        raise HwnasError(f"config {path}: expected a mapping at the top level")
    try:
        return validated(raw)
    except HwnasError as exc:
        raise HwnasError(f"config {path}: {exc}") from None


def _parse_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load`` that refuses what would exhaust memory or the stack: more than
    ``MAX_YAML_NODES`` values once aliases are expanded, or nesting too deep to parse."""
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses control characters at once
    except yaml.YAMLError as exc:
        raise HwnasError(f"config {path}: not valid YAML ({one_line(exc)})") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _count_nodes(node, path)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise HwnasError(f"config {path}: not valid YAML ({one_line(exc)})") from None
    except RecursionError:
        raise HwnasError(f"config {path}: not valid YAML (nested too deeply)") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an int of 5000 digits
        raise HwnasError(f"config {path}: not valid YAML ({one_line(exc)})") from None
    finally:
        loader.dispose()


def _count_nodes(root: yaml.Node, path: Path) -> None:
    stack, seen = [root], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_YAML_NODES:
            raise HwnasError(
                f"config {path}: more than {MAX_YAML_NODES:,} values once YAML aliases are "
                "expanded (an alias bomb?)"
            )
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))


def validated(raw: dict[str, Any]) -> RunConfig:
    """A config from plain data, every error one line naming the key."""
    return validated_section(RunConfig, "", raw)


def validated_section(model: type[Section], where: str, raw: dict[str, Any]) -> Section:
    """``raw`` as ``model`` (a whole config or one section of it, as ``hwnas.optimize``
    takes its search settings), every error one line naming ``where`` and the key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        message = first_invalid(exc)
        raise HwnasError(f"{where}: {message}" if where else message) from None


def with_overrides(config: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """``config`` with dotted keys (``latency.source``) replaced, as command-line options do;
    validated again, so an option is held to the same rules as the file."""
    raw = config.model_dump(mode="json")
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        target = raw
        for section in sections:
            target = target[section]
        target[key] = value
    try:
        return validated(raw)
    except HwnasError as exc:
        raise HwnasError(f"command line: {exc}") from None
