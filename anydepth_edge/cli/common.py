"""The command line's shared parts: the Typer app, the choices (enums, so `--help` lists them),
the help texts several verbs use, and the option-metavar and click-exception helpers `main` uses.
Python 3.8 compatible (JetPack 5): typer evaluates annotations, so they use typing.List / Optional."""

from enum import Enum
from typing import List, Optional

import typer

from anydepth_edge import __version__
from anydepth_edge.console import out
from anydepth_edge.engines.base import TORCH_LAYOUTS
from anydepth_edge.errors import UserError
from anydepth_edge.model_facts import DECODERS
from anydepth_edge.targets import SAMPLERS as SAMPLER_FORMS
from anydepth_edge.targets import TARGET_CHOICES
from anydepth_edge.runtime.metric import METRIC_MODES
from anydepth_edge.evaluation.datasets import DATASETS

app = typer.Typer(
    name="anydepth-edge",
    help=(
        "AnyDepth monocular depth (DINOv3 + SDT decoder, DPT as baseline) from PyTorch to a TensorRT "
        "FP16 engine on a Jetson Orin Nano: export, build, bench, run.\n\n"
        "Typical robot session:  anydepth-edge export --res 256  ->  anydepth-edge bench --device orin-nano  "
        "->  anydepth-edge run --source 0 --serve 8080"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal width
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _choices(name: str, values) -> type:
    """A str Enum of `values` (names may hold dots: 'trt8.5'), so typer validates and lists them."""
    return Enum(name, {v: v for v in values}, type=str)


Encoder = _choices("Encoder", ("vits", "vitb", "vitl"))
Decoder = _choices("Decoder", DECODERS)
DecoderOrAll = _choices("DecoderOrAll", DECODERS + ("all",))
Target = _choices("Target", TARGET_CHOICES)
TrtTarget = _choices("TrtTarget", ("auto", "trt8.5", "trt8.6", "trt10"))
# --dysample choices: auto (the target's measured form, None) and each export form without '_'.
SAMPLERS = {"auto": None, **{form.replace("_", ""): form for form in SAMPLER_FORMS}}
Sampler = _choices("Sampler", SAMPLERS)
Layout = _choices("Layout", TORCH_LAYOUTS)
EngineMode = _choices("EngineMode", ("auto", "never", "always"))
Precision = _choices("Precision", ("fp16", "fp32"))
Rung = _choices("Rung", ("auto", "fp16", "fp16-wide", "fp32"))
Typing = _choices("Typing", ("auto", "strong", "weak"))
Builder = _choices("Builder", ("python", "trtexec"))
Profile = _choices("Profile", ("auto", "orin-nano", "generic"))
BenchDevice = _choices("BenchDevice", ("auto", "orin-nano", "cpu", "cuda"))
BackendName = _choices("BackendName", ("auto", "trt", "ort", "torch"))
Resize = _choices("Resize", ("stretch", "letterbox"))
Pace = _choices("Pace", ("native", "none"))
Job = _choices("Job", ("run", "bench", "export", "ros2"))
DepthSize = _choices("DepthSize", ("model", "frame"))
Reliability = _choices("Reliability", ("reliable", "best_effort"))
ROS_PANEL = "ROS 2 (--ros2, --record-bag, --source ros:TOPIC; docs/ros2.md)"
METRIC_PANEL = "Metric depth (--metric; docs/metric.md)"
MetricMode = _choices("MetricMode", METRIC_MODES)
EvalDataset = _choices("EvalDataset", DATASETS)
SAMPLER_HELP = ("DySample form: gridsample (ONNX GridSample, TensorRT >= 8.5), gather (the same bilinear sampling "
                "from Gather + arithmetic, 2x faster on ONNX Runtime CPU); auto = the target's default: gather for ort, "
                "gridsample for TensorRT.")

ENCODER_HELP = ("Encoder size: vits (ViT-S, 21.6M), vitb (ViT-B), vitl (ViT-L). Default: the checkpoint's, "
                "else vits (DINOv3, random weights).")
DECODER_HELP = ("sdt (AnyDepth), dpt (the paper's baseline) or dav2 (Depth Anything V2's DPT head). Default: the "
                "checkpoint's, else sdt.")
RES_HELP = ("Input size: one side (256) or HEIGHTxWIDTH (256x320); multiples of the model's patch: 16 (DINOv3), "
            "14 (DINOv2 weights: e.g. 266, or 518, their native size).")
CKPT_HELP = (
    "Weights file: a released Depth Anything V2 layout file (dav2_sdt_vitb.pth, depth_anything_v2_vits.pth, ...), "
    "an official AnyDepth checkpoint, a Meta DINOv3 backbone (decoder stays random) or an anydepth-edge "
    ".safetensors; the architecture is read from it. Without one, random weights (timings valid, depth not)."
)
BACKEND_HELP = "auto (TensorRT > ORT-CUDA > PyTorch-CUDA > ORT-CPU), trt, ort or torch."


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"anydepth-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    pass


def _value(choice: Optional[Enum]) -> Optional[str]:
    return choice.value if choice is not None else None


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"this needs {module}: pip install 'anydepth-edge[{extra}]'")


def _readable_metavars() -> None:
    """TEXT / N / NUMBER in `--help` instead of typer's <str> / <int> / <float>, and nothing after
    a flag (typer prints <bool>); choices (enums) keep their lists."""
    import inspect

    names = {str: "TEXT", int: "N", float: "NUMBER", Optional[str]: "TEXT", Optional[int]: "N",
             Optional[float]: "NUMBER", List[str]: "TEXT", bool: " "}
    for command in app.registered_commands + ([app.registered_callback] if app.registered_callback else []):
        for p in inspect.signature(command.callback).parameters.values():
            info = p.default
            if isinstance(info, (typer.models.OptionInfo, typer.models.ArgumentInfo)) and info.metavar is None:
                info.metavar = names.get(p.annotation)


NARROW_HELP_COLUMNS = 100  # below this, rich's option table leaves ~20 columns and cuts long values


def _plain_help_when_narrow() -> None:
    """On a narrow terminal (an 80-column SSH session on the robot), `--help` as click prints it:
    rich's table cut `csi://0?mode=2&w...` and option names with an ellipsis; plain text wraps."""
    import shutil

    if shutil.get_terminal_size().columns < NARROW_HELP_COLUMNS:
        app.rich_markup_mode = None


def _click_exceptions():
    """(UsageError, ClickException, Abort) of the click typer runs on (newer typer vendors its own)."""
    mro = typer.BadParameter.__mro__
    usage = next(c for c in mro if c.__name__ == "UsageError")
    return usage, next(c for c in mro if c.__name__ == "ClickException"), typer.Abort
