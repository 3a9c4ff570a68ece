"""`anydepth-edge verify FILE`: does an engine or an ONNX file give the FP32 export's depth?

Against the export's reference bundle (numpy only), or with `--images DIR` against the FP32 ONNX
run on ONNX Runtime CPU over those images. An engine's verdict is written into its record, so
`run` and `bench` take it afterwards. No PyTorch. Python 3.8.
"""

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from anydepth_edge.agreement import MIN_INPUTS, Bundle, Verdict, verify_backend
from anydepth_edge.errors import UserError
from anydepth_edge.images import IMAGE_EXTS, ImageRefused, read_image_file
from anydepth_edge.artifacts import TYPED_FP16_SUFFIX, EngineArtifact, OnnxArtifact

MAX_IMAGES = 16


def _export_of(path: Path) -> Tuple[OnnxArtifact, str]:
    """The FP32 export a file is checked against, and the precision its limits are for."""
    if path.suffix == ".engine":
        record = EngineArtifact.load(path)
        return OnnxArtifact.load(record.onnx_path).require_content(), record.rung or record.precision
    return OnnxArtifact.of_file(path), "fp16" if path.name.endswith(TYPED_FP16_SUFFIX) else "fp32"


def images_bundle(folder: Path, export: OnnxArtifact) -> Bundle:
    """Up to MAX_IMAGES images of `folder`, stretched to the model size, and the FP32 export's depth
    on ONNX Runtime CPU."""
    from anydepth_edge.engines.ort_backend import OrtBackend
    from anydepth_edge.model_input import normalise

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)[:MAX_IMAGES] \
        if Path(folder).is_dir() else []
    if len(files) < MIN_INPUTS:
        raise UserError(f"--images {folder}: {len(files)} image(s) ({', '.join(IMAGE_EXTS)}) there; give at least "
                        f"{MIN_INPUTS} distinct ones, so the check can tell an engine that ignores its input")
    h, w = export.res
    inputs = np.concatenate([normalise(_read_rgb(p, (h, w))) for p in files])
    reference = OrtBackend(export.path)
    outputs = np.concatenate([reference.infer(x[None]).copy() for x in inputs])
    return Bundle([p.name for p in files], inputs, outputs)


def _read_rgb(path: Path, size) -> np.ndarray:
    try:
        import cv2
    except ImportError:
        raise UserError("--images needs OpenCV: pip install 'anydepth-edge[cv]'") from None
    try:
        bgr = read_image_file(path, cv2)
    except ImageRefused as e:
        raise UserError(f"--images: {path} is {e}") from None
    return cv2.cvtColor(cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def verify_file(path, images: Optional[Path] = None, device: str = "cpu", record_verdict: bool = True,
                open_backend=None) -> Tuple[Verdict, List[str]]:
    """(verdict, notes) for an engine, an FP32 export or its `.fp16.onnx` form."""
    from anydepth_edge.engines import BackendSpec
    from anydepth_edge.engines import open_backend as default_open

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder: verify takes one model file in it (an .onnx export or a .engine)")
    if not path.is_file():
        raise UserError(f"not found: {path}")
    if path.suffix not in (".onnx", ".engine"):  # e.g. the sidecar or the reference bundle
        raise UserError(f"verify takes the model: an .onnx export or a TensorRT .engine, not {path.name}")
    export, precision = _export_of(path)
    if images is not None and path == export.path:
        raise UserError(f"{path.name} is the FP32 export: --images runs it as the reference, so it would be checked "
                        "against itself. Verify its engine or .fp16.onnx form with --images, or this file without "
                        "--images (against its reference bundle)")
    if images is not None:
        bundle, what = images_bundle(images, export), f"{images} (FP32 ONNX Runtime CPU as reference)"
    else:
        if not export.companion_matches("reference"):
            raise UserError(f"{export.path.name} has no intact reference bundle: re-export it "
                            f"({export.rebuild_command()}), or pass --images DIR")
        bundle, what = Bundle.read(export.companion("reference")), f"the reference bundle of {export.path.name}"
        listed = list(export.reference.get("inputs") or [])
        if bundle.names != listed:  # the sha256 matched, so the sidecar itself was edited or mis-copied
            raise UserError(f"{export.path.name}'s reference bundle holds {bundle.names}, its sidecar lists {listed}: "
                            f"re-export ({export.rebuild_command()})")
    if path.name.endswith(TYPED_FP16_SUFFIX):  # listed by its export's record, trusted by that sha256 (_export_of)
        from anydepth_edge.engines.ort_backend import OrtBackend

        backend = OrtBackend(path, device=device)
    else:
        kind = "tensorrt" if path.suffix == ".engine" else "onnxruntime"
        backend = (open_backend or default_open)(BackendSpec(kind, "cuda" if kind == "tensorrt" else device, str(path),
                                                             allow_unverified=True))
    try:
        verdict = verify_backend(backend, bundle, precision)
    finally:
        backend.close()
    notes = [f"{path.name} against {what}: {'pass' if verdict.passed else 'FAIL'} ({verdict.why})"]
    if path.suffix == ".engine" and record_verdict and images is None:
        record = EngineArtifact.load(path)
        record.verification = {**verdict.to_dict(), "bundle_sha256": export.reference["sha256"]}
        record.write_sidecar()
        notes.append(f"recorded in {path.with_suffix('.json').name}: run and bench "
                     + ("will use it" if verdict.passed else "will not use it"))
    return verdict, notes
