"""CUDA paths (run where a GPU is lent; skipped elsewhere): the PyTorch CUDA backend in FP32 / FP16,
with and without CUDA graphs, and the cuda-python buffer layer the TensorRT runtime uses."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]

from anydepth_edge.engines.torch_backend import TorchBackend  # noqa: E402


def _input(res=(64, 64)):
    from anydepth_edge.model_input import load_sample_image, normalise

    return normalise(load_sample_image(res))


@pytest.mark.parametrize("decoder", ["sdt", "dpt"])
def test_cuda_fp32_and_fp16_agree_with_cpu(tiny_model, decoder):
    x = _input()
    ref = TorchBackend(tiny_model(decoder), (64, 64)).infer(x).copy()
    fp32 = TorchBackend(tiny_model(decoder), (64, 64), device="cuda").infer(x).copy()
    fp16 = TorchBackend(tiny_model(decoder), (64, 64), device="cuda", precision="fp16").infer(x).copy()
    scale = np.abs(ref).max()
    assert np.abs(fp32 - ref).max() / scale < 5e-3  # TF32 convolutions
    assert np.abs(fp16 - ref).max() / scale < 3e-2
    assert fp16.std() > 0.01


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_replay_matches_eager_and_follows_the_input(tiny_model, precision):
    eager = TorchBackend(tiny_model(), (64, 64), device="cuda", precision=precision)
    graph = TorchBackend(tiny_model(), (64, 64), device="cuda", precision=precision, cuda_graph=True)
    assert graph.graph is not None and graph.describe()["cuda_graph"]
    x1, x2 = _input(), np.flip(_input(), axis=3).copy()
    for x in (x1, x2):
        a, b = eager.infer(x).copy(), graph.infer(x).copy()
        assert np.abs(a - b).max() / np.abs(a).max() < 1e-3
    first = graph.infer(x1).copy()  # infer() returns the backend's reused output buffer
    assert not np.allclose(first, graph.infer(x2))
    mem = graph.memory()
    assert mem["max_allocated_bytes"] > sum(p.numel() for p in graph.model.parameters()) * (2 if precision == "fp16" else 4)


def test_cuda_python_buffers_round_trip_and_graph():
    pytest.importorskip("cuda")
    from anydepth_edge.engines.cuda_api import CudaPythonApi

    api = CudaPythonApi()
    free, total = api.mem_get_info()
    assert 0 < free <= total and api.device_name() and api.compute_capability()[0] >= 5
    host_in = api.host_empty((4, 256), np.float32)
    host_out = api.host_empty((4, 256), np.float32)
    host_in[:] = np.arange(1024, dtype=np.float32).reshape(4, 256)
    dev = api.malloc(host_in.nbytes)
    stream = api.stream()
    api.htod_async(dev, host_in, stream)
    api.dtoh_async(host_out, dev, stream)
    api.synchronize(stream)
    assert np.array_equal(host_in, host_out)
    # capture the copy pair as a CUDA graph; replay it on new host data
    api.begin_capture(stream)
    api.htod_async(dev, host_in, stream)
    api.dtoh_async(host_out, dev, stream)
    graph = api.end_capture(stream)
    host_in *= -1
    host_out[:] = 0
    api.launch_graph(graph, stream)
    api.synchronize(stream)
    assert np.array_equal(host_out, host_in)
    api.free(dev)
    api.close()
