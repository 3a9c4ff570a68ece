"""The released weights this toolkit runs: one table (name -> hub file, licence, architecture), and
their download through huggingface_hub's cache.

No weights live in this repository or in any image: a user names them (`--weights dav2-sdt-vitb`)
or gives a local file (`--checkpoint FILE`). The architecture column is what the loader will
recognise from the file's keys; it is shown in `--help` and checked against what loads.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from anydepth_edge.errors import UserError

LICENCE_ANYDEPTH = "CC BY-NC-SA 4.0 (AnyDepth; non-commercial)"
LICENCE_DAV2_BL = "CC BY-NC 4.0 (Depth Anything V2 Base/Large; non-commercial)"
LICENCE_DAV2_S = "Apache-2.0 (Depth Anything V2 Small)"


@dataclass(frozen=True)
class ReleasedWeights:
    name: str
    repo: str
    filename: str
    licence: str
    architecture: str  # what the loader recognises: family, size, decoder
    native_side: int
    output_kind: str  # depth | disparity

    def manual_download(self) -> str:
        return (f"hf download {self.repo} {self.filename} --local-dir weights "
                f"(or https://huggingface.co/{self.repo}/resolve/main/{self.filename}), then --checkpoint weights/{self.filename}")


RELEASED_WEIGHTS: Dict[str, ReleasedWeights] = {w.name: w for w in (
    ReleasedWeights("dav2-sdt-vitb", "AIGeeksGroup/AnyDepth", "dav2_sdt_vitb.pth", LICENCE_ANYDEPTH,
                    "DINOv2 ViT-B/14 + SDT (fusion 128)", 518, "depth"),
    ReleasedWeights("dav2-sdt-vitl", "AIGeeksGroup/AnyDepth", "dav2_sdt_vitl.pth", LICENCE_ANYDEPTH,
                    "DINOv2 ViT-L/14 + SDT", 518, "depth"),
    ReleasedWeights("da3-sdt-vitl", "AIGeeksGroup/AnyDepth", "da3_sdt_vitl.pth", LICENCE_ANYDEPTH,
                    "DINOv2 ViT-L/14 (Depth Anything 3) + SDT (fusion 256, no class token, no detail enhancer)",
                    518, "depth"),
    ReleasedWeights("dav2-vits", "depth-anything/Depth-Anything-V2-Small", "depth_anything_v2_vits.pth",
                    LICENCE_DAV2_S, "DINOv2 ViT-S/14 + Depth Anything V2 DPT", 518, "disparity"),
    ReleasedWeights("dav2-vitb", "depth-anything/Depth-Anything-V2-Base", "depth_anything_v2_vitb.pth",
                    LICENCE_DAV2_BL, "DINOv2 ViT-B/14 + Depth Anything V2 DPT", 518, "disparity"),
    ReleasedWeights("dav2-vitl", "depth-anything/Depth-Anything-V2-Large", "depth_anything_v2_vitl.pth",
                    LICENCE_DAV2_BL, "DINOv2 ViT-L/14 + Depth Anything V2 DPT", 518, "disparity"),
)}

WEIGHTS_HELP = ("Released weights by name, downloaded once into the Hugging Face cache: "
                + ", ".join(f"{w.name} ({w.architecture}; {w.licence.split(' (')[0]})" for w in RELEASED_WEIGHTS.values())
                + ". Or give a local file with --checkpoint.")


def released(name: str) -> ReleasedWeights:
    if name not in RELEASED_WEIGHTS:
        raise UserError(f"unknown weights {name!r}: choose one of {', '.join(RELEASED_WEIGHTS)}")
    return RELEASED_WEIGHTS[name]


def licence_of(checkpoint_path: Optional[str]) -> str:
    """The licence of a checkpoint file when it is one of the released files (by file name), else ''."""
    if not checkpoint_path:
        return ""
    name = Path(checkpoint_path).name
    return next((w.licence for w in RELEASED_WEIGHTS.values() if w.filename == name), "")


def fetch_weights(name: str) -> Path:
    """The local path of released weights, downloaded with progress into huggingface_hub's cache on
    first use. Offline or unreachable: one clear error with the manual download command."""
    weights = released(name)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise UserError(f"--weights needs huggingface_hub (pip install 'anydepth-edge[export]'); or download by hand: "
                        f"{weights.manual_download()}") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    if not offline and not _reachable(os.environ.get("HF_ENDPOINT") or "https://huggingface.co"):
        # at once, instead of the hub client's retries (a dozen log lines and ~25 s) before the same verdict
        raise UserError(f"cannot fetch {name}: the hub is unreachable; download it by hand: {weights.manual_download()}")
    try:
        return Path(hf_hub_download(weights.repo, weights.filename))
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set and it is not in the cache" if offline else "the hub is unreachable"
        raise UserError(f"cannot fetch {name}: {why}; download it by hand: {weights.manual_download()}") from None
    except Exception as e:  # HTTP errors (404, 401, 5xx), connection resets, disk full
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"cannot fetch {name} from {weights.repo}: {first}; download it by hand: "
                        f"{weights.manual_download()}") from None


def _reachable(url: str, timeout_s: float = 5.0) -> bool:
    """Whether a TCP connection to the URL's host opens (no proxy knowledge: a proxied site counts as reachable)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    u = urlparse(url)
    try:
        socket.create_connection((u.hostname or "", u.port or (443 if u.scheme == "https" else 80)), timeout_s).close()
        return True
    except OSError:
        return False


def checkpoint_for(checkpoint: Optional[str], weights: Optional[str]) -> Optional[str]:
    """The checkpoint a job uses: --checkpoint FILE, or --weights NAME fetched; never both."""
    if checkpoint and weights:
        raise UserError("give --checkpoint FILE or --weights NAME, not both")
    return str(fetch_weights(weights)) if weights else checkpoint
