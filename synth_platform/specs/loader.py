"""Reading YAML into typed specs, with errors that name the file, the key path and the reason."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pydantic
import yaml

M = TypeVar("M", bound=pydantic.BaseModel)


class SpecError(ValueError):
    """Invalid configuration. The message is the whole story: file, key path, what is wrong."""

    def __init__(self, file: Path | str, problems: list[tuple[str, str]]):
        self.file = str(file)
        self.problems = problems
        lines = [f"{self.file}: {path or '<top level>'}: {reason}" for path, reason in problems]
        super().__init__("invalid config\n  " + "\n  ".join(lines))


class Spec(pydantic.BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable once loaded."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def dividing(whole: int, unit: str, span: str, examples: str, minimum: int = 1) -> Callable[[int], int]:
    """A field validator for a length that must tile `span` (a day, an hour): a whole number of `unit` of at
    least `minimum` that divides `whole`, so windows never straddle the span's end."""

    def check(value: int) -> int:
        if value < minimum or whole % value:
            at_least = f" and at least {minimum}" if minimum > 1 else ""
            raise ValueError(
                f"must be a whole number of {unit} that divides {whole} ({span}){at_least}, e.g. {examples}"
            )
        return value

    return check


def read_yaml(file: Path) -> Any:
    if not file.is_file():
        raise SpecError(file, [("", "file not found")])
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(file, [(where, f"invalid YAML: {getattr(exc, 'problem', None) or exc}")]) from None


def parse(model: type[M], data: Any, file: Path | str, prefix: str = "") -> M:
    """Validate `data` against `model`; pydantic's errors become one SpecError for the file."""
    try:
        return model.model_validate({} if data is None else data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown key"
            problems.append((path, reason))
        raise SpecError(file, problems) from None


def load(model: type[M], file: Path) -> M:
    return parse(model, read_yaml(file), file)


def spec_hash(*specs: pydantic.BaseModel | Any) -> str:
    """Short content hash of specs (provenance: which definition produced a row)."""
    payload = [s.model_dump(mode="json") if isinstance(s, pydantic.BaseModel) else s for s in specs]
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
