"""`run --foxglove`: the sink served over the real foxglove-sdk server on loopback, read by a client
that speaks the Foxglove WebSocket protocol itself (websockets + protobuf from the advertised
schemas), so what is checked is what the Foxglove app would receive."""

import base64
import json
import struct
import time
import types

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from test_runtime import make_video, tiny_onnx  # noqa: F401 (a fixture)

pytest.importorskip("foxglove")
websockets = pytest.importorskip("websockets.sync.client")
cv2 = pytest.importorskip("cv2")

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

from anydepth_edge.errors import UserError  # noqa: E402
from anydepth_edge.runtime.camera import CameraModel, Intrinsics  # noqa: E402
from anydepth_edge.runtime.foxglove_sink import TOPICS, FoxgloveSink  # noqa: E402
from anydepth_edge.runtime.sinks import FrameResult  # noqa: E402


class FoxgloveClient:
    """Subscribes to every advertised channel; decodes each message with its channel's schema."""

    def __init__(self, port: int, topics: int = len(TOPICS)):
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        self.ws = websockets.connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1"])
        self.channels = {}
        deadline = time.monotonic() + 10
        while len(self.channels) < topics and time.monotonic() < deadline:
            msg = json.loads(self.ws.recv(timeout=10))
            if msg["op"] == "advertise":
                self.channels.update({c["id"]: c for c in msg["channels"]})
        self.classes, self.topic_of = {}, {}
        for sub, (cid, c) in enumerate(sorted(self.channels.items()), start=1):
            assert c["encoding"] == "protobuf" and c["schemaEncoding"] == "protobuf"
            pool = descriptor_pool.DescriptorPool()
            for fd in descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(c["schema"])).file:
                pool.Add(fd)
            self.classes[sub] = message_factory.GetMessageClass(pool.FindMessageTypeByName(c["schemaName"]))
            self.topic_of[sub] = c["topic"]
        self.ws.send(json.dumps({"op": "subscribe",
                                 "subscriptions": [{"id": sub, "channelId": cid}
                                                   for sub, (cid, _) in enumerate(sorted(self.channels.items()), start=1)]}))
        time.sleep(0.3)  # the server registers the subscriptions before the first frame

    def receive(self, count: int):
        """{topic: (log time ns, decoded message)} of the next `count` binary messages."""
        out = {}
        for _ in range(count):
            raw = self.ws.recv(timeout=10)
            assert isinstance(raw, bytes) and raw[0] == 1  # Message Data opcode
            sub, log_ns = struct.unpack("<IQ", raw[1:13])
            out[self.topic_of[sub]] = (log_ns, self.classes[sub].FromString(raw[13:]))
        return out

    def close(self):
        self.ws.close()


def _frame(h=6, w=8):
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 30, 20, 10  # BGR
    return types.SimpleNamespace(t_capture=time.perf_counter(), image=image)


def test_depth_image_calibration_and_cloud_decode_to_the_frames_values():
    intr = Intrinsics.pinhole(8, 6, 10.0, 12.0, 3.5, 2.5)
    sink = FoxgloveSink("0", CameraModel(intr), cv2, frame_id="front", points_step=2)
    assert sink.host == "127.0.0.1" and sink.port > 0  # loopback unless asked
    client = FoxgloveClient(sink.port)
    try:
        assert {c["topic"] for c in client.channels.values()} == set(TOPICS.values())
        depth = (np.arange(48, dtype=np.float32).reshape(6, 8) / 10 + 1)
        depth[0, 2] = np.nan  # no reading there: no point
        frame = _frame()
        sink.write(FrameResult(frame, depth[::2, ::2], depth, None))
        got = client.receive(4)
    finally:
        client.close()
        line = sink.close()
    assert line.startswith("Foxglove: 1 frames served at ws://127.0.0.1:")
    log_ns, img = got[TOPICS["depth"]]
    assert (img.width, img.height, img.encoding, img.step, img.frame_id) == (8, 6, "32FC1", 32, "front")
    assert np.array_equal(np.frombuffer(img.data, "<f4").reshape(6, 8), depth, equal_nan=True)
    assert abs(log_ns - time.time_ns()) < 60e9 and img.timestamp.seconds == log_ns // 10**9 and img.timestamp.nanos == log_ns % 10**9  # the capture time
    _, jpg = got[TOPICS["image"]]
    decoded = cv2.imdecode(np.frombuffer(jpg.data, np.uint8), cv2.IMREAD_COLOR)
    assert jpg.format == "jpeg" and decoded.shape == (6, 8, 3) and np.abs(decoded.astype(int) - (30, 20, 10)).max() < 6
    _, cal = got[TOPICS["calibration"]]
    assert (cal.width, cal.height) == (8, 6) and list(cal.K) == [10, 0, 3.5, 0, 12, 2.5, 0, 0, 1]
    _, cloud = got[TOPICS["points"]]
    assert cloud.point_stride == 16 and [f.name for f in cloud.fields] == ["x", "y", "z", "red", "green", "blue", "alpha"]
    rows = np.frombuffer(cloud.data, dtype=[("xyz", "<f4", 3), ("rgba", "u1", 4)])
    # every 2nd pixel of every 2nd row, the NaN one left out: 3 x 4 - 1 points, back-projected by hand
    want = [((u - 3.5) * depth[v, u] / 10, (v - 2.5) * depth[v, u] / 12, depth[v, u])
            for v in range(0, 6, 2) for u in range(0, 8, 2) if np.isfinite(depth[v, u])]
    assert len(rows) == 11 and np.allclose(rows["xyz"], want, atol=1e-6)
    assert (rows["rgba"] == (10, 20, 30, 255)).all()  # RGBA, from the BGR frame


def test_without_intrinsics_depth_and_image_only():
    warned, said = [], []
    sink = FoxgloveSink("127.0.0.1:0", None, cv2, warn=warned.append, notify=said.append)
    assert f"ws://127.0.0.1:{sink.port}" in said[0] and "ssh -L" in said[0]
    client = FoxgloveClient(sink.port)
    try:
        d = np.ones((6, 8), np.float32)
        sink.write(FrameResult(_frame(), d, d, None))
        sink.write(FrameResult(_frame(), d * 2, d * 2, None))
        got = client.receive(4)  # two frames of depth + image, no calibration or cloud
    finally:
        client.close()
        sink.close()
    assert set(got) == {TOPICS["depth"], TOPICS["image"]}
    assert len(warned) == 1 and "--camera-info" in warned[0]  # said once, not per frame
    assert np.frombuffer(got[TOPICS["depth"]][1].data, "<f4").max() == 2.0  # the later frame


def test_every_interface_prints_addresses_a_laptop_can_open():
    import socket

    from anydepth_edge.runtime.server import host_addresses

    said = []
    sink = FoxgloveSink("0.0.0.0:0", None, cv2, notify=said.append)
    sink.close()
    assert "ws://0.0.0.0" not in said[0] and f"ws://{socket.gethostname().lower()}:{sink.port}" in said[0], said
    assert all(f"ws://{a}:{sink.port}" in said[0] for a in host_addresses())


def test_a_busy_port_is_one_clear_error():
    first = FoxgloveSink("0", None, cv2)
    try:
        with pytest.raises(UserError, match=rf"--foxglove 127.0.0.1:{first.port}: cannot serve there"):
            FoxgloveSink(f"127.0.0.1:{first.port}", None, cv2)
    finally:
        first.close()
    with pytest.raises(UserError, match="give PORT or HOST:PORT"):
        FoxgloveSink("nonsense", None, cv2)


def test_run_with_foxglove_serves_and_says_where(tmp_path, tiny_onnx):
    clip = make_video(tmp_path / "c.mp4", frames=3)
    proc = run_cli("run", "--source", clip, "--model", tiny_onnx, "--pace", "none", "--foxglove", "0",
                   "--camera-info", _calibration_yaml(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Foxglove: in the Foxglove app, open connection ws://127.0.0.1:" in proc.stderr
    assert "Foxglove: 3 frames served at ws://127.0.0.1:" in proc.stdout
    bad = run_cli("run", "--source", clip, "--model", tiny_onnx, "--foxglove", "x:y")
    assert_one_line_error(bad, "--foxglove x:y")
    with_ros = run_cli("run", "--source", clip, "--model", tiny_onnx, "--foxglove", "0", "--record-bag", tmp_path / "b.mcap")
    assert_one_line_error(with_ros, "foxglove_bridge")


def _calibration_yaml(tmp_path):
    path = tmp_path / "cam.yaml"
    path.write_text("image_width: 64\nimage_height: 48\ncamera_name: c\n"
                    "camera_matrix: {rows: 3, cols: 3, data: [50, 0, 31.5, 0, 50, 23.5, 0, 0, 1]}\n"
                    "distortion_model: plumb_bob\n"
                    "distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n"
                    "rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n"
                    "projection_matrix: {rows: 3, cols: 4, data: [50, 0, 31.5, 0, 0, 50, 23.5, 0, 0, 0, 1, 0]}\n")
    return path


def test_serve_and_foxglove_on_one_port_is_said_as_such(tmp_path):
    """The trial got 'cannot listen (Address already in use)' for --serve 8080 --foxglove 8080: its own clash."""
    proc = run_cli("run", "--source", tmp_path, "--serve", "8080", "--foxglove", "8080")
    assert_one_line_error(proc, "--serve and --foxglove both ask for port 8080")
