"""Typed records of the artifacts one stage writes and the next reads: the ONNX export and the
TensorRT engine, each with a JSON sidecar beside it (sidecars.py: its name and the record base).
This module is the one place that names the other artifact files (ONNX stems, engine names,
reference bundles, FP16 forms, inspector dumps, build logs).

Every writer builds a record and calls `write_sidecar`; every reader calls `OnnxArtifact.load` /
`EngineArtifact.load`, which refuse a missing, unreadable or foreign sidecar with the command that
rebuilds it. Sidecars of the previous schema are read (their fields are a subset). Torch-free,
Python 3.8.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from anydepth_edge.fileio import sha256_file
from anydepth_edge.sidecars import SidecarRecord
from anydepth_edge.errors import UserError
from anydepth_edge.targets import version_tuple

# ----------------------------------------------------------------------------- file names

def inspector_path(engine) -> Path:
    return Path(engine).with_suffix(".inspector.json")


def build_log_path(engine) -> Path:
    return Path(engine).with_suffix(".build.log")


def checkpoint_tag(sha256: Optional[str]) -> str:
    """'' for random weights, else 'ckpt' + the first 8 hex digits of the checkpoint's sha256."""
    return "" if not sha256 or sha256 == "random" else f"ckpt{sha256[:8]}"


TYPED_FP16_SUFFIX = ".fp16.onnx"
REFERENCE_SUFFIX = ".ref.npz"


def reference_path(onnx) -> Path:
    """export/<stem>.onnx -> export/<stem>.ref.npz: the reference bundle (agreement.Bundle)."""
    return Path(onnx).with_suffix(REFERENCE_SUFFIX)


def typed_fp16_path(onnx) -> Path:
    """export/<stem>.onnx -> export/<stem>.fp16.onnx: the strongly typed FP16 form of the export."""
    return Path(onnx).with_suffix(TYPED_FP16_SUFFIX)


def export_of_typed_fp16(form) -> Path:
    """export/<stem>.fp16.onnx -> export/<stem>.onnx: the FP32 export an FP16 form was made from."""
    form = Path(form)
    return form.with_name(form.name[: -len(TYPED_FP16_SUFFIX)] + ".onnx")


def export_files(folder) -> List[Path]:
    """The exports in a folder (`*.onnx` without their companion `.fp16.onnx` forms), sorted; entries
    that cannot be read (dangling links, loops) are left out."""
    out = []
    for p in sorted(Path(folder).glob("*.onnx")):
        if p.name.endswith(TYPED_FP16_SUFFIX):
            continue
        try:
            if p.is_file():
                out.append(p)
        except OSError:
            continue
    return out


def onnx_stem(decoder: str, encoder: str, res, target: str, dysample: str = "grid_sample",
              checkpoint_sha256: Optional[str] = None) -> str:
    """anydepth-<decoder>-<encoder>-<H>x<W>-<target>[-gather][-ckpt<sha8>]: what the file contains,
    so exports of two checkpoints never share a name."""
    tags = ([] if dysample == "grid_sample" else ["gather"]) + [t for t in [checkpoint_tag(checkpoint_sha256)] if t]
    return "-".join([f"anydepth-{decoder}-{encoder}-{res[0]}x{res[1]}-{target}"] + tags)


def gpu_tag(gpu_name: str) -> str:
    """'Orin (nvgpu)' -> 'orin'; 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'."""
    slug = re.sub(r"\(.*?\)", "", gpu_name.lower())
    slug = re.sub(r"\bnvidia\b|\bgeforce\b|\btesla\b", "", slug)
    slug = re.sub(r"[^a-z0-9]+", "-", slug).strip("-")
    return slug or "gpu"


def engine_path(onnx_path, precision: str, trt_version: str, gpu_name: str, out_dir) -> Path:
    """engines/<onnx stem>-<precision>-trt<version>-<gpu>.engine"""
    v = ".".join(str(p) for p in version_tuple(trt_version))
    return Path(out_dir) / f"{Path(onnx_path).stem}-{precision}-trt{v}-{gpu_tag(gpu_name)}.engine"


# ----------------------------------------------------------------------------- record types

@dataclass
class TensorSpec:
    name: str
    shape: List[int]
    dtype: str = "float32"
    layout: str = ""
    meaning: str = ""

    def to_dict(self) -> Dict[str, Any]:
        d = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        d.update({k: v for k, v in (("layout", self.layout), ("meaning", self.meaning)) if v})
        return d


@dataclass
class CheckpointRef:
    path: Optional[str]
    format: str  # random | anydepth-official | dinov3-backbone | anydepth-edge
    sha256: str = "random"

    @property
    def random(self) -> bool:
        return self.format == "random"

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "format": self.format, "sha256": self.sha256}


RANDOM_CHECKPOINT = CheckpointRef(None, "random", "random")


@dataclass
class OnnxArtifact(SidecarRecord):
    """An exported ONNX file and what it contains (`export/<stem>.onnx` + `<stem>.json`)."""

    SCHEMA: ClassVar[str] = "anydepth-edge/onnx/2"
    READS: ClassVar[Tuple[str, ...]] = ("anydepth-edge/onnx/1", "anydepth-edge/onnx/2")
    KIND: ClassVar[str] = "ONNX export"

    model: str
    encoder: str
    decoder: str
    config: Dict[str, Any]
    resolution: List[int]
    opset: int
    target: str
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    checkpoint: CheckpointRef
    schema: str = "anydepth-edge/onnx/2"
    family: str = "dinov3"  # encoder family: dinov3 (patch 16) or dinov2 (patch 14)
    output_kind: str = "depth"  # depth, or disparity (larger = nearer: Depth Anything V2's head)
    licence: str = ""  # of the weights, when known (the released files)
    notes: List[str] = field(default_factory=list)  # what the graph does beyond the model (e.g. SDT's resize)
    exporter: str = ""
    dysample: str = "grid_sample"
    layernorm: str = ""
    mean: List[float] = field(default_factory=list)
    std: List[float] = field(default_factory=list)
    toolkit_version: str = ""
    params: Dict[str, int] = field(default_factory=dict)
    gflops: Dict[str, float] = field(default_factory=dict)
    traffic: Dict[str, int] = field(default_factory=dict)  # bytes one FP32 inference moves (export/traffic.py)
    nodes: Dict[str, int] = field(default_factory=dict)
    op_counts: Dict[str, int] = field(default_factory=dict)
    fp32_nodes: List[str] = field(default_factory=list)  # the default FP16 pins (pins.PIN_SETS)
    pin_nodes: Dict[str, List[str]] = field(default_factory=dict)  # every pin region's node names
    parity: Dict[str, Any] = field(default_factory=dict)
    fp16: Optional[Dict[str, Any]] = None
    # the reference bundle beside it (agreement.Bundle): {file, sha256, inputs}
    reference: Optional[Dict[str, Any]] = None
    # the strongly typed FP16 form beside it (trt10): {file, sha256, fp32_regions, casts, agreement}
    typed_fp16: Optional[Dict[str, Any]] = None
    export_seconds: Optional[float] = None
    export_peak_rss_mb: Optional[int] = None  # the export process's peak resident memory during this export
    host: str = ""
    cache_key: str = ""
    onnx_sha256: str = ""
    path: Optional[Path] = None

    def _convert(self) -> None:
        self.inputs = [t if isinstance(t, TensorSpec) else TensorSpec(**t) for t in self.inputs]
        self.outputs = [t if isinstance(t, TensorSpec) else TensorSpec(**t) for t in self.outputs]
        if isinstance(self.checkpoint, dict):
            self.checkpoint = CheckpointRef(**self.checkpoint)
        self.resolution = [int(v) for v in self.resolution]

    @property
    def res(self) -> Tuple[int, int]:
        return int(self.resolution[0]), int(self.resolution[1])

    @property
    def random_weights(self) -> bool:
        return self.checkpoint.random

    def rebuild_command(self) -> str:
        h, w = self.res
        cmd = (f"anydepth-edge export --decoder {self.decoder} --encoder {self.encoder} --res {h}x{w} "
               f"--target {self.target}")
        if self.dysample != "grid_sample":
            cmd += f" --dysample {self.dysample}"
        if self.checkpoint.path:
            cmd += f" --checkpoint {self.checkpoint.path}"
        if self.path is not None:
            cmd += f" --out-dir {self.path.parent} --force"
        return cmd

    @classmethod
    def _generic_rebuild(cls, artifact: Path) -> str:
        m = re.match(r"anydepth-(sdt|dpt|dav2)-(vit[slb])(?:14)?-(\d+x\d+)-([a-z0-9.]+?)(-gather)?(-ckpt[0-9a-f]{8})?$",
                     artifact.stem)
        if not m:
            return "re-export it with anydepth-edge export"
        cmd = f"anydepth-edge export --decoder {m.group(1)} --encoder {m.group(2)} --res {m.group(3)} --target {m.group(4)}"
        return ("re-export it: " + cmd + (" --dysample gather" if m.group(5) else "")
                + (" --checkpoint <the checkpoint>" if m.group(6) else "") + f" --out-dir {artifact.parent} --force")

    def content_matches(self) -> bool:
        """The ONNX file is the one this sidecar describes (same sha256)."""
        return bool(self.path and self.path.is_file() and self.onnx_sha256 == sha256_file(self.path))

    def require_content(self) -> "OnnxArtifact":
        """Trusted by content, not name: a file that is not the one its sidecar describes (swapped,
        edited, half-copied) is refused with the command that re-exports it."""
        if not self.content_matches():
            raise UserError(f"{self.path.name} is not the file its sidecar describes (sha256 differs: swapped, "
                            f"edited or damaged): {self.rebuild_command()}")
        return self

    def companion(self, key: str) -> Optional[Path]:
        """The path of a file this export lists beside it (`reference`, `typed_fp16`), or None."""
        entry = getattr(self, key)
        return self.path.parent / entry["file"] if entry and self.path is not None else None

    def companion_matches(self, key: str) -> bool:
        path = self.companion(key)
        return bool(path and path.is_file() and sha256_file(path) == getattr(self, key)["sha256"])

    @classmethod
    def of_file(cls, path) -> "OnnxArtifact":
        """The trusted record behind an export or behind its strongly typed FP16 form (which its
        export's sidecar lists and vouches for by sha256); one clear error otherwise."""
        path = Path(path)
        if not path.name.endswith(TYPED_FP16_SUFFIX):
            return cls.load(path).require_content()
        export = cls.load(export_of_typed_fp16(path)).require_content()
        if path != export.companion("typed_fp16") or not export.companion_matches("typed_fp16"):
            raise UserError(f"{path.name} is not the FP16 form {export.path.name}'s sidecar describes: "
                            f"{export.rebuild_command()}")
        return export

    def check_shape(self, input_shape, where: str) -> None:
        """The model `where` loaded takes the input this record says (an edited sidecar does not)."""
        want = tuple(self.inputs[0].shape) if self.inputs else None
        if want is not None and tuple(int(d) for d in input_shape) != want:
            raise UserError(f"{where}: the model takes {tuple(input_shape)} but its sidecar says {want}: "
                            f"{self.rebuild_command()}")


@dataclass
class EngineArtifact(SidecarRecord):
    """A TensorRT engine and how it was built (`engines/<name>.engine` + `<name>.json`)."""

    SCHEMA: ClassVar[str] = "anydepth-edge/engine/2"
    READS: ClassVar[Tuple[str, ...]] = ("anydepth-edge/engine/1", "anydepth-edge/engine/2")
    KIND: ClassVar[str] = "TensorRT engine"

    tensorrt_version: str
    gpu_name: str
    onnx_path: str
    onnx_sha256: str
    settings: Dict[str, Any]
    schema: str = "anydepth-edge/engine/2"
    rung: str = ""  # the precision ladder's rung: fp16, fp16-wide or fp32
    typing: str = "weak"  # strong: types from an FP16 graph (TensorRT >= 10); weak: FP16 flag + pins
    # agreement.Verdict against the export's reference bundle, + {"bundle_sha256"}; None: never verified
    verification: Optional[Dict[str, Any]] = None
    ladder: List[Dict[str, Any]] = field(default_factory=list)  # every rung tried: rung, status, why
    compute_capability: Optional[List[int]] = None
    jetson: Optional[Dict[str, str]] = None  # model, l4t, jetpack of the board that built it
    device_profile: str = ""
    model: Optional[str] = None
    decoder: str = ""  # the export's (sdt, dpt, dav2); '' in sidecars written before it was recorded
    resolution: Optional[List[int]] = None
    target: Optional[str] = None
    inputs: List[TensorSpec] = field(default_factory=list)
    outputs: List[TensorSpec] = field(default_factory=list)
    mean: Optional[List[float]] = None
    std: Optional[List[float]] = None
    builder: str = "python"
    trtexec_command: Optional[str] = None
    precision_constraints: str = ""
    pinned_layers: int = 0
    build_seconds: Optional[float] = None
    device_memory_bytes: Optional[int] = None
    memory_log: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    toolkit_version: str = ""
    engine_sha256: str = ""
    path: Optional[Path] = None

    def _convert(self) -> None:
        self.inputs = [t if isinstance(t, TensorSpec) else TensorSpec(**t) for t in self.inputs or []]
        self.outputs = [t if isinstance(t, TensorSpec) else TensorSpec(**t) for t in self.outputs or []]

    @property
    def precision(self) -> str:
        return str(self.settings.get("precision", "?"))

    @property
    def l4t(self) -> str:
        return (self.jetson or {}).get("l4t") or ""

    @property
    def status(self) -> str:
        """verified (its output agreed with FP32 on this board), failed, or unverified."""
        if not self.verification:
            return "unverified"
        return "verified" if self.verification.get("passed") else "failed"

    def rebuild_command(self) -> str:
        return f"anydepth-edge build {self.onnx_path or '<the .onnx>'} --force"

    @classmethod
    def _generic_rebuild(cls, artifact: Path) -> str:
        return "rebuild it with anydepth-edge build <the .onnx> --force"

    def content_matches(self) -> bool:
        return bool(self.path and self.path.is_file() and self.engine_sha256 == sha256_file(self.path))

    def require_content(self) -> "EngineArtifact":
        if not self.content_matches():
            raise UserError(f"{self.path.name} is not the engine its sidecar describes (sha256 differs: swapped, "
                            f"edited or damaged): rebuild with {self.rebuild_command()}")
        return self
