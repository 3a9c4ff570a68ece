"""Camera stand-ins for the runtime tests: a recording fake of pyrealsense2's surface, and live
sources that unplug, never deliver, flood frames or carry a depth stream."""

import threading
import time

import numpy as np

from anydepth_edge.runtime.sources import FrameSource, SourceLost, SourceSpec


# Colour modes of a D435's RGB sensor (a subset): a request outside them fails at start, as
# pyrealsense2's "Couldn't resolve requests" does.
REALSENSE_MODES = {(640, 480, 30), (1280, 720, 30), (848, 480, 30), (424, 240, 30), (640, 480, 15)}


class FakeRealSense:
    """Recording fake of the pyrealsense2 surface the source uses. Frames come at the resolution the
    config enabled (nothing enabled: pyrealsense2's default 1280x720 colour), an unsupported mode is
    refused at start, and `pipeline.get_active_profile()` answers the colour stream's intrinsics
    for that resolution (a 69 x 42 degree lens, principal point off centre as on a real unit)."""

    def __init__(self, frames=3, fail_live=False):
        self.calls = []
        self.left = frames
        self.fail_live = fail_live
        self.enabled = {}
        self.active = None
        fake = self
        self.stream = type("S", (), {"color": "color", "depth": "depth"})
        self.format = type("F", (), {"bgr8": "bgr8", "z16": "z16"})

        class Config:
            def enable_stream(self, stream, width, height, fmt, fps):
                fake.calls.append(("enable_stream", stream, width, height, fmt, fps))
                fake.enabled[stream] = (width, height, fps)

            def enable_device(self, serial):
                fake.calls.append(("enable_device", serial))

            def enable_device_from_file(self, path, repeat_playback=True):
                fake.calls.append(("from_file", path, repeat_playback))

        class Frame:
            def __init__(self, data):
                self.data = data

            def get_data(self):
                return self.data

            def __bool__(self):
                return True

        class Frames:
            def get_color_frame(self):
                w, h, _ = fake.active["color"]
                return Frame(np.full((h, w, 3), 100, np.uint8))

            def get_depth_frame(self):
                w, h, _ = fake.active.get("depth", fake.active["color"])
                return Frame(np.full((h, w), 1500, np.uint16))

        class Intrinsics:
            def __init__(self, width, height):
                self.width, self.height = width, height
                self.fx, self.fy = width / 1.375, height / 0.768  # tan(34.5 deg) * 2, tan(21 deg) * 2
                self.ppx, self.ppy = width / 2 + 3.5, height / 2 - 2.25
                self.model, self.coeffs = "distortion.inverse_brown_conrady", [0.0] * 5

        class VideoProfile:
            def __init__(self, mode):
                self.mode = mode

            def as_video_stream_profile(self):
                return self

            def get_intrinsics(self):
                return Intrinsics(*self.mode[:2])

        class Pipeline:
            def start(self, config):
                fake.calls.append(("start",))
                modes = dict(fake.enabled) or {"color": (1280, 720, 30)}
                for stream, mode in modes.items():
                    if mode not in REALSENSE_MODES:
                        raise RuntimeError("Couldn't resolve requests")
                fake.active = modes
                return Profile()

            def get_active_profile(self):
                if fake.active is None:
                    raise RuntimeError("get_active_profile() can only be called between a start() and a following stop()")
                return Profile()

            def wait_for_frames(self, timeout):
                if fake.left <= 0:
                    raise RuntimeError("Frame didn't arrive within 5000")
                fake.left -= 1
                return Frames()

            def stop(self):
                fake.calls.append(("stop",))
                fake.active = None

        class Device:
            def first_depth_sensor(self):
                return type("D", (), {"get_depth_scale": lambda s: 0.001})()

            def as_playback(self):
                return type("P", (), {"set_real_time": lambda s, v: fake.calls.append(("real_time", v))})()

        class Profile:
            def get_device(self):
                return Device()

            def get_stream(self, stream):
                if stream not in fake.active:
                    raise RuntimeError("Profile does not contain the requested stream")
                return VideoProfile(fake.active[stream])

        class Align:
            def __init__(self, to):
                fake.calls.append(("align", to))

            def process(self, frames):
                return frames

        self.config, self.pipeline, self.align = Config, Pipeline, Align


class FlakyCamera(FrameSource):
    """A live camera that delivers `first` frames, is unplugged for `outage` open attempts, then
    (if `recover`) comes back and delivers `second` frames, then stops for good."""

    def __init__(self, first=5, outage=3, recover=True, second=5):
        self.spec = SourceSpec("v4l2", "/dev/video-fake", {})
        self.first, self.outage, self.recover, self.second = first, outage, recover, second
        self.phase, self.sent, self.opens, self.released = 0, 0, 0, 0

    def open(self):
        self.opens += 1
        if self.phase == 3:
            raise SourceLost("no such device")
        if self.phase == 1:
            if self.outage > 0 or not self.recover:
                self.outage -= 1
                raise SourceLost("no such device")
            self.phase, self.sent = 2, 0

    def read(self):
        time.sleep(0.005)
        limit = self.first if self.phase == 0 else self.second
        if self.phase in (0, 2) and self.sent < limit:
            self.sent += 1
            return np.full((30, 40, 3), 50, np.uint8), None
        if self.phase == 0:
            self.phase = 1
            raise SourceLost("VIDIOC_DQBUF: No such device")
        self.phase = 3
        raise SourceLost("gone for good")

    def release(self):
        self.released += 1


class SilentCamera(FrameSource):
    """Opens fine, never delivers a frame (a device node without a working sensor)."""

    def __init__(self):
        self.spec = SourceSpec("v4l2", "/dev/video-silent", {})
        self.opens = 0

    def open(self):
        self.opens += 1

    def read(self):
        time.sleep(0.01)
        raise SourceLost("select() timeout")

    def release(self):
        pass


class FastCamera(FrameSource):
    def __init__(self, n=200):
        self.spec = SourceSpec("v4l2", "/dev/video-fast", {})
        self.n, self.i = n, 0

    def open(self):
        pass

    def read(self):
        if self.i >= self.n:
            raise SourceLost("done")
        self.i += 1
        time.sleep(0.002)
        return np.full((30, 40, 3), self.i % 255, np.uint8), None

    def release(self):
        pass


class DepthCamera(FastCamera):
    """A RealSense-like live source whose depth is an affine function of the image brightness."""

    def __init__(self):
        super().__init__(n=20)
        self.spec = SourceSpec("realsense", "", {"depth": True})

    def read(self):
        frame, _ = super().read()
        frame = np.tile(np.linspace(20, 230, 40, dtype=np.uint8)[None, :, None], (30, 1, 3))
        return frame, np.tile(np.linspace(0.5, 4.0, 40, dtype=np.float32)[None, :], (30, 1))



class RtspCamera(FastCamera):
    """An RTSP camera with credentials in its URL that delivers a few frames, then fails with a
    message quoting the URL (as FFmpeg's do)."""

    URL = "rtsp://admin:hunter2@cam.local:554/live?token=s3cret"

    def __init__(self):
        super().__init__(n=3)
        self.spec = SourceSpec("rtsp", self.URL, {})

    def open(self):
        if self.i >= self.n:
            raise SourceLost(f"{self.URL}: 401 Unauthorized")

    def read(self):
        if self.i >= self.n:
            raise SourceLost(f"{self.URL}: stream ended")
        return super().read()


class GatedCamera(FrameSource):
    """A live camera that delivers a frame only when the test lets it: frame i is all pixels i."""

    def __init__(self, frames: int):
        self.spec = SourceSpec("v4l2", "/dev/video-gated", {})
        self.frames, self.produced, self.reads, self.ended = frames, 0, 0, False
        self.gate, self.cond = threading.Semaphore(1), threading.Condition()

    def open(self):
        pass

    def read(self):
        with self.cond:
            self.reads += 1
            self.cond.notify_all()
        if not self.gate.acquire(timeout=2) or self.produced >= self.frames:
            with self.cond:
                self.ended = True
                self.cond.notify_all()
            raise SourceLost("done")
        self.produced += 1
        return np.full((30, 40, 3), self.produced, np.uint8), None

    def release_and_wait(self, n: int):
        """Let `n` frames out and return once the capture thread is back in read() (so all n are queued)."""
        with self.cond:
            target = self.reads + n
            for _ in range(n):
                self.gate.release()
            # past the last frame the camera ends (SourceLost) instead of being read again
            assert self.cond.wait_for(lambda: self.reads >= target or self.ended, timeout=5)

    def release(self):
        pass
