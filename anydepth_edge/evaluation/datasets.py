"""The benchmark data as users have it, read one sample at a time (a robot has little memory):

- NYUv2: `nyu_depth_v2_labeled.mat` (MATLAB v7.3, i.e. HDF5: `images` and `depths`, read with h5py)
  and the official split, `splits.mat` beside it (`testNdxs`: the 654 test images, 1-based; read
  with scipy) or `--split FILE`; `--split all` takes all 1449.
- KITTI: the Eigen test list in the common text form (`<rgb> <depth or None> <focal>` per line, paths
  relative to --data; e.g. BTS's `eigen_test_files_with_gt.txt`) with the projected LiDAR ground
  truth as 16-bit PNGs in 1/256 m, 0 = no reading (the KITTI depth benchmark's encoding).
- A folder: `rgb/NAME.png|jpg` with `depth/NAME.png` (16-bit, times --depth-scale metres, 0 = no
  reading) or `depth/NAME.npy` (float metres).

Every sample is BGR uint8 and depth in metres (0 or NaN: no reading). Python 3.8, no torch.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from anydepth_edge.errors import UserError
from anydepth_edge.images import IMAGE_EXTS, ImageRefused, read_image_file

DATASETS = ("auto", "nyu", "kitti", "folder")
EVAL_EXTRA = "pip install 'anydepth-edge[eval]' (h5py, scipy)"


@dataclass
class Sample:
    name: str
    bgr: np.ndarray
    depth_m: np.ndarray


class Dataset:
    kind = "folder"

    def __init__(self, items: List, limit: Optional[int], skipped: Optional[List[str]] = None):
        self.total = len(items)
        self.items = items[:limit] if limit else items
        self.skipped = list(skipped or [])  # one line per listed image left out, and why

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Sample]:
        for item in self.items:
            yield self.read(item)

    def read(self, item) -> Sample:
        raise NotImplementedError


def _image(path: Path, cv2, flags=None) -> np.ndarray:
    try:
        return read_image_file(path, cv2, flags=flags)
    except ImageRefused as e:
        raise UserError(f"{path}: {e}") from None


class NyuMat(Dataset):
    kind = "nyu"

    def __init__(self, path: Path, split: Optional[str], limit: Optional[int]):
        try:
            import h5py
        except ImportError:
            raise UserError(f"reading NYUv2's .mat needs h5py: {EVAL_EXTRA}") from None
        try:
            self.file = h5py.File(str(path), "r")
            self.images, self.depths = self.file["images"], self.file["depths"]
        except (OSError, KeyError) as e:
            detail = " ".join(str(e).split())[:160]  # h5py's message spans lines
            raise UserError(f"{path}: not NYUv2's labeled .mat (HDF5 with images and depths): {detail}") from None
        count = self.images.shape[0]
        if self.depths.shape[0] != count:
            raise UserError(f"{path}: {count} images but {self.depths.shape[0]} depth maps")
        indices = nyu_split(path, split, count)
        super().__init__(indices, limit)

    def read(self, index: int) -> Sample:
        rgb = np.asarray(self.images[index]).transpose(2, 1, 0)  # MATLAB's column-major (3, W, H)
        depth = np.asarray(self.depths[index], np.float32).T
        return Sample(f"nyu_{index + 1:04d}", np.ascontiguousarray(rgb[..., ::-1]), depth)


def nyu_split(path: Path, split: Optional[str], count: int) -> List[int]:
    """0-based indices of the test images: splits.mat beside the file, --split FILE, or all."""
    if split == "all":
        return list(range(count))
    source = Path(split) if split else path.with_name("splits.mat")
    if not source.is_file():
        raise UserError(f"the NYUv2 test split is in splits.mat (from the NYU Depth V2 page): put it beside {path.name} "
                        "or give --split FILE (or --split all for all images)")
    if source.suffix == ".mat":
        try:
            from scipy.io import loadmat
        except ImportError:
            raise UserError(f"reading splits.mat needs scipy: {EVAL_EXTRA}") from None
        try:
            ones = np.asarray(loadmat(str(source))["testNdxs"]).ravel()
        except (KeyError, ValueError, OSError) as e:
            raise UserError(f"{source}: no testNdxs in it ({e})") from None
    else:
        ones = np.array([int(t) for t in source.read_text().split()])
    if ones.size == 0 or ones.min() < 1 or ones.max() > count:
        raise UserError(f"{source}: test indices must be 1..{count} (1-based, as in splits.mat)")
    return [int(i) - 1 for i in ones]


class KittiEigen(Dataset):
    kind = "kitti"

    def __init__(self, root: Path, split: str, limit: Optional[int], cv2):
        self.root, self.cv2 = root, cv2
        items, self.missing = [], 0
        for n, line in enumerate(Path(split).read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise UserError(f"{split} line {n}: give '<rgb> <depth or None> [focal]'")
            if parts[1] == "None":
                self.missing += 1  # Eigen images without projected ground truth: scored by no one
                continue
            items.append((parts[0], parts[1]))
        if not items:
            raise UserError(f"{split}: no image with ground truth listed")
        super().__init__(items, limit, [f"{self.missing} listed images have no ground truth (None): not scored, "
                                        "as in every KITTI Eigen evaluation"] if self.missing else [])

    def read(self, item: Tuple[str, str]) -> Sample:
        rgb_path, depth_path = self.root / item[0], self.root / item[1]
        depth = _image(depth_path, self.cv2, self.cv2.IMREAD_UNCHANGED)
        if depth.dtype != np.uint16 or depth.ndim != 2:
            raise UserError(f"{depth_path}: KITTI ground truth is a 16-bit single-channel PNG")
        name = "_".join(Path(item[0]).parts[-4:-3] + (Path(item[0]).stem,))
        return Sample(name, _image(rgb_path, self.cv2), depth.astype(np.float32) / 256.0)


class PairFolder(Dataset):
    kind = "folder"

    def __init__(self, root: Path, depth_scale: float, limit: Optional[int], cv2):
        self.root, self.depth_scale, self.cv2 = root, depth_scale, cv2
        items, unpaired = [], []
        for rgb in sorted(p for p in (root / "rgb").iterdir() if p.suffix.lower() in IMAGE_EXTS):
            depth = next((c for c in (root / "depth" / (rgb.stem + ".png"), root / "depth" / (rgb.stem + ".npy"))
                          if c.is_file()), None)
            if depth is None:
                unpaired.append(rgb.name)
            else:
                items.append((rgb, depth))
        if not items:
            raise UserError(f"{root}: no rgb/NAME image with a depth/NAME.png or .npy beside it")
        self.read(items[0])  # a wrong layout or encoding is refused before any model loads
        self.unpaired = len(unpaired)
        skipped = ([f"{len(unpaired)} images without depth/NAME.png or .npy, not scored: "
                    + ", ".join(unpaired[:5]) + (" ..." if len(unpaired) > 5 else "")] if unpaired else [])
        super().__init__(items, limit, skipped)

    def read(self, item: Tuple[Path, Path]) -> Sample:
        rgb, depth_path = item
        if depth_path.suffix == ".npy":
            depth = np.load(str(depth_path), allow_pickle=False).astype(np.float32)
        else:
            raw = _image(depth_path, self.cv2, self.cv2.IMREAD_UNCHANGED)
            if raw.ndim != 2 or raw.dtype != np.uint16:  # an 8-bit one would be a picture of depth, not depth
                raise UserError(f"{depth_path}: depth must be a single-channel 16-bit PNG (or .npy in metres)")
            depth = raw.astype(np.float32) * self.depth_scale
        image = _image(rgb, self.cv2)
        if image.shape[:2] != depth.shape:
            raise UserError(f"{rgb.name}: image {image.shape[1]}x{image.shape[0]} but depth {depth.shape[1]}x{depth.shape[0]}")
        return Sample(rgb.stem, image, depth)


def open_dataset(path: str, kind: str = "auto", split: Optional[str] = None, depth_scale: float = 0.001,
                 limit: Optional[int] = None, cv2=None) -> Dataset:
    root = Path(path)
    if not root.exists():
        raise UserError(f"--data {path}: no such file or folder")
    if kind == "auto":
        kind = ("nyu" if root.suffix == ".mat" else "kitti" if split and root.is_dir() and not (root / "rgb").is_dir()
                else "folder" if (root / "rgb").is_dir() else "")
        if not kind:
            raise UserError(f"--data {path}: give NYUv2's nyu_depth_v2_labeled.mat, a KITTI root with --split "
                            "eigen_test_files_with_gt.txt, or a folder with rgb/ and depth/")
    if kind == "nyu":
        if not root.is_file():
            raise UserError(f"--dataset nyu reads nyu_depth_v2_labeled.mat; {path} is a folder (--dataset folder?)")
        return NyuMat(root, split, limit)
    if kind == "kitti":
        if not split:
            raise UserError("KITTI needs its test list: --split eigen_test_files_with_gt.txt (paths relative to --data)")
        return KittiEigen(root, split, limit, cv2)
    if not (root / "rgb").is_dir():
        raise UserError(f"--data {path}: a folder dataset has rgb/ and depth/ subfolders")
    return PairFolder(root, depth_scale, limit, cv2)
