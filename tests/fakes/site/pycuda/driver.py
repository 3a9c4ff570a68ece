"""pycuda.driver's surface that PyCudaApi uses, on the fake device: DeviceAllocation, page-locked
arrays whose `.base` is a HostAllocation with `free()`, Stream, async copies, mem_get_info, Context."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from fakes.fake_device import DEVICE  # noqa: E402

FREED_HOST = []


class DeviceAllocation:
    def __init__(self, ptr):
        self.ptr = ptr

    def __int__(self):
        return self.ptr

    __index__ = __int__

    def free(self):
        DEVICE.free(self.ptr)


def mem_alloc(nbytes):
    return DeviceAllocation(DEVICE.malloc(int(nbytes)))


class HostAllocation(bytearray):
    def free(self):
        FREED_HOST.append(id(self))


def pagelocked_empty(shape, dtype):
    dtype = np.dtype(dtype)
    return np.ndarray(shape, dtype, buffer=HostAllocation(int(np.prod(shape)) * dtype.itemsize))


class Stream:
    def __init__(self):
        self.handle = DEVICE.new_stream()

    def synchronize(self):
        DEVICE.synchronize(self.handle)


def memcpy_htod_async(dest, src, stream=None):
    DEVICE.copy_in(int(dest), src, stream.handle)


def memcpy_dtoh_async(dest, src, stream=None):
    DEVICE.copy_out(dest, int(src), stream.handle)


def mem_get_info():
    return DEVICE.total - DEVICE.used(), DEVICE.total


class _Device:
    def name(self):
        return DEVICE.name

    def compute_capability(self):
        return DEVICE.cc


class Context:
    @staticmethod
    def get_device():
        return _Device()
