"""Device buffers, pinned host buffers, streams and CUDA graphs through cuda-python or pycuda.

JetPack images ship one or the other; the TensorRT runtime only needs the few calls below, so
both sit behind one small interface. cuda-python is preferred (it also does CUDA graphs).
Torch-free, Python 3.8.
"""

import ctypes
from typing import Any, Optional, Tuple

import numpy as np

from anydepth_edge.errors import HardwareMissing


class CudaApi:
    """The calls the TensorRT backend makes. Pointers and streams are plain ints / handles."""

    name = "none"
    supports_graphs = False

    def malloc(self, nbytes: int) -> int: ...
    def free(self, ptr: int) -> None: ...
    def host_empty(self, shape, dtype) -> np.ndarray: ...  # page-locked
    def free_host(self, array: np.ndarray) -> None: ...
    def stream(self) -> Any: ...
    def destroy_stream(self, stream) -> None: ...
    def stream_handle(self, stream) -> int: ...
    def htod_async(self, dst: int, src: np.ndarray, stream) -> None: ...
    def dtoh_async(self, dst: np.ndarray, src: int, stream) -> None: ...
    def synchronize(self, stream) -> None: ...
    def mem_get_info(self) -> Tuple[int, int]: ...
    def device_name(self) -> str: ...
    def compute_capability(self) -> Tuple[int, int]: ...
    def begin_capture(self, stream) -> None: ...
    def end_capture(self, stream) -> Any: ...
    def launch_graph(self, graph_exec, stream) -> None: ...
    def destroy_graph(self, graph_exec) -> None: ...
    def close(self) -> None: ...


class CudaPythonApi(CudaApi):
    name = "cuda-python"
    supports_graphs = True

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart  # older cuda-python (JetPack 5/6 wheels)
        self.rt = cudart
        self._host_blocks = {}  # numpy buffer address -> cudaMallocHost pointer
        self._check(self.rt.cudaFree(0))  # create the primary context now, not mid-inference

    def _check(self, result):
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            name = self.rt.cudaGetErrorName(err)[1]
            raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
        if isinstance(result, tuple):
            return result[1] if len(result) == 2 else result[1:]
        return None

    def malloc(self, nbytes):
        return int(self._check(self.rt.cudaMalloc(nbytes)))

    def free(self, ptr):
        self._check(self.rt.cudaFree(ptr))

    def host_empty(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = int(self._check(self.rt.cudaMallocHost(nbytes)))
        buf = (ctypes.c_byte * nbytes).from_address(ptr)
        array = np.frombuffer(buf, dtype=dtype).reshape(shape)
        self._host_blocks[array.ctypes.data] = ptr
        return array

    def free_host(self, array):
        ptr = self._host_blocks.pop(array.ctypes.data, None)
        if ptr is not None:
            self._check(self.rt.cudaFreeHost(ptr))

    def stream(self):
        return self._check(self.rt.cudaStreamCreate())

    def destroy_stream(self, stream):
        self._check(self.rt.cudaStreamDestroy(stream))

    def stream_handle(self, stream):
        return int(stream)

    def htod_async(self, dst, src, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream))

    def dtoh_async(self, dst, src, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream))

    def synchronize(self, stream):
        self._check(self.rt.cudaStreamSynchronize(stream))

    def mem_get_info(self):
        free, total = self._check(self.rt.cudaMemGetInfo())
        return int(free), int(total)

    def _props(self):
        device = self._check(self.rt.cudaGetDevice())
        return self._check(self.rt.cudaGetDeviceProperties(device))

    def device_name(self):
        name = self._props().name
        return (name.decode() if isinstance(name, bytes) else str(name)).split("\x00")[0].strip()

    def compute_capability(self):
        p = self._props()
        return int(p.major), int(p.minor)

    def begin_capture(self, stream):
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        self._check(self.rt.cudaStreamBeginCapture(stream, mode))

    def end_capture(self, stream):
        graph = self._check(self.rt.cudaStreamEndCapture(stream))
        return self._check(self.rt.cudaGraphInstantiate(graph, 0))

    def launch_graph(self, graph_exec, stream):
        self._check(self.rt.cudaGraphLaunch(graph_exec, stream))

    def destroy_graph(self, graph_exec):
        self._check(self.rt.cudaGraphExecDestroy(graph_exec))

    def close(self):
        for ptr in self._host_blocks.values():
            self.rt.cudaFreeHost(ptr)
        self._host_blocks = {}


class PyCudaApi(CudaApi):
    name = "pycuda"
    supports_graphs = False  # pycuda's graph API differs across versions; plain enqueue is used

    def __init__(self):
        import pycuda.autoinit  # noqa: F401  (creates the context)
        import pycuda.driver as cuda

        self.cuda = cuda
        self._allocs = {}
        self._host = {}  # numpy buffer address -> the page-locked array (its .base frees it)

    def malloc(self, nbytes):
        alloc = self.cuda.mem_alloc(nbytes)
        self._allocs[int(alloc)] = alloc  # keep the DeviceAllocation alive
        return int(alloc)

    def free(self, ptr):
        alloc = self._allocs.pop(int(ptr), None)
        if alloc is not None:
            alloc.free()

    def host_empty(self, shape, dtype):
        array = self.cuda.pagelocked_empty(shape, dtype)
        self._host[array.ctypes.data] = array
        return array

    def free_host(self, array):
        owner = self._host.pop(array.ctypes.data, None)
        if owner is not None and hasattr(owner.base, "free"):
            owner.base.free()  # the HostAllocation; without it the memory lives until garbage collection

    def stream(self):
        return self.cuda.Stream()

    def destroy_stream(self, stream):
        pass  # pycuda destroys a Stream when its last reference goes

    def stream_handle(self, stream):
        return int(stream.handle)

    def htod_async(self, dst, src, stream):
        self.cuda.memcpy_htod_async(dst, src, stream)

    def dtoh_async(self, dst, src, stream):
        self.cuda.memcpy_dtoh_async(dst, src, stream)

    def synchronize(self, stream):
        stream.synchronize()

    def mem_get_info(self):
        free, total = self.cuda.mem_get_info()
        return int(free), int(total)

    def device_name(self):
        return self.cuda.Context.get_device().name()

    def compute_capability(self):
        return tuple(self.cuda.Context.get_device().compute_capability())

    def destroy_graph(self, graph_exec):
        pass

    def close(self):
        for alloc in list(self._allocs.values()):
            alloc.free()
        self._allocs = {}
        for array in list(self._host.values()):
            self.free_host(array)


def load_cuda_api(prefer: Optional[str] = None) -> CudaApi:
    """cuda-python if importable, else pycuda; `prefer` ('cuda-python' / 'pycuda') forces one."""
    errors = []
    order = [cls for cls in (CudaPythonApi, PyCudaApi) if prefer in (None, cls.name)]
    for cls in order:
        try:
            return cls()
        except ImportError as e:
            errors.append(f"{cls.name}: not installed ({e.name or e})")
        except Exception as e:  # a driver without a GPU, a broken context
            errors.append(f"{cls.name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    raise HardwareMissing(
        "no CUDA buffer library: install cuda-python (pip install cuda-python) or pycuda "
        "(JetPack: apt install python3-pycuda) [" + "; ".join(errors) + "]"
    )


def cuda_api_available() -> Optional[str]:
    """The name of the importable CUDA library, without creating a context."""
    import importlib.util

    for module, name in (("cuda", "cuda-python"), ("pycuda", "pycuda")):
        try:
            if importlib.util.find_spec(module) is not None:
                return name
        except (ImportError, ValueError):
            continue
    return None
