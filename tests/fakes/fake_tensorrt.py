"""A recording fake of the TensorRT Python API surface we use, per version (8.5 / 8.6 / 10.x).

Version differences it reproduces (from the TensorRT API docs): `builder_optimization_level`
exists from 8.6 (setting it on 8.5 raises AttributeError), `IProgressMonitor` from 10.0,
`device_memory_size_v2` from 10.0, EXPLICIT_BATCH matters on 8.x. The ONNX parser makes one layer
per ONNX node (named after it) and one constant layer per initializer, with float / integer output
types from ONNX shape inference, so precision pins are checked against the real exported graph;
the engine's inputs and outputs are the ONNX graph's. Engines run on a `fake_device.FakeDevice`.
Every call that matters is appended to `trt.calls`. The config's defaults differ from what the
toolkit sets (optimisation level 5, not TensorRT's 3), so a missing call shows.
"""

import json
from types import SimpleNamespace

from fakes.fake_device import DEVICE, FakeCuda  # noqa: F401  (FakeCuda: re-exported for the tests)

ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"
# The fake's own state (recordings, the graph it carries), not TensorRT API: tests/test_trt_bindings.py
# checks every other name the fake offers against the real bindings of the version it fakes.
FAKE_INTERNAL = frozenset({
    "calls", "device",  # the module's recording and the fake GPU
    "flags", "strongly_typed", "errors", "layers", "onnx", "fp32_regions", "io",  # Network
    "network", "output_types",  # Layer
    "pools", "cache", "progress_monitor_set",  # Config
    "state", "names", "inputs", "outputs", "addresses", "engine", "data", "logger",  # Engine, Context, caches
})
FAKE_DEFAULT_OPT_LEVEL = 5  # not TensorRT's 3: a builder that forgets to set it shows


class DType:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"DataType.{self.name.upper()}"


def make_fake_tensorrt(version="10.3.0", fail_obey=False, oom=False, parse_error=None, device=None):
    major, minor = (int(p) for p in version.split(".")[:2])
    calls = []
    device = device or DEVICE
    trt = SimpleNamespace(__version__=version, calls=calls, device=device)
    # TensorRT's DataType names (trt.float32 is DataType.FLOAT); no `nptype`: the toolkit maps them itself
    trt.float32, trt.float16, trt.int32, trt.bool = (DType(n) for n in ("FLOAT", "HALF", "INT32", "BOOL"))
    if major >= 10:  # INT64 tensors are TensorRT 10's
        trt.int64 = DType("INT64")

    class Severity:
        def __init__(self, name):
            self.name = name

        def __str__(self):
            return f"Severity.{self.name}"

    class ILogger:
        ERROR, INTERNAL_ERROR, WARNING, INFO = (Severity(n) for n in ("ERROR", "INTERNAL_ERROR", "WARNING", "INFO"))

        def __init__(self):
            pass

    trt.ILogger = ILogger
    # EXPLICIT_BATCH: deprecated and ignored on 10.x; STRONGLY_TYPED from 10.0 (bit 1)
    # TensorRT 11 is strongly typed only: no EXPLICIT_BATCH, no FP16 flag, no precision constraints
    trt.NetworkDefinitionCreationFlag = (SimpleNamespace(STRONGLY_TYPED=1) if major >= 11 else
                                         SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1) if major >= 10
                                         else SimpleNamespace(EXPLICIT_BATCH=0))
    trt.BuilderFlag = (SimpleNamespace(TF32="TF32") if major >= 11 else
                       SimpleNamespace(FP16="FP16", OBEY_PRECISION_CONSTRAINTS="OBEY", PREFER_PRECISION_CONSTRAINTS="PREFER",
                                       TF32="TF32"))
    trt.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.ProfilingVerbosity = SimpleNamespace(DETAILED="DETAILED")
    trt.LayerInformationFormat = SimpleNamespace(JSON="JSON")
    trt.LayerType = SimpleNamespace(CONSTANT="CONSTANT", ELEMENTWISE="ELEMENTWISE")  # every non-constant layer: ELEMENTWISE
    trt.TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")

    if major >= 10:
        class IProgressMonitor:
            def __init__(self):
                pass

        trt.IProgressMonitor = IProgressMonitor

    class Tensor:
        def __init__(self, name, dtype):
            self.name, self.dtype = name, dtype

    class Layer:  # (the weak-typing controls are added below for TensorRT < 11)
        def __init__(self, name, ltype, inputs, outputs, network):
            self.name, self.type = name, ltype
            self._inputs, self._outputs = inputs, outputs
            self._precision = None
            self.output_types = {}
            self.network = network

        @property
        def precision(self):
            return self._precision

        @precision.setter
        def precision(self, value):
            # TensorRT: "setting layer precision is not allowed on a strongly typed network"
            if self.network.strongly_typed:
                self.network.errors.append(f"layer {self.name}: precision set on a strongly typed network")
            self._precision = value

        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))

        def get_input(self, i):
            return self._inputs[i]

        def get_output(self, i):
            return self._outputs[i]

        def set_output_type(self, i, dtype):
            if self.network.strongly_typed:
                self.network.errors.append(f"layer {self.name}: output type set on a strongly typed network")
            self.output_types[i] = dtype

    if major >= 11:  # removed: precision comes from the ONNX graph
        del Layer.precision, Layer.set_output_type

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.strongly_typed = major >= 11 or (major >= 10 and bool(flags & (1 << 1)))  # 11: always
            self.errors = []
            self.layers = []
            self.onnx = b""
            self.fp32_regions = None  # a strongly typed FP16 graph's FP32 regions (its metadata)
            self.io = []  # (name, shape, mode) of the graph's inputs and outputs

        num_layers = property(lambda self: len(self.layers))

        def get_layer(self, i):
            return self.layers[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.logger = network, logger
            self.errors = []

        def parse(self, data, path=None):
            import onnx

            calls.append(("parse", path))
            if parse_error:
                self.errors.append(parse_error)
                return False
            model = onnx.load_from_string(data)
            inferred = onnx.shape_inference.infer_shapes(model)
            kinds = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
            tensors = {}

            def tensor(name, elem=None):
                if name not in tensors:
                    elem = elem if elem is not None else kinds.get(name, onnx.TensorProto.FLOAT)
                    dtype = trt.float32 if elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) else trt.int32
                    tensors[name] = Tensor(name, dtype)
                return tensors[name]

            def shape(vi):
                return [d.dim_value for d in vi.type.tensor_type.shape.dim]

            self.network.io = ([(i.name, shape(i), "INPUT") for i in model.graph.input]
                               + [(o.name, shape(o), "OUTPUT") for o in model.graph.output])
            self.network.onnx = bytes(data)  # the engine carries its network, as a real one carries weights
            meta = {p.key: p.value for p in model.metadata_props}
            if "anydepth.fp32_regions" in meta:
                self.network.fp32_regions = meta["anydepth.fp32_regions"].split(",")
            for init in model.graph.initializer:
                self.network.layers.append(Layer(init.name, trt.LayerType.CONSTANT, [], [tensor(init.name, init.data_type)],
                                                 self.network))
            for node in model.graph.node:
                self.network.layers.append(Layer(node.name, trt.LayerType.ELEMENTWISE, [tensor(n) for n in node.input if n],
                                                 [tensor(n) for n in node.output], self.network))
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    trt.OnnxParser = OnnxParser

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return self.data + b"+tuned"

    base_config_attrs = ["flags", "pools", "profiling_verbosity", "cache", "progress_monitor_set", "_progress"]

    class Config:
        __slots__ = base_config_attrs + (["builder_optimization_level"] if (major, minor) >= (8, 6) else [])

        def __init__(self):
            self.flags = {"TF32"}  # on by default, as in TensorRT
            self.pools = {}
            self.profiling_verbosity = None
            self.cache = None
            self._progress = None
            if (major, minor) >= (8, 6):
                self.builder_optimization_level = FAKE_DEFAULT_OPT_LEVEL

        def set_memory_pool_limit(self, pool, size):
            calls.append(("set_memory_pool_limit", pool, size))
            self.pools[pool] = size

        def set_flag(self, flag):
            calls.append(("set_flag", flag))
            self.flags.add(flag)

        def clear_flag(self, flag):
            calls.append(("clear_flag", flag))
            self.flags.discard(flag)

        def create_timing_cache(self, data):
            calls.append(("create_timing_cache", bytes(data)))
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

        @property
        def progress_monitor(self):
            return self._progress

        @progress_monitor.setter
        def progress_monitor(self, monitor):
            if major < 10:
                raise AttributeError("progress_monitor is TensorRT 10+")
            calls.append(("progress_monitor", monitor))
            self._progress = monitor

    if major < 10:  # IProgressMonitor and the config's slot for it are TensorRT 10's
        del Config.progress_monitor

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            state = {
                "flags": sorted(config.flags), "pools": config.pools,
                "opt_level": getattr(config, "builder_optimization_level", None),
                "fp32_layers": sorted(layer.name for layer in network.layers if layer._precision is trt.float32),
                "network_flags": network.flags, "io": network.io, "strongly_typed": network.strongly_typed,
                "fp32_regions": network.fp32_regions,
            }
            calls.append(("build", state))
            if config._progress is not None:
                config._progress.phase_start("Building engine", None, 3)
                config._progress.step_complete("Building engine", 0)
                config._progress.phase_finish("Building engine")
            self.logger.log(ILogger.INFO, "[MemUsageChange] Init builder kernel library: CPU +0, GPU +12, now: CPU 200, GPU 900 (MiB)")
            if oom:
                self.logger.log(ILogger.ERROR, "1: [defaultAllocator.cpp::allocate::20] Error Code 1: Cuda Runtime (out of memory)")
                return None
            if fail_obey and "OBEY" in config.flags:
                self.logger.log(ILogger.ERROR, "no implementation obeys reformatting-free rules")
                return None
            refused = network.errors + [f"BuilderFlag.{f} on a strongly typed network" for f in sorted(config.flags)
                                        if network.strongly_typed and f in ("FP16", "OBEY", "PREFER")]
            if refused:  # what TensorRT does with precision controls on a strongly typed network
                self.logger.log(ILogger.ERROR, "4: API Usage Error (" + refused[0] + ")")
                return None
            return ENGINE_MAGIC + json.dumps(state).encode() + b"\n" + network.onnx

    trt.Builder = Builder

    class Inspector:
        def __init__(self, engine):
            self.engine = engine

        def get_engine_information(self, fmt):
            return json.dumps({"Layers": [{"Name": n, "Precision": "FP32"} for n in self.engine.state["fp32_layers"]]})

    class Context:
        def __init__(self, engine):
            self.engine = engine
            self.addresses = {}

        def set_tensor_address(self, name, ptr):
            calls.append(("set_tensor_address", name, ptr))
            self.addresses[name] = ptr

        def execute_async_v3(self, stream_handle):
            calls.append(("execute_async_v3", stream_handle))
            (inp,), (out,) = self.engine.inputs, self.engine.outputs
            dev = trt.device
            dev.enqueue(stream_handle, lambda: dev.run_engine(self.engine.state, self.engine.onnx, self.addresses[inp],
                                                              self.addresses[out]))
            return True

    class Engine:
        def __init__(self, state, onnx=b""):
            self.state, self.onnx = state, onnx
            self.io = {name: (tuple(shape), mode) for name, shape, mode in state["io"]}
            self.names = list(self.io)
            self.inputs = [n for n in self.names if self.io[n][1] == "INPUT"]
            self.outputs = [n for n in self.names if self.io[n][1] == "OUTPUT"]
            if major >= 10:
                self.device_memory_size_v2 = 123 << 20
            else:
                self.device_memory_size = 123 << 20

        num_io_tensors = property(lambda self: len(self.names))

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return getattr(trt.TensorIOMode, self.io[name][1])

        def get_tensor_shape(self, name):
            return self.io[name][0]

        def get_tensor_dtype(self, name):
            return trt.float32

        def create_execution_context(self):
            return Context(self)

        def create_engine_inspector(self):
            return Inspector(self)

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            calls.append(("deserialize", len(data)))
            if not data.startswith(ENGINE_MAGIC):
                self.logger.log(ILogger.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization (Magic tag does not match)")
                return None
            state, _, onnx = data[len(ENGINE_MAGIC):].partition(b"\n")
            return Engine(json.loads(state), onnx)

    trt.Runtime = Runtime
    return trt
