"""Runtime loop FPS against the backend's pure inference FPS, on this machine.

The loop overlaps capture + preprocessing (capture thread) and post-processing + sinks (output
thread) with inference, so it should run at >= 95% of the inference rate. A 640x480 video made
from the bundled photo (a slow pan) is decoded as the source, every frame processed (--pace none;
end-to-end latency then includes the frames queued ahead, so it is not a camera's latency). A third
variant plays a longer clip like a 30 FPS camera (--pace native: newest frame only, the rest
dropped), which gives the end-to-end latency a robot sees.

    python benchmarks/runtime_loop_fps.py [--model export/anydepth-sdt-vits-256x256-ort.onnx]
        [--frames 40] [--iters 20] [--out benchmarks/results/runtime]

Without --model it uses (and if needed exports, which needs PyTorch) the ViT-S SDT 256 ONNX for
ONNX Runtime.
"""

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anydepth_edge.fileio import write_json_atomic  # noqa: E402
from anydepth_edge.engines.ort_backend import OrtBackend  # noqa: E402
from anydepth_edge.model_input import SAMPLE_IMAGE  # noqa: E402
from anydepth_edge.runtime.loop import DepthLoop, RunOptions  # noqa: E402
from anydepth_edge.runtime.processing import Preprocessor, import_cv2  # noqa: E402
from anydepth_edge.runtime.sources import open_source, parse_source  # noqa: E402


def default_model() -> Path:
    path = REPO / "export" / "anydepth-sdt-vits-256x256-ort.onnx"
    if not path.exists():
        from anydepth_edge.export.onnx_export import export_models
        from anydepth_edge.targets import TARGETS

        export_models("vits", ["sdt"], [(256, 256)], TARGETS["ort"], REPO / "export")
    return path


def make_clip(path: Path, frames: int, cv2) -> None:
    photo = cv2.imread(str(SAMPLE_IMAGE))
    photo = cv2.resize(photo, (800, 600))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for i in range(frames):
        x = int(160 * i / max(frames - 1, 1))
        writer.write(np.ascontiguousarray(photo[60:540, x:x + 640]))
    writer.release()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--camera-seconds", type=int, default=15, help="length of the camera-like clip")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "runtime")
    args = ap.parse_args()
    cv2 = import_cv2()
    model = args.model or default_model()
    backend = OrtBackend(model)

    # pure inference: the same backend on one preprocessed frame, nothing else running
    x = Preprocessor(backend.resolution)(cv2.imread(str(SAMPLE_IMAGE)))
    for _ in range(3):
        backend.infer(x)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        backend.infer(x)
    inference_fps = args.iters / (time.perf_counter() - t0)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "pan.mp4"
        make_clip(clip, args.frames, cv2)
        camera_clip = Path(tmp) / "pan-30fps.mp4"
        make_clip(camera_clip, args.camera_seconds * 30, cv2)
        variants = {
            "loop": (clip, RunOptions(pace="none")),
            "loop + record + viewer": (clip, RunOptions(pace="none", record=str(Path(tmp) / "rec.mp4"),
                                                        serve="127.0.0.1:0")),
            "camera-like 30 FPS (newest frame only)": (camera_clip, RunOptions(pace="native")),
        }
        for name, (path, opts) in variants.items():
            spec = parse_source(str(path))
            s = DepthLoop(backend, open_source(spec, cv2=cv2), spec, opts, cv2=cv2).run()
            results[name] = {
                "frames": s.frames, "captured": s.captured, "dropped": s.dropped, "wall_s": s.wall_s, "loop_fps_steady": s.loop_fps,
                "loop_fps_overall": s.frames / s.wall_s, "ratio_steady": s.loop_fps / inference_fps,
                "stages_mean_ms": {k: v["mean"] for k, v in s.stages.items()},
            }
    record = {
        "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": str(model), "backend": backend.describe(), "source": "640x480 mp4: every frame (--pace none), and played at 30 FPS (--pace native)",
        "inference_fps": inference_fps, "inference_iters": args.iters, "variants": results,
        "target": "loop FPS >= 95% of inference FPS",
    }
    print(f"pure inference: {inference_fps:.3f} FPS ({args.iters} runs)")
    for name, r in results.items():
        st = r["stages_mean_ms"]
        print(f"{name}: {r['loop_fps_steady']:.3f} FPS steady ({r['ratio_steady'] * 100:.1f}% of inference), "
              f"{r['loop_fps_overall']:.3f} FPS over the whole run incl. start-up; stages ms: "
              f"wait {st['capture_wait']:.1f}, pre {st['preprocess']:.1f}, infer {st['inference']:.1f}, "
              f"post {st['postprocess']:.1f}, e2e {st['end_to_end']:.1f}; {r['dropped']} of {r['captured']} dropped")
    out = args.out / f"loop-vs-inference-{record['created'].replace(':', '')[:17]}.json"
    write_json_atomic(out, record)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
