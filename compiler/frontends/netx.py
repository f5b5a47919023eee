"""lava-dl netx frontend: a `.net` HDF5 file straight into the chip-level graph.

lava-dl's slayer exports trained networks as HDF5 (`layer/<i>/...`, read by lava-dl's
`netx.hdf5.Network`). The file already holds the integers Loihi runs, so this frontend builds a
`ChipGraph` directly, with no float round trip, using the mapping netx itself applies when it
builds Lava processes (lava-dl `netx/hdf5.py`, `netx/blocks/process.py`, `netx/utils.py`):

    neuron (type LOIHI or CUBA)  -> Lava LIF: du = iDecay - 1, dv = vDecay, vth = vThMant,
                                    bias_mant = layer bias, bias_exp = 6
    dense_rec weight_rec [n, n]  -> also a projection of the layer onto itself (one step later)
    dense  weight [out, in]      -> dense projection; weights, num_weight_bits and weight_exp from
                                    netx's `optimize_weight_bits` (exact: acc >> -weight_exp
                                    returns the file's integers)
    conv   weight [Cout, Cin/g, kH, kW, 1]
                                 -> conv projection with kernel weight[..., 0] in torch layout
                                    (netx flips and transposes to Lava's XY layout and Lava's Conv
                                    flips back, so the torch cross-correlation kernel is the file's)
                                    stride/padding/dilation as stored (H, W order)
    pool   weight [1, 1, kH, kW] -> depthwise conv projection (groups = C) with that kernel
    flatten                      -> nothing: dense projections read their source flattened in
                                    C, H, W order, as netx's transpose([2, 1, 0]).flatten()
    delay  (dense, steps)        -> delays of the layer's own incoming synapses (netx's DelayDense:
                                    row j waits delay[j]); input/conv layers: ignored, as netx does

Shapes: files store (C, H, W); netx reverses them to Lava's (X, Y, Z) = (W, H, C). Populations
here are (C, H, W), so recordings made in Lava's layout need `.transpose(2, 1, 0)`.

Files without an input layer (lava-dl's tutorial networks start with a dense layer): netx connects
`net.inp` straight to the first layer's synapse, so here the graph input `input` feeds the first
projection (same step, binary unless `input_message_bits`); its shape comes from the dense layer's
in-features or `input_shape` (C, H, W), which a conv first layer needs, as in lava-dl.
`reset_interval`/`reset_offset` make every layer a LIFReset with netx's per-layer offsets.

The input layer: in netx it is a LIF population driven only by its bias (the image is written into
`bias_mant`, bias_exp 6, as lava-dl's tests do with `input_bias.npy`). Here it is the population
`layer0`; `input_bias` sets its bias, and the graph also gets a graded input `input` connected
`direct`ly to `layer0`'s `a_in` (no synapse, no latency), as netx connects `net.inp` to the input
block's neurons: a value a sent at index t adds a << 6 to u at that same step (with iDecay = 4096,
i.e. du = 4095, that is the same as bias_mant = a for one step). (lava-dl 0.6.0's Input block
declares that port but leaves it unconnected inside, and Lava then refuses to compile a network
whose `net.inp` is driven; the direct wiring is what the port stands for, and the lava-dl oracle
of the tests adds exactly that one connection.)
The scalars `weight`/`bias` of the input layer are netx's input transform; they are kept in
`meta['netx']['input_transform']`.

Graded spikes of CUBA layers, as netx builds them: a layer's `messageBits` becomes the
num_message_bits of the projection it feeds (netx's input_message_bits of the next block; its Lava
LIF still sends 0/1 on it, and the budget prices the payload bits); `gradedSpike` is read as netx
reads it, i.e. not at all (Lava LIF has no graded output), with an assumption warning.

`refDelay` r > 1 of a CUBA layer is read as netx 0.6 runs it, i.e. ignored (netx builds a plain
Lava LIF), with an assumption warning; `refractory=True` (CLI `--refractory`) compiles the
refractory period the file describes instead: a lif_refractory population (Lava LIFRefractory, v
held r - 1 steps after each spike, `snnc.ir.fixed_point.refractory`).

Resonate-and-fire layers (neuron type containing "RF": RF_PHASE, RF_IZHIKEVICH, and slayer's
ADRF_* whose adaptive threshold netx drops), as netx builds them: only a `dense` layer with complex
weights `weight/real` and `weight/imag` (netx's ComplexDense; its Input, Dense and Conv blocks
drive `a_in`, which Lava's RF has not):

    neuron type with "PHASE"     -> rf (Lava RF: spikes where the phase crosses 0), else rf_iz (RF_IZ)
    sinDecay, cosDecay           -> slayer's neuron_params (alpha = 1 - |s + i c| / 4096, period =
                                    2 pi / atan2(s, c)), then Lava's RF constructor (int32 of
                                    (1 - alpha) sin/cos(2 pi / period) * 2**12), the same float
                                    operations; decay_bits 12, state_exp 6, vth = vThMant (<< 6)
    weight/real, weight/imag     -> two dense projections into ports a_real_in / a_imag_in, each with
                                    its own num_weight_bits and weight_exp (optimize_weight_bits)
    bias, delay                  -> ignored, as netx's ComplexDense ignores them (with a warning)
    messageBits, gradedSpike     -> ignored (Lava's RF sends binary spikes; the next layer's synapses
                                    are binary), with a warning

What Lava 0.10.0 or the chip IR cannot express is an error naming the layer and field: unknown neuron types, wgtExp != 0 (netx would silently ignore it),
layer types netx does not build (average, concat, convT, unpool, dense_comp), RF neurons in
input/conv/pool/recurrent layers or behind real weights, complex weights behind non-RF neurons.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import scipy.sparse as sp

from snnc.ir.bits import SPECS, truncate_weights
from snnc.ir.chip import ChipGraph, ConvGeometry, ConvProjection, DenseProjection, InputPopulation, OutputPort, Population, SparseProjection
from snnc.ir.errors import ModelFileError, ParameterError, QuantizationError, SnncError, UnsupportedNodeError
from snnc.ir.fixed_point.resonator import RF_KINDS, RF_PORTS, lava_decays

NETX_BIAS_EXP = 6
"""netx hands every layer's bias to Lava as bias_mant with bias_exp = 6."""
MAX_LAYER_NEURONS = 2**24
"""A sanity bound on one layer's size read from a file (a damaged `shape` must not allocate terabytes)."""
NETX_SPIKE_EXP = 6
"""netx's `Network(spike_exp=6)`: the exponent of sigma-delta messages."""
NETX_SDNN_STATE_EXP = 6
"""netx builds every Delta/SigmaDelta with state_exp = 6."""
NETX_SDNN_MESSAGE_BITS = 16
"""netx's default `messageBits` of a sigma-delta layer."""
NETX_RF_DECAY_BITS = 12
"""netx builds every RF/RF_IZ with decay_bits = 12 ..."""
NETX_RF_STATE_EXP = 6
"""... and state_exp = 6."""

_NEURON_TYPES = ("LOIHI", "CUBA")
_LAYER_TYPES = ("input", "dense", "dense_rec", "conv", "pool", "flatten")
_NOT_BUILT = {
    "average": "netx does not build 'average' layers either; read the output population's spikes and average them",
    "concat": "netx does not build 'concat' layers; export a sequential network",
    "convT": "transposed convolutions are not supported; use a conv layer",
    "unpool": "unpooling is not supported",
    "dense_comp": "lava-dl netx 0.6 cannot build 'dense_comp' layers (it calls a create_complex_dense it does not have); "
                  "lava-dl writes complex dense layers as 'dense' with weight/real and weight/imag, which snnc reads",
}


def load_netx(
    path: str | Path,
    *,
    input_bias: np.ndarray | None = None,
    input_message_bits: int | None = None,
    num_layers: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    reset_interval: int | None = None,
    reset_offset: int = 0,
    refractory: bool = False,
) -> ChipGraph:
    """Read a lava-dl netx `.net` file into a validated `ChipGraph` (trained integers kept exactly).

    `input_bias`: bias_mant of the input layer's neurons, shape (C, H, W) (or Lava's (W, H, C)
    when C, H, W differ), the way netx feeds an image. `input_message_bits`: payload bits of the
    graph input `input` (default 24 when the file has an input layer with neurons, whose input is
    graded; 0, binary spikes, when the first layer is a synaptic layer). `num_layers`: read only the
    first layers, like netx's `Network(num_layers=...)`. `input_shape` (C, H, W): the input of a file
    without an input layer whose first layer cannot give it (a conv layer). `reset_interval`,
    `reset_offset`: lava-dl's Network options (every layer a Lava LIFReset, see `_netx_reset`).
    `refractory`: run layers with refDelay > 1 with their refractory period (Lava LIFRefractory)
    rather than as lava-dl netx 0.6 runs them (a plain LIF, refDelay ignored).
    """
    path = Path(path)
    where = str(path)
    if refractory and reset_interval is not None:
        raise ParameterError("refractory and reset_interval cannot be combined", where=f"{where} (reader options)",
                             got={"refractory": True, "reset_interval": reset_interval},
                             hint="the chip IR has no neuron kind with both a periodic reset and a refractory period; drop one")
    if not path.exists():
        raise ModelFileError("file not found", where=where, hint="check the path")
    if path.is_dir():
        raise ModelFileError("is a directory, not a netx file", where=where)
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(
            "cannot read as HDF5 (truncated, corrupt, or not a lava-dl .net file)",
            where=where,
            got=str(exc).split("(")[0].strip() or type(exc).__name__,
        ) from exc
    try:
        with handle:
            layers = _read_layers(handle, where, num_layers)
            graph = _build(layers, where, input_bias, input_message_bits, input_shape, refractory)
            return _netx_reset(graph, reset_interval, reset_offset) if reset_interval is not None else graph
    except SnncError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many types on damaged content
        raise ModelFileError(
            f"malformed netx file ({type(exc).__name__}: {exc})",
            where=where,
            hint="the file is incomplete or was not written by lava-dl's export_hdf5",
        ) from exc


def _netx_reset(g: ChipGraph, interval: int, offset: int) -> ChipGraph:
    """lava-dl's reset_interval: every neuron layer becomes a LIFReset, the k-th layer (0-based, in
    file order) resetting at steps where t % interval == offset + 1 + k (netx's staggering, so a
    reset wave follows the data through the layers; hardware time starts at 1)."""
    for k, pop in enumerate(g.populations.values()):
        if pop.sigma_delta:  # netx: "Reset is not supported with Sigma Delta neurons. It will be ignored."
            _assume(f"{g.meta.get('source')}: population {pop.name!r}: reset_interval is ignored for sigma-delta neurons, as netx ignores it")
            continue
        pop.model, pop.reset_interval, pop.reset_offset = "lif_reset", int(interval), int(offset) + 1 + k
    return g.validate()


# -- reading ------------------------------------------------------------------------------------
class _Layer(dict):
    """The datasets of one layer as numpy values, plus where it came from."""

    index: int
    kind: str
    where: str


def _read_layers(f, where: str, num_layers: int | None) -> list[_Layer]:
    import h5py

    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        raise ModelFileError(
            "not a lava-dl netx file (no 'layer' group)",
            where=where,
            got=sorted(f.keys())[:8],
            hint="netx files are written by lava-dl slayer's export_hdf5",
        )
    group = f["layer"]
    keys = list(group.keys())
    if not keys:
        raise ModelFileError("netx file has no layers", where=f"{where}: layer/")
    if not all(k.isdigit() for k in keys) or sorted(int(k) for k in keys) != list(range(len(keys))):
        raise ModelFileError(
            "layers must be numbered 0, 1, 2, ... without gaps",
            where=f"{where}: layer/",
            got=sorted(keys)[:12],
        )
    count = len(keys) if num_layers is None else min(len(keys), int(num_layers))
    if count <= 0:
        raise ParameterError("num_layers must be positive", where=where, got=num_layers)
    layers = []
    for i in range(count):
        g = group[str(i)]
        if not isinstance(g, h5py.Group):
            raise ModelFileError("layer entry is not a group", where=f"{where}: layer/{i}")
        layer = _Layer()
        layer.index = i
        layer.where = f"{where}: layer {i}"
        layer.kind = _read_str(g, "type", layer.where)
        layer.update(_read_group(g, layer.where))
        layers.append(layer)
    return layers


def _read_group(g, where: str) -> dict[str, Any]:
    """Every dataset of a group (recursively, keys joined by '/'), as numpy values."""
    import h5py

    out: dict[str, Any] = {}
    for key, item in g.items():
        if isinstance(item, h5py.Group):
            for sub, value in _read_group(item, f"{where}.{key}").items():
                out[f"{key}/{sub}"] = value
        elif isinstance(item, h5py.Dataset):
            try:
                out[key] = item[()]
            except Exception as exc:  # noqa: BLE001 - truncated or unreadable dataset
                raise ModelFileError(f"cannot read dataset {key!r} ({exc})", where=f"{where}.{key}") from exc
    return out


def _read_str(g, key: str, where: str) -> str:
    if key not in g:
        raise ModelFileError(f"missing dataset {key!r}", where=f"{where}.{key}", hint="every netx layer has a 'type'")
    return _as_str(g[key][()], f"{where}.{key}")


def _as_str(value: Any, where: str) -> str:
    arr = np.asarray(value)
    if arr.ndim > 0:
        if arr.size != 1:
            raise ModelFileError("expected one string", where=where, got=arr.shape)
        value = arr.reshape(-1)[0]
    if isinstance(value, np.ndarray):
        value = value.item()
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("ascii").strip("\x00").strip()
        except UnicodeDecodeError:
            raise ModelFileError("string is not ASCII", where=where, got=bytes(value)[:20]) from None
    if isinstance(value, str):
        return value.strip()
    raise ModelFileError("expected a string", where=where, got=type(value).__name__)


@overload
def _num(layer: _Layer, key: str, *, required: Literal[True] = ..., default: Any = ...) -> np.ndarray: ...
@overload
def _num(layer: _Layer, key: str, *, required: bool = ..., default: int | float | np.ndarray) -> np.ndarray: ...
@overload
def _num(layer: _Layer, key: str, *, required: bool = ..., default: None = ...) -> np.ndarray | None: ...
def _num(layer: _Layer, key: str, *, required: bool = True, default: Any = None) -> np.ndarray | None:
    """A numeric dataset as an array; missing -> error (or default), non-numeric -> error. The
    overloads say when it cannot be None: a required dataset, or one with a default."""
    where = f"{layer.where}.{key}"
    if key not in layer:
        if required:
            raise ModelFileError(f"missing dataset {key!r}", where=where, hint=f"a netx '{layer.kind}' layer stores {key}")
        return None if default is None else np.asarray(default)
    arr = np.asarray(layer[key])
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ModelFileError(f"{key} must be numeric", where=where, got=str(arr.dtype))
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ModelFileError(f"{key} holds NaN or inf", where=where)
    return arr


@overload
def _ints(layer: _Layer, key: str, *, required: Literal[True] = ..., default: Any = ...) -> np.ndarray: ...
@overload
def _ints(layer: _Layer, key: str, *, required: bool = ..., default: int | float | np.ndarray) -> np.ndarray: ...
@overload
def _ints(layer: _Layer, key: str, *, required: bool = ..., default: None = ...) -> np.ndarray | None: ...
def _ints(layer: _Layer, key: str, *, required: bool = True, default: Any = None) -> np.ndarray | None:
    """A dataset that must hold integers (netx casts with astype(int); a fraction would be lost)."""
    arr = _num(layer, key, required=required, default=default)
    if arr is None:
        return None
    if arr.dtype.kind == "f" and np.any(arr != np.round(arr)):
        bad = arr[arr != np.round(arr)].ravel()[:3]
        raise QuantizationError(
            f"{key} must hold integers (the trained fixed-point values)",
            where=f"{layer.where}.{key}",
            got=bad.tolist(),
            hint="lava-dl exports quantized integers; netx would truncate these toward zero",
        )
    return arr.astype(np.int64)


def _scalar(layer: _Layer, key: str, **kw) -> int | None:
    arr = _ints(layer, key, **kw)
    if arr is None:
        return None
    if arr.size != 1:
        raise ModelFileError(f"{key} must be a single value", where=f"{layer.where}.{key}", got=arr.shape)
    return int(arr.reshape(-1)[0])


def _pair(layer: _Layer, key: str, default: int) -> tuple[int, int]:
    arr = _ints(layer, key, required=False, default=default)
    flat = arr.reshape(-1)
    if flat.size == 1:
        flat = np.repeat(flat, 2)
    if flat.size != 2:
        raise ModelFileError(f"{key} must be one value or a pair", where=f"{layer.where}.{key}", got=arr.shape)
    return int(flat[0]), int(flat[1])


def _shape(layer: _Layer) -> tuple[int, ...]:
    arr = _ints(layer, "shape")
    shape = tuple(int(d) for d in arr.reshape(-1))
    if not shape or any(d <= 0 for d in shape):
        raise ModelFileError("shape must be positive integers", where=f"{layer.where}.shape", got=shape)
    if math.prod(shape) > MAX_LAYER_NEURONS:
        raise ModelFileError("layer shape is implausibly large", where=f"{layer.where}.shape", expected=f"at most {MAX_LAYER_NEURONS:,} neurons",
                             got=shape, hint="the file is damaged (a chip layer holds far fewer neurons)")
    return shape


# -- neurons ------------------------------------------------------------------------------------
def _neuron(layer: _Layer, refractory: bool = False) -> dict[str, Any]:
    """Lava LIF parameters of a layer's neuron group, as netx's get_neuron_params maps them (with
    `refractory`, a refDelay > 1 becomes a lif_refractory population instead of being ignored)."""
    where = f"{layer.where} ({layer.kind}) neuron"
    if "neuron/type" not in layer:
        raise ModelFileError("missing neuron description", where=f"{where}.type", hint=f"a netx '{layer.kind}' layer has a neuron group")
    ntype = _as_str(layer["neuron/type"], f"{where}.type")
    if ntype == "SDNN":
        return _sdnn_neuron(layer, where)
    if _is_resonator(layer):
        return _rf_neuron(layer, where, ntype)
    if ntype not in _NEURON_TYPES:
        raise UnsupportedNodeError(
            f"neuron type {ntype!r} is not supported",
            where=f"{where}.type",
            expected=" or ".join(_NEURON_TYPES) + ", SDNN or a type containing RF",
            hint="snnc maps CUBA/LOIHI LIF neurons (Lava LIF), SDNN sigma-delta neurons (Lava Delta, SigmaDelta, Sigma) "
                 "and resonate-and-fire neurons (Lava RF, RF_IZ), as lava-dl netx does",
        )

    def field(key: str, required: bool = True):
        value = _scalar(layer, f"neuron/{key}", required=required)
        return value

    ref = field("refDelay", required=False)
    refractory_params = _refractory(ref, where, refractory)
    if "neuron/gradedSpike" in layer and bool(np.any(_num(layer, "neuron/gradedSpike"))):
        _assume(
            f"{where}.gradedSpike: lava-dl netx builds CUBA layers as Lava LIF, which sends binary spikes, so the "
            "graded spikes slayer trained (spike = voltage) are sent as 1; snnc runs the layer as netx does"
        )
    bits = field("messageBits", required=False)
    if bits:  # netx: the next synapse's num_message_bits (Lava LIF still sends 0/1 on them)
        SPECS["num_message_bits"].check(bits, f"{where}.messageBits")
    _refuse_weight_exp(layer, where)
    i_decay = field("iDecay")
    if not 1 <= i_decay <= 4096:
        raise ParameterError(
            "iDecay out of range",
            where=f"{where}.iDecay",
            expected="1..4096 (Lava du = iDecay - 1, 12 bits)",
            got=i_decay,
            hint="lava-dl netx turns iDecay = 0 (no current decay) into Lava du = -1, which the chip IR's 12-bit du cannot hold; retrain with current_decay >= 1/4096",
        )
    v_decay = field("vDecay")
    if not 0 <= v_decay <= 4095:
        raise ParameterError(
            "vDecay out of range", where=f"{where}.vDecay", expected="0..4095 (Lava dv, 12 bits)", got=v_decay
        )
    vth = field("vThMant")
    spec = SPECS["vth"]
    if not spec.lo <= vth <= spec.hi:
        raise ParameterError(
            "vThMant out of range", where=f"{where}.vThMant", expected=f"{spec.lo}..{spec.hi} (17 bits)", got=vth
        )
    out: dict[str, Any] = {"du": i_decay - 1, "dv": v_decay, "vth": vth, **refractory_params}
    if bits:
        out["meta"] = {"message_bits": int(bits)}
    return out


def _refractory(ref: int | None, where: str, refractory: bool) -> dict[str, Any]:
    """Population fields for a refDelay: none (plain LIF, as netx 0.6 runs every CUBA layer, warned
    about when refDelay > 1) or, with `refractory`, a lif_refractory of period refDelay - 1."""
    if ref is None or ref <= 1:
        return {}
    if not refractory:
        _assume(f"{where}.refDelay: refDelay={ref} is ignored by lava-dl netx 0.6, which runs the layer as a plain Lava LIF "
                f"(no refractory period); snnc runs it as netx does. Pass refractory=True (CLI --refractory) to compile the "
                f"refractory period instead (Lava LIFRefractory: v held {ref - 1} steps after each spike)")
        return {}
    period = SPECS["refractory_period"]
    if ref - 1 > period.hi:
        raise ParameterError("refDelay too long for the chip's refractory counter", where=f"{where}.refDelay",
                             expected=f"1..{period.hi + 1}", got=ref, hint="retrain with a shorter refractory delay, or read the file without --refractory")
    _assume(f"{where}.refDelay: refDelay={ref} compiled as a refractory period of {ref - 1} steps (v held at 0 after a spike; "
            "refDelay 1 = none, as slayer and netx treat it); neither lava-dl 0.6 nor Lava fixed_pt runs this, so there is "
            "no lava-dl reference for it")
    return {"model": "lif_refractory", "refractory_period": ref - 1}


def _refuse_weight_exp(layer: _Layer, where: str) -> None:
    """A neuron weight exponent (slayer writes one with WgtScaleBatchNorm) is ignored by netx."""
    for key in ("wgtExp", "weight_exp"):
        value = _scalar(layer, f"neuron/{key}", required=False)
        if value:
            raise UnsupportedNodeError(
                f"neuron {key} = {value} is not supported",
                where=f"{where}.{key}",
                expected=0,
                got=value,
                hint="lava-dl netx ignores this field, which would change the trained network; fold it into the weights and re-export",
            )


def _sdnn_neuron(layer: _Layer, where: str) -> dict[str, Any]:
    """Sigma-delta parameters as netx's get_neuron_params builds Lava's `lava.proc.sdn` processes:
    the input layer a Delta, a layer with `sigma_output` a Sigma, any other a SigmaDelta (ReLU, no
    cumulative error: netx passes neither act_mode nor cum_error); vth = vThMant, spike_exp =
    netx's default 6, state_exp = 6; `messageBits` (default 16) are the payload bits of the layer's
    outgoing messages."""
    _refuse_weight_exp(layer, where)
    bits = _scalar(layer, "neuron/messageBits", required=False)
    bits = NETX_SDNN_MESSAGE_BITS if bits is None else bits
    SPECS["num_message_bits"].check(bits, f"{where}.messageBits")
    meta = {"message_bits": int(bits)}
    if layer.kind == "input":
        model = "delta"
    elif "neuron/sigma_output" in layer and bool(np.any(np.asarray(layer["neuron/sigma_output"]))):
        return {"model": "sigma", "vth": 0, "meta": meta}
    else:
        model = "sigma_delta"
        if "neuron/activation" in layer:
            name = _as_str(layer["neuron/activation"], f"{where}.activation")
            if name.lower() != "relu":
                _assume(f"{where}.activation: the file says {name!r}; lava-dl netx runs every SigmaDelta layer with ReLU, and so does snnc")
    vth = _scalar(layer, "neuron/vThMant")
    assert vth is not None  # required
    spec = SPECS["vth"]
    if not spec.lo <= vth <= spec.hi:
        raise ParameterError("vThMant out of range", where=f"{where}.vThMant", expected=f"{spec.lo}..{spec.hi} (17 bits)", got=vth)
    return {"model": model, "vth": vth, "spike_exp": NETX_SPIKE_EXP, "state_exp": NETX_SDNN_STATE_EXP, "meta": meta}


def _rf_neuron(layer: _Layer, where: str, ntype: str) -> dict[str, Any]:
    """Resonator parameters as netx's get_neuron_params builds Lava's RF ("PHASE" in the type) or
    RF_IZ: period and alpha from slayer's `neuron_params`, the integers from Lava's constructor."""
    _refuse_weight_exp(layer, where)
    n = math.prod(_shape(layer))
    decays = {}
    for key in ("sinDecay", "cosDecay"):
        value = _num(layer, f"neuron/{key}")
        assert value is not None  # required
        if value.size not in (1, n):
            raise ModelFileError(f"{key} does not match the layer", where=f"{where}.{key}", expected=f"1 or {n} values", got=value.size)
        decays[key] = value.reshape(()) if value.size == 1 else value.reshape(-1)
    sin, cos = _netx_rf_decays(decays["sinDecay"], decays["cosDecay"])
    for key, value in (("sinDecay", sin), ("cosDecay", cos)):
        spec = SPECS["sin_decay"]
        if np.any(value < spec.lo) or np.any(value > spec.hi):
            raise ParameterError(f"{key} gives Lava's RF a decay outside its 12 bits", where=f"{where}.{key}",
                                 expected=f"{spec.lo}..{spec.hi} after netx's conversion (a period >= 4 and a decay in 0..1)",
                                 got=int(value[np.argmax((value < spec.lo) | (value > spec.hi))] if value.ndim else value),
                                 hint="slayer's RF neurons keep sin/cos decays in the first quadrant; retrain or clamp them")
    vth = _scalar(layer, "neuron/vThMant")
    SPECS["vth"].check(vth, f"{where}.vThMant")
    ignored = [k for k in ("thDecay", "refDecay", "vThStep") if f"neuron/{k}" in layer]
    if ignored:
        _assume(f"{where}: {ntype} neurons' {', '.join(ignored)} (adaptive threshold, refractory decay) are ignored by lava-dl "
                "netx, which builds a plain Lava RF/RF_IZ; snnc runs the layer as netx does")
    flag = _num(layer, "neuron/gradedSpike", required=False)
    graded = flag is not None and bool(np.any(flag))
    if _scalar(layer, "neuron/messageBits", required=False) or graded:
        _assume(f"{where}: messageBits/gradedSpike are ignored by lava-dl netx for {ntype} neurons (Lava's RF sends binary "
                "spikes); snnc runs the layer as netx does")
    model = "rf" if "PHASE" in ntype else "rf_iz"
    return {"model": model, "vth": vth, "sin_decay": sin, "cos_decay": cos, "decay_bits": NETX_RF_DECAY_BITS,
            "state_exp": NETX_RF_STATE_EXP}


def _netx_rf_decays(sin_file: np.ndarray, cos_file: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integers Lava's RF holds for a file's sinDecay/cosDecay: slayer's `rf.neuron_params` (which
    netx calls) then Lava's constructor, with the same float operations on the file's own dtype."""
    p_scale = 1 << 12
    sin_decay, cos_decay = sin_file / p_scale, cos_file / p_scale
    decay = 1 - np.sqrt(sin_decay ** 2 + cos_decay ** 2)
    frequency = np.arctan2(sin_decay, cos_decay) / 2 / np.pi
    with np.errstate(divide="ignore", invalid="ignore"):  # out-of-range results are refused by the caller
        period = 1 / frequency  # sinDecay 0: an infinite period, for which Lava's sin is 0
        sin, cos = lava_decays(period, decay, NETX_RF_DECAY_BITS)
    return np.asarray(sin, np.int64), np.asarray(cos, np.int64)


def _neuron_population(name: str, shape: tuple[int, ...], layer: _Layer, params: dict[str, Any], bias) -> Population:
    """The layer's population: the bias is a LIF's bias_mant (bias_exp 6) or a SigmaDelta's bias (a
    resonator's is never read: netx's ComplexDense takes none)."""
    params = dict(params)
    meta = {**_meta(layer), **params.pop("meta", {})}
    if params.get("model") in RF_KINDS:
        return Population(name, shape, meta=meta, **params)
    if params.get("model") in ("delta", "sigma"):
        if np.any(bias):
            raise ParameterError(f"a {params['model']} layer has no bias", where=f"{layer.where}.bias", got="nonzero bias",
                                 hint="netx builds Lava's Delta (input) and Sigma (output) processes, which take no bias")
        return Population(name, shape, meta=meta, **params)
    if params.get("model") == "sigma_delta":
        return Population(name, shape, act_bias=bias, meta=meta, **params)
    return Population(name, shape, bias_mant=bias, bias_exp=NETX_BIAS_EXP, meta=meta, **params)


def _is_resonator(layer: _Layer) -> bool:
    """netx's test for an RF neuron: a type containing "RF" that is not LOIHI, CUBA or SDNN."""
    if "neuron/type" not in layer:
        return False
    ntype = _as_str(layer["neuron/type"], f"{layer.where}.neuron.type")
    return ntype not in (*_NEURON_TYPES, "SDNN") and "RF" in ntype


def _is_sdnn(layer: _Layer) -> bool:
    return "neuron/type" in layer and _as_str(layer["neuron/type"], f"{layer.where}.neuron.type") == "SDNN"


def _assume(message: str) -> None:
    import warnings

    from snnc.ir.reset_mode import AssumptionWarning

    warnings.warn(AssumptionWarning(message), stacklevel=3)


def _bias(layer: _Layer, shape: tuple[int, ...]) -> np.ndarray | int:
    """The layer bias as bias_mant: scalar, per channel (conv/pool), or per neuron."""
    b = _ints(layer, "bias", required=False)
    if b is None:
        return 0
    flat = b.reshape(-1)
    where = f"{layer.where}.bias"
    if flat.size == 1:
        out = np.full(shape, int(flat[0]), dtype=np.int64)
    elif flat.size == math.prod(shape):
        out = flat.reshape(shape)
    elif len(shape) == 3 and flat.size == shape[0]:
        out = np.broadcast_to(flat[:, None, None], shape).copy()
    else:
        raise ModelFileError(
            "bias does not match the layer", where=where, expected=f"1, {shape[0]} (per channel) or {math.prod(shape)} values", got=flat.size
        )
    spec = SPECS["act_bias" if _is_sdnn(layer) else "bias_mant"]
    if out.size and (out.min() < spec.lo or out.max() > spec.hi):
        worst = int(out.min() if out.min() < spec.lo else out.max())
        raise QuantizationError(
            "bias does not fit Lava's 13-bit bias_mant",
            where=where,
            expected=f"{spec.lo}..{spec.hi}",
            got=worst,
            hint="netx passes the bias unscaled as bias_mant (bias_exp 6); retrain with a smaller bias range",
        )
    return out


def _dense_delay(layer: _Layer, wshape: tuple[int, int]) -> np.ndarray | int:
    """Per-synapse delays of a dense layer's own incoming synapses, as netx builds its DelayDense.

    netx reads a dense layer's `delay` as delays of the synapses INTO it: one value per output
    neuron (row j delayed by delay[j]), per input (column), or one for all. (slayer applies the
    same numbers after the neuron; netx's reading is what runs on Lava and Loihi, so it is used.)
    """
    d = _ints(layer, "delay", required=False)
    if d is None:
        return 0
    flat = d.reshape(-1)
    rows, cols = wshape
    if flat.size == 1:
        out = np.full(wshape, int(flat[0]), np.int64)
    elif flat.size == rows:
        out = np.repeat(flat[:, None], cols, axis=1)
    elif flat.size == cols:
        out = np.repeat(flat[None, :], rows, axis=0)
    else:
        raise ModelFileError(
            "delay does not match the layer", where=f"{layer.where}.delay", expected=f"1, {rows} (per neuron) or {cols} (per input) values", got=flat.size
        )
    spec = SPECS["delay"]
    if out.min() < spec.lo or out.max() > spec.hi:
        raise ParameterError(
            "delay out of range",
            where=f"{layer.where}.delay",
            expected=f"{spec.lo}..{spec.hi} steps",
            got=int(out.min() if out.min() < spec.lo else out.max()),
            hint="netx would clamp delays above 62 (changing the network); retrain with shorter delays",
        )
    return out if np.any(out) else 0


def _recurrent_weight(layer: _Layer, n: int) -> np.ndarray:
    """A dense_rec layer's weight_rec [n, n]: its spikes back into its own current one step later."""
    if layer.get("delay") is not None and np.any(np.asarray(layer["delay"])):
        raise UnsupportedNodeError(
            "delays on a recurrent dense layer are not supported",
            where=f"{layer.where}.delay",
            hint="lava-dl 0.6 netx builds delayed recurrent layers without their weight exponent (not the trained network); export dense_rec layers without delays",
        )
    w = _ints(layer, "weight_rec")
    assert w is not None  # required
    if w.ndim == 1 and w.size == n * n:
        w = w.reshape(n, n)
    if w.shape != (n, n):
        raise ModelFileError("weight_rec does not match the layer size", where=f"{layer.where}.weight_rec", expected=(n, n), got=w.shape)
    return w


def _ignored_delay(layer: _Layer, shape: tuple[int, ...]) -> None:
    """netx builds input/conv layers without their `delay`; do the same, and say so."""
    d = _ints(layer, "delay", required=False)
    if d is not None and np.any(d):
        import warnings

        from snnc.ir.reset_mode import AssumptionWarning

        warnings.warn(
            AssumptionWarning(
                f"{layer.where}.delay: lava-dl netx builds {layer.kind} layers without delays, so their nonzero "
                "delays are ignored here too (the network runs as netx runs it)"
            ),
            stacklevel=4,
        )


# -- weights ------------------------------------------------------------------------------------
def dense_weight_format(weight: np.ndarray, where: str = "dense weight") -> tuple[np.ndarray, int, int]:
    """(weights for Lava, num_weight_bits, weight_exp) representing integer `weight` exactly.

    Mirrors lava-dl netx's `optimize_weight_bits` (shift the weights up to use the 8-bit range, a
    negative weight_exp shifts the accumulated sum back), then checks that Lava's truncation keeps
    every weight; when netx's formula leaves the legal ranges (all-zero or out-of-range weights),
    the smallest exact alternative is searched.
    """
    w = np.asarray(weight, dtype=np.int64)

    def candidates():  # made one at a time: netx's own format is usually exact, and each is a copy of w
        netx = _netx_optimize(w)
        if netx is not None:
            yield netx
        for exp in range(0, -9, -1):  # w << -exp, then >> -exp in the accumulator
            for bits in range(8, 0, -1):
                yield w << -exp, bits, exp
        for exp in range(1, 8):  # weights too large: w = m << exp
            if np.all(w % (1 << exp) == 0):
                yield w >> exp, 8, exp

    for wl, bits, exp in candidates():
        if _exact(w, wl, bits, exp):
            return wl, bits, exp
    raise QuantizationError(
        "weights cannot be represented exactly by an 8-bit Lava Dense synapse",
        where=where,
        expected="integers in -256..255 (or multiples of a power of two beyond)",
        got=(int(w.min()), int(w.max())),
        hint="re-export the network with 8-bit weights",
    )


def netx_exact_format(weight: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """What lava-dl netx's `optimize_weight_bits` makes of integer `weight` (weights for Lava,
    num_weight_bits, weight_exp) when Lava then applies exactly `weight`; None when it does not."""
    w = np.asarray(weight, dtype=np.int64)
    fmt = _netx_optimize(w)
    return fmt if fmt is not None and _exact(w, *fmt) else None


def _netx_optimize(w: np.ndarray):
    if w.size == 0 or not np.any(w):
        return None
    hi, lo = int(w.max()), int(w.min())
    if hi < 0:
        signed, scale = 0, -256 / lo
    elif lo >= 0:
        signed, scale = 0, 255 / hi
    else:
        signed, scale = 1, min(127 / hi, -128 / lo)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    low = int(np.bitwise_or.reduce(w, axis=None))
    n = min(8, (low & -low).bit_length() - 1)  # the largest n <= 8 with every weight a multiple of 2**n
    n -= signed
    bits = 8 - scale_bits - n
    if scale_bits < 0:
        return None
    return w << scale_bits, int(bits), -scale_bits


def _exact(w: np.ndarray, wl: np.ndarray, bits: int, exp: int) -> bool:
    if not 1 <= bits <= 8 or not -8 <= exp <= 7:
        return False
    if wl.size and (wl.min() < -256 or wl.max() > 255):
        return False
    eff = truncate_weights(wl, bits)
    if not np.array_equal(eff, wl):
        return False
    back = eff << exp if exp >= 0 else eff >> -exp
    return bool(np.array_equal(back, w))


# -- building -----------------------------------------------------------------------------------
def _build(layers: list[_Layer], where: str, input_bias, input_message_bits, input_shape=None, refractory: bool = False) -> ChipGraph:
    g = ChipGraph()
    g.meta.update({"source": where, "format": "lava-dl netx", "netx": {"layers": [l.kind for l in layers]}})
    src_name: str | None = None
    src_shape: tuple[int, ...] | None = None
    last_pop = None
    for layer in layers:
        kind = layer.kind
        if kind in _NOT_BUILT:
            raise UnsupportedNodeError(f"layer type {kind!r} is not supported", where=f"{layer.where}.type", hint=_NOT_BUILT[kind])
        if kind not in _LAYER_TYPES:
            raise UnsupportedNodeError(
                f"unknown layer type {kind!r}", where=f"{layer.where}.type", expected=", ".join(_LAYER_TYPES)
            )
        name = f"layer{layer.index}"
        if kind == "input":
            if src_name is not None:
                raise ModelFileError("an input layer must come first", where=f"{layer.where}.type")
            shape = _shape(layer)
            transform = {k: float(np.asarray(layer[k]).reshape(-1)[0]) for k in ("weight", "bias") if k in layer}
            if "neuron/type" not in layer:
                if input_bias is not None:
                    raise ParameterError(
                        "input_bias given, but the input layer has no neurons to bias",
                        where=f"{layer.where}",
                        hint="feed the input as spikes through the 'input' port instead",
                    )
                bits = 0 if input_message_bits is None else input_message_bits
                g.add(InputPopulation("input", shape, num_message_bits=bits))
                src_name, src_shape = "input", shape
                continue
            _refuse_resonator(layer, "input layers are netx Input blocks, whose input drives the neurons' a_in")
            params = _neuron(layer, refractory)
            bias = 0 if input_bias is None else _input_bias(input_bias, shape, layer.where)
            bits = 24 if input_message_bits is None else input_message_bits
            g.add(InputPopulation("input", shape, num_message_bits=bits))
            pop = g.add(_neuron_population(name, shape, layer, params, bias))
            n = pop.size
            g.add(
                SparseProjection(
                    f"input->{name}", "input", name, sp.identity(n, dtype=np.int64, format="csr"),
                    num_message_bits=bits, direct=True, meta={"netx_layer": layer.index, "role": "input current, direct"},
                )
            )
            g.meta["netx"]["input_transform"] = transform
            _ignored_delay(layer, shape)
            src_name, src_shape, last_pop = name, shape, pop
            continue
        if kind == "flatten":
            continue
        if src_name is None:
            shape_in = _implicit_input_shape(layer, kind, input_shape)
            bits = 0 if input_message_bits is None else input_message_bits
            g.add(InputPopulation("input", shape_in, num_message_bits=bits))
            src_name, src_shape = "input", shape_in
        shape = _shape(layer)
        if "weight/imag" in layer and "neuron/type" in layer and not _is_resonator(layer):
            raise UnsupportedNodeError(
                "complex weights (weight/real, weight/imag) need resonate-and-fire neurons", where=f"{layer.where}.weight/imag",
                got=f"neuron.type {_as_str(layer['neuron/type'], layer.where)!r} in a {kind} layer",
                hint="lava-dl netx connects complex weights to an RF neuron's a_real_in/a_imag_in (a dense layer with an RF_* "
                     "neuron type); give the layer real weights 'weight' for CUBA/SDNN neurons",
            )
        if kind != "dense":
            _refuse_resonator(layer, f"netx builds {kind} layers with synapses into the neurons' a_in")
        params = _neuron(layer, refractory)
        assert src_shape is not None  # set by the input
        if params.get("model") in RF_KINDS:
            pop = _complex_dense(g, layer, name, (math.prod(shape),), src_name, math.prod(src_shape), params)
            src_name, src_shape, last_pop = name, pop.shape, pop
            continue
        if kind in ("dense", "dense_rec"):
            shape = (math.prod(shape),)
            n_in = math.prod(src_shape)
            w = _dense_weight(layer, "weight", shape[0], n_in)
            w_rec = _recurrent_weight(layer, shape[0]) if kind == "dense_rec" else None
            # netx fits one weight format to [weight, weight_rec] together (one exponent for both)
            both = w if w_rec is None else np.hstack((w, w_rec))
            wl, bits, exp = dense_weight_format(both, f"{layer.where}.weight" + ("" if w_rec is None else " and weight_rec"))
            delay = _dense_delay(layer, (shape[0], n_in))
            pop = g.add(_neuron_population(name, shape, layer, params, _bias(layer, shape)))
            g.add(
                DenseProjection(
                    f"{src_name}->{name}", src_name, name, wl[:, :n_in], weight_exp=exp, num_weight_bits=bits,
                    num_message_bits=_message_bits(g, src_name), delay=delay, meta={"netx_layer": layer.index},
                )
            )
            if w_rec is not None:
                g.add(
                    DenseProjection(
                        f"{name}->{name}", name, name, wl[:, n_in:], weight_exp=exp, num_weight_bits=bits,
                        num_message_bits=_message_bits(g, name), meta={"netx_layer": layer.index, "role": "recurrent (weight_rec)"},
                    )
                )
        else:  # conv or pool
            _ignored_delay(layer, shape)
            if len(src_shape) != 3 or len(shape) != 3:
                raise ModelFileError(
                    f"a {kind} layer needs (C, H, W) shapes", where=f"{layer.where}.shape", got=(src_shape, shape)
                )
            weight, geom = _conv(layer, kind, src_shape, shape)
            pop = g.add(_neuron_population(name, shape, layer, params, _bias(layer, shape)))
            try:
                proj = ConvProjection(
                    f"{src_name}->{name}", src_name, name, weight, conv=geom,
                    num_message_bits=_message_bits(g, src_name), meta={"netx_layer": layer.index},
                )
            except ParameterError as exc:
                raise QuantizationError(
                    f"{kind} weights do not fit the chip's 8-bit weights plus sign ({exc.what})",
                    where=f"{layer.where}.weight",
                    got=(int(weight.min()), int(weight.max())),
                    hint="conv weights must be integers in -256..255; re-export with 8-bit quantized weights",
                ) from exc
            g.add(proj)
        src_name, src_shape, last_pop = name, shape, pop
    if last_pop is None:
        raise ModelFileError("netx file has no neuron layer", where=where, hint="the file needs at least one layer with neurons")
    g.outputs["output"] = OutputPort(last_pop.name, "s")
    return g.validate()


def _dense_weight(layer: _Layer, key: str, n_out: int, n_in: int) -> np.ndarray:
    """A dense layer's weight [out, in] (a flat or transposed-shape array of that size is reshaped, as netx does)."""
    w = _ints(layer, key)
    assert w is not None  # required
    if w.ndim in (1, 2) and w.shape != (n_out, n_in) and w.size == n_out * n_in:
        w = w.reshape(n_out, -1)
    if w.shape != (n_out, n_in):
        raise ModelFileError("dense weight does not match the layer's shape and input size", where=f"{layer.where}.{key}",
                             expected=(n_out, n_in), got=w.shape)
    return w


def _refuse_resonator(layer: _Layer, why: str) -> None:
    """RF neurons exist in netx only behind complex dense weights (its ComplexDense block)."""
    if _is_resonator(layer):
        raise UnsupportedNodeError(
            f"resonate-and-fire neurons in a {layer.kind!r} layer are not built by lava-dl netx", where=f"{layer.where}.neuron.type",
            got=_as_str(layer["neuron/type"], layer.where),
            hint=f"{why}, which Lava's RF/RF_IZ do not have (their inputs are a_real_in/a_imag_in); netx builds RF neurons "
                 "only in dense layers with complex weights weight/real and weight/imag",
        )


def _complex_dense(g: ChipGraph, layer: _Layer, name: str, shape: tuple[int], src: str, n_in: int, params: dict[str, Any]) -> Population:
    """netx's ComplexDense: weight/real and weight/imag, each fitted by optimize_weight_bits on its own,
    into the RF neurons' a_real_in / a_imag_in. Its bias and delay are not read (netx passes neither)."""
    if "weight/imag" not in layer:
        raise ModelFileError("missing dataset 'weight/imag'", where=f"{layer.where}.weight/imag",
                             hint="a dense layer of resonate-and-fire neurons has complex weights weight/real and weight/imag "
                                  "(netx's ComplexDense); real weights alone reach an a_in the RF neuron does not have")
    for key, what in (("bias", "bias"), ("delay", "delays")):
        value = _num(layer, key, required=False)
        if value is not None and np.any(value):
            _assume(f"{layer.where}.{key}: lava-dl netx builds complex dense layers (ComplexDense) without {what}, so "
                    "they are ignored here too (the network runs as netx runs it)")
    pop = g.add(_neuron_population(name, shape, layer, params, 0))
    for key, port in zip(("weight/real", "weight/imag"), RF_PORTS):
        w = _dense_weight(layer, key, shape[0], n_in)
        wl, bits, exp = dense_weight_format(w, f"{layer.where}.{key}")
        part = key.split("/")[1]
        g.add(DenseProjection(f"{src}->{name}.{part}", src, name, wl, weight_exp=exp, num_weight_bits=bits,
                              num_message_bits=_message_bits(g, src), port=port, meta={"netx_layer": layer.index, "role": key}))
    return pop


def _implicit_input_shape(layer: _Layer, kind: str, input_shape) -> tuple[int, ...]:
    """Input shape of a file whose first layer is synaptic, as lava-dl's Network infers it.

    netx connects `net.inp` straight to that layer's synapse, so the graph input `input` feeds the
    layer's projection (binary spikes unless `input_message_bits`). A dense layer gives its
    in-features; a conv layer needs `input_shape` (C, H, W), as lava-dl needs it.
    """
    if input_shape is not None:
        shape = tuple(int(d) for d in np.atleast_1d(np.asarray(input_shape)).reshape(-1))
        if not shape or any(d <= 0 for d in shape):
            raise ParameterError("input_shape must be positive integers", where=f"{layer.where}: input_shape", got=input_shape)
        return shape
    if kind in ("dense", "dense_rec"):
        if "inFeatures" in layer:
            n_in = _scalar(layer, "inFeatures")
            if n_in is None or n_in <= 0:
                raise ModelFileError("inFeatures must be a positive integer", where=f"{layer.where}.inFeatures", got=n_in)
            return (n_in,)
        w = _ints(layer, "weight/real" if "weight/real" in layer else "weight")
        assert w is not None  # required
        if w.ndim != 2:
            raise ModelFileError("dense weight must be [out, in]", where=f"{layer.where}.weight", got=w.shape)
        return (int(w.shape[1]),)
    raise ParameterError(
        f"the input shape of a network starting with a {kind!r} layer cannot be inferred",
        where=f"{layer.where}.type",
        hint="pass input_shape=(C, H, W) (CLI: --input-shape C,H,W), as lava-dl's Network(input_shape=...) needs it",
    )


def _meta(layer: _Layer) -> dict:
    return {"netx_layer": layer.index, "netx_type": layer.kind}


def _message_bits(g: ChipGraph, src: str) -> int:
    if src in g.populations:  # sigma-delta layers send graded messages of their messageBits
        return int(g.populations[src].meta.get("message_bits", 0))
    return int(g.inputs[src].num_message_bits) if src in g.inputs else 0


def _input_bias(bias, shape: tuple[int, ...], where: str) -> np.ndarray:
    arr = np.asarray(bias)
    if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and np.any(arr != np.round(arr))):
        raise ParameterError("input_bias must hold integers", where=f"{where}: input_bias", got=str(arr.dtype))
    arr = arr.astype(np.int64)
    if arr.shape == tuple(shape):
        out = arr
    elif len(shape) == 3 and arr.shape == tuple(shape[::-1]):
        out = arr.transpose(2, 1, 0)  # Lava's (X, Y, Z) = (W, H, C) layout
    elif arr.size == math.prod(shape) and arr.ndim == 1:
        out = arr.reshape(shape)
    else:
        raise ParameterError(
            "input_bias does not match the input layer",
            where=f"{where}: input_bias",
            expected=f"{tuple(shape)} (C, H, W) or {tuple(shape[::-1])} (Lava's W, H, C)",
            got=arr.shape,
        )
    return np.ascontiguousarray(out)


def _conv(layer: _Layer, kind: str, in_shape, out_shape) -> tuple[np.ndarray, ConvGeometry]:
    w = _ints(layer, "weight")
    where = f"{layer.where}.weight"
    if w.ndim == 5:
        if w.shape[4] != 1:
            raise UnsupportedNodeError(
                "temporal kernels are not supported", where=where, expected="last dimension 1", got=w.shape,
                hint="the kernel's time dimension must be 1 (no temporal convolution on the chip)",
            )
        w = w[..., 0]
    if w.ndim != 4:
        raise ModelFileError(f"{kind} weight must have 4 or 5 dimensions", where=where, got=w.shape)
    stride = _pair(layer, "stride", 1)
    padding = _pair(layer, "padding", 0)
    dilation = _pair(layer, "dilation", 1)
    c_in = in_shape[0]
    if kind == "pool":
        if w.shape[:2] != (1, 1):
            raise ModelFileError("pool weight must be [1, 1, kH, kW]", where=where, got=w.shape)
        groups = c_in
        w = np.broadcast_to(w, (c_in, 1, *w.shape[2:])).copy()
    else:
        groups = _scalar(layer, "groups", required=False) or 1
        for key, expect in (("inChannels", c_in), ("outChannels", out_shape[0])):
            value = _scalar(layer, key, required=False)
            if value is not None and value != expect:
                raise ModelFileError(f"{key} does not match the layer shapes", where=f"{layer.where}.{key}", expected=expect, got=value)
    kernel = (int(w.shape[2]), int(w.shape[3]))
    if "kernelSize" in layer:
        ks = _pair(layer, "kernelSize", 1)
        if ks != kernel:
            raise ModelFileError("kernelSize does not match the weight", where=f"{layer.where}.kernelSize", expected=kernel, got=ks)
    if groups <= 0 or c_in % groups or out_shape[0] % groups or w.shape[0] != out_shape[0] or w.shape[1] * groups != c_in:
        raise ModelFileError(
            f"{kind} weight does not match the layer shapes and groups",
            where=where,
            expected=(out_shape[0], c_in // max(groups, 1), *kernel),
            got=w.shape,
        )
    hw = ConvGeometry.output_hw(in_shape[1:], kernel, stride, padding, dilation)
    if tuple(hw) != tuple(out_shape[1:]):
        raise ModelFileError(
            f"{kind} output shape does not follow from its geometry",
            where=f"{layer.where}.shape",
            expected=(out_shape[0], *hw),
            got=out_shape,
            hint="check stride, padding and dilation",
        )
    geom = ConvGeometry(in_shape, out_shape, kernel, stride, padding, dilation, groups)
    return w, geom
