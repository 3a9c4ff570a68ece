"""The one table of export targets and the JetPack releases they serve (torch-free, Python 3.8).

A target fixes what the exported ONNX looks like (opset, LayerNorm form, operator table) for a
range of TensorRT versions; a JetPack row says which TensorRT, CUDA and Python a board has and so
which target it needs. Export, lint, build, doctor, the container entrypoint and the README's
hardware table all read these two tables.

Never torch's defaults: torch >= 2.9 exports with dynamo at opset 20, and opset 20 renamed
GridSample's mode 'bilinear' to 'linear', which onnx-tensorrt imports as NEAREST.
"""

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from anydepth_edge.errors import UserError

Version = Tuple[int, ...]


def version_tuple(version: str) -> Version:
    """'10.3.0.26' -> (10, 3, 0); 'R36 4.3' -> (36, 4, 3): the first three numbers."""
    return tuple(int(p) for p in re.findall(r"\d+", str(version))[:3])


@dataclass(frozen=True)
class Target:
    name: str
    opset: int
    tensorrt: bool
    native_layernorm: bool  # opset >= 17 LayerNormalization (TensorRT >= 8.6); else decomposed
    trt_min: Optional[Version] = None  # TensorRT versions this target is built for (inclusive)
    trt_max: Optional[Version] = None  # exclusive
    help: str = ""
    sampler: str = "grid_sample"  # DySample form exported by default (one of SAMPLERS), chosen by measurement

    def sampler_for(self, decoder: str, choice: Optional[str] = None) -> str:
        """The DySample form to export: `choice` when given, else this target's measured default. DPT
        has no DySample: its exports are always the plain form (no '-gather' in their names)."""
        form = choice or self.sampler
        if form not in SAMPLERS:
            raise UserError(f"unknown DySample form {form!r}: choose one of {', '.join(SAMPLERS)}")
        return form if decoder == "sdt" else SAMPLERS[0]

    @property
    def decompose_layernorm(self) -> bool:
        return not self.native_layernorm

    @property
    def layernorm(self) -> str:
        return "LayerNormalization (opset 17)" if self.native_layernorm else f"decomposed (opset {self.opset})"

    def fits(self, trt_version: str) -> bool:
        v = version_tuple(trt_version)[:2]
        return bool(self.tensorrt and self.trt_min and v >= self.trt_min[:2]
                    and (self.trt_max is None or v < self.trt_max[:2]))


# DySample's two export forms: ONNX GridSample (TensorRT >= 8.5) or the same bilinear sampling from
# Gather + arithmetic (anydepth_edge/export/forms.py).
SAMPLERS = ("grid_sample", "gather")

TARGETS: Dict[str, Target] = {
    # JetPack 5.1.x: TensorRT 8.5.2 cannot import LayerNormalization -> opset 16, decomposed.
    "trt8.5": Target("trt8.5", 16, True, False, (8, 5), (8, 6), "JetPack 5.1: opset 16, LayerNorm decomposed"),
    # JetPack 6.0: TensorRT 8.6.2, opset <= 17, native LayerNormalization (FP32 compute).
    "trt8.6": Target("trt8.6", 17, True, True, (8, 6), (10, 0), "JetPack 6.0"),
    # JetPack 6.1/6.2 (TensorRT 10.3) and 7.2 (10.16): opset <= 20, but never 20 (GridSample 'linear').
    # TensorRT 11.4 takes the same graph: pip's tensorrt on x86 / SBSA GPUs, and JetPack 7.2.2+ on AGX
    # Orin and Thor through NVIDIA's SBSA package (11.5 drops JetPack; the Orin Nano is not in NVIDIA's
    # table as we read it). 11 is strongly typed only: engines are built from the export's .fp16.onnx.
    "trt10": Target("trt10", 17, True, True, (10, 0), (12, 0), "JetPack 6.1/6.2, 7.2; TensorRT 11.4 (strongly typed)"),
    # ONNX Runtime (CPU / CUDA / TensorRT EP). Gather form: ORT's CPU GridSample kernel made DySample
    # 2x slower (ViT-S 256 SDT, 2-core Xeon: DySample 364 -> ~175 ms, SDT 1300 -> 1067 ms min).
    "ort": Target("ort", 17, False, True, help="ONNX Runtime", sampler="gather"),
}
TRT_TARGETS = tuple(name for name, t in TARGETS.items() if t.tensorrt)
# TensorRT releases known to miscompile DINOv3 (NVIDIA/TensorRT#4723, #4558, #4742): engines are
# verified against FP32 anyway; doctor and the ladder's error name these.
KNOWN_BAD_DINOV3 = ((10, 3), (10, 4))
TARGET_CHOICES = ("auto",) + tuple(TARGETS)
DEFAULT_TRT_TARGET = "trt10"  # JetPack 6.1/6.2, what an Orin Nano runs when none is installed here


@dataclass(frozen=True)
class JetPack:
    """One JetPack release line as the Orin Nano gets it."""

    jetpack: str  # '6.1 / 6.2'
    l4t: str  # '36.4.x'
    l4t_releases: Dict[str, str]  # exact L4T release -> JetPack point release
    tensorrt: str
    cuda: str
    python: str
    target: str

    @property
    def l4t_major(self) -> str:
        return self.l4t.split(".")[0]


JETPACKS: Tuple[JetPack, ...] = (
    # Orin Nano needs JetPack >= 5.1.1 (L4T 35.3.1).
    JetPack("5.1.1-5.1.5", "35.3.1-35.6.x",
            {"35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3", "35.6.0": "5.1.4", "35.6.1": "5.1.5",
             "35.6.2": "5.1.5"},
            "8.5.2", "11.4", "3.8", "trt8.5"),
    JetPack("6.0", "36.3", {"36.2.0": "6.0 DP", "36.3.0": "6.0"}, "8.6.2", "12.2", "3.10", "trt8.6"),
    JetPack("6.1 / 6.2", "36.4.x", {"36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1"}, "10.3", "12.6", "3.10",
            "trt10"),
    # JetPack 7.2 (June 2026, Ubuntu 24.04) supports Orin and Thor (7.0/7.1, L4T 38.x, are Thor only).
    JetPack("7.2", "39.2", {"39.2.0": "7.2"}, "10.16", "13.2", "3.12", "trt10"),
)


def jetpack_for_l4t(l4t: str) -> Optional[JetPack]:
    """The JetPack line of an L4T release: the exact release, else the same major.minor, else the only
    line of that major."""
    v = version_tuple(l4t)[:2]
    for jp in JETPACKS:
        if l4t in jp.l4t_releases:
            return jp
    for jp in JETPACKS:
        if any(version_tuple(r)[:2] == v for r in jp.l4t_releases):
            return jp
    family = [jp for jp in JETPACKS if version_tuple(l4t)[:1] == (int(jp.l4t_major),)]
    return family[0] if len(family) == 1 else None  # e.g. a 35.x point release not listed yet


def jetpack_name(l4t: str) -> str:
    """'35.4.1' -> '5.1.2'; an unlisted release of a known L4T family -> '5.1.x' / '6.x'; else ''."""
    for jp in JETPACKS:
        if l4t in jp.l4t_releases:
            return jp.l4t_releases[l4t]
    family = [jp for jp in JETPACKS if version_tuple(l4t)[:1] == (int(jp.l4t_major),)]
    if len(family) == 1:
        return re.split(r"[ -]", family[0].jetpack)[0].rsplit(".", 1)[0] + ".x"
    if family:
        return family[0].jetpack.split(".")[0] + ".x"
    return ""


def target_for_tensorrt_version(version: str) -> str:
    """'8.5.2.2' -> 'trt8.5'; '8.6.2' -> 'trt8.6'; '10.3.0' -> 'trt10'."""
    v = version_tuple(version)
    if len(v) < 2:
        raise UserError(f"cannot read TensorRT version {version!r}")
    if v[:2] < (8, 5):
        raise UserError(f"TensorRT {version} cannot import GridSample (needs >= 8.5, JetPack >= 5.1.1)")
    for name in TRT_TARGETS:
        if TARGETS[name].fits(version):
            return name
    raise UserError(f"no export target for TensorRT {version}")  # unreachable while trt10 is open-ended


def installed_tensorrt_version() -> Optional[str]:
    try:
        import tensorrt
    except Exception:
        return None
    return getattr(tensorrt, "__version__", None)


def resolve_target(name: str, installed: Optional[str] = None) -> Target:
    """`auto`: the TensorRT installed here (or `installed`), else trt10 (JetPack 6.1/6.2)."""
    key = (name or "auto").lower()
    if key == "auto":
        version = installed if installed is not None else installed_tensorrt_version()
        key = target_for_tensorrt_version(version) if version else DEFAULT_TRT_TARGET
    if key not in TARGETS:
        raise UserError(f"unknown target {name!r}: choose one of {', '.join(TARGET_CHOICES)}")
    return TARGETS[key]


def check_target_for_tensorrt(target: str, trt_version: str) -> Optional[str]:
    """An error for an ONNX this TensorRT cannot build (LayerNormalization on 8.5); a warning when it
    builds but another target fits better; None when it is the target for this TensorRT."""
    fit = target_for_tensorrt_version(trt_version)
    t, best = TARGETS.get(target), TARGETS[fit]
    if t is not None and (t.opset, t.native_layernorm) == (best.opset, best.native_layernorm):
        return None  # the same graph under another name (trt8.6 / trt10)
    if t is not None and t.native_layernorm and not best.native_layernorm:
        raise UserError(f"this ONNX was exported for {target} (native LayerNormalization); TensorRT {trt_version} "
                        f"needs: anydepth-edge export --target {fit}")
    return f"this ONNX was exported for {target}; TensorRT {trt_version} builds it, but --target {fit} fits better"


def hardware_table() -> str:
    """The README's JetPack table (a test keeps the README equal to it)."""
    lines = ["| JetPack | L4T | TensorRT | CUDA | Python | export target | LayerNorm |",
             "|---|---|---|---|---|---|---|"]
    for jp in JETPACKS:
        t = TARGETS[jp.target]
        ln = "native (FP32 compute)" if t.native_layernorm else "decomposed, pinned FP32"
        lines.append(f"| {jp.jetpack} | {jp.l4t} | {jp.tensorrt} | {jp.cuda} | {jp.python} | "
                     f"`{t.name}` (opset {t.opset}) | {ln} |")
    return "\n".join(lines)
