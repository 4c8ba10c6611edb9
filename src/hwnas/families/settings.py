"""The base of a family config kept as a pydantic model (the transformer's, LLaMA's):
strict, frozen, JSON in and out, and one-line errors naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from hwnas.errors import HwnasError, KeyedError


class FamilyConfig(BaseModel):
    """``to_dict`` is what checkpoints and profiles store; ``from_dict`` rebuilds it, a bad
    value a ``KeyedError`` saying which key (prefixed by ``label``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)
    label: ClassVar[str] = "family"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        if not isinstance(values, Mapping):
            raise HwnasError(f"{cls.label} config: expected a mapping, got {type(values).__name__}")
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"])
            detail = error["msg"].removeprefix("Value error, ")
            raise KeyedError(key, detail, prefix=f"{cls.label} config: ") from None
