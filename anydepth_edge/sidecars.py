"""Sidecars: the JSON record beside an artifact (`model.onnx` -> `model.json`), its name, and the
typed-record base that reads and writes it (artifacts.OnnxArtifact, artifacts.EngineArtifact).
Python 3.8."""

from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Dict, Optional, Tuple

from anydepth_edge.fileio import read_json, write_json_atomic
from anydepth_edge.errors import UserError

SIDECAR_SUFFIX = ".json"


def sidecar_path(artifact) -> Path:
    """`model.onnx` -> `model.json`; `x.engine` -> `x.json`."""
    return Path(artifact).with_suffix(SIDECAR_SUFFIX)


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class SidecarRecord:
    """A dataclass record kept as a JSON sidecar beside its artifact: written last (so a sidecar
    exists only when its artifact does), read back strictly (schema, fields) with the command that
    rebuilds it when it cannot be."""

    SCHEMA: ClassVar[str] = ""
    READS: ClassVar[Tuple[str, ...]] = ()
    KIND: ClassVar[str] = ""
    path: Optional[Path]

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "path"}

    @classmethod
    def from_dict(cls, data: Dict[str, Any], path: Optional[Path] = None):
        known = {f.name for f in fields(cls)} - {"path"}
        kwargs = {k: v for k, v in data.items() if k in known}
        record = cls(**kwargs)
        record.path = Path(path) if path is not None else None
        record._convert()
        return record

    def _convert(self) -> None:
        """Nested dicts -> their record types (after from_dict)."""

    def rebuild_command(self) -> str:
        raise NotImplementedError

    @classmethod
    def _generic_rebuild(cls, artifact: Path) -> str:
        raise NotImplementedError

    @classmethod
    def load(cls, artifact, require_file: bool = True) -> "SidecarRecord":
        """The record beside `artifact`; one clear error (with the command that rebuilds it) when the
        sidecar is missing, not JSON, or of a schema this version does not read. `require_file`
        False reads the record of an artifact that was removed (an engine that failed verification)."""
        artifact = Path(artifact)
        side = sidecar_path(artifact)
        if require_file and not artifact.is_file():
            raise UserError(f"{cls.KIND} not found: {artifact}")
        if not side.is_file():
            raise UserError(f"{side.name} is missing beside {artifact.name} (it describes the {cls.KIND}): "
                            f"{cls._generic_rebuild(artifact)}")
        data = read_json(side)
        if data is None:
            raise UserError(f"{side} is not a readable JSON sidecar: {cls._generic_rebuild(artifact)}")
        schema = data.get("schema")
        if schema not in cls.READS:
            raise UserError(f"{side.name} has schema {schema!r}, which this anydepth-edge does not read "
                            f"(it reads {', '.join(cls.READS)}): {cls._generic_rebuild(artifact)}")
        try:
            return cls.from_dict(data, artifact)
        except (TypeError, ValueError, KeyError) as e:
            raise UserError(f"{side.name} is incomplete ({e}): {cls._generic_rebuild(artifact)}") from None

    @classmethod
    def find(cls, artifact, require_file: bool = True) -> Optional["SidecarRecord"]:
        """Like `load`, but None instead of an error (for listings that skip what they cannot use)."""
        try:
            return cls.load(artifact, require_file)
        except UserError:
            return None

    def write_sidecar(self) -> Path:
        if self.path is None:
            raise ValueError("record has no artifact path")
        self.schema = self.SCHEMA
        return write_json_atomic(sidecar_path(self.path), self.to_dict())
