"""Hypothesis strategies for random chip-level networks and their inputs.

Public API (all are hypothesis strategies unless noted):

* `chip_graphs(**options)` -> `ChipGraph`: a random network of populations, projections and
  inputs; `GraphOptions` lists the options (kinds of projections, recurrence, delays, neuron
  models, graded messages, per-neuron parameters, sizes).
* `chip_inputs(graph, steps)` -> {input name: [steps, *shape] int64} for one sample.
* `chip_cases(steps=..., **options)` -> `ChipCase` (graph + single-sample inputs + steps).
* `chip_suites(cases, max_processes=...)` -> list[ChipCase] whose Lava process count fits one
  Lava run (see `lava_processes`).
* building blocks: `populations(name, shape, ...)`, `weight_arrays(shape, ...)`,
  `conv_geometries(in_shape, ...)`.
* `lava_processes(graph)` (plain function): how many OS processes tests/lava_oracle.py spawns.

Large arrays come from a numpy Generator seeded by a drawn integer, so examples stay cheap to
generate and reproducible under `derandomize=True`. Parameter distributions mix "typical" values
(spiking happens) with extremes (24-bit current wrap, voltage saturation, weight truncation at
1..8 bits, clipping of -256 in inhibitory mode, large weight exponents).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st

from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection

ALL_KINDS = ("dense", "sparse", "conv")
ALL_MODELS = ("lif", "lif_reset", "ternary")
SIGMA_DELTA_MODELS = ("delta", "sigma_delta", "sigma")
"""Lava's lava.proc.sdn kinds; their outgoing projections are always graded (recurrence: lava only)."""


@dataclass(frozen=True)
class GraphOptions:
    """What `chip_graphs` may generate."""

    kinds: tuple[str, ...] = ("dense", "sparse")
    max_populations: int = 3
    max_neurons: int = 12  # per 1-D population
    recurrent: bool = False
    delays: bool = False
    models: tuple[str, ...] = ("lif",)
    graded: bool = False
    per_neuron: bool = False
    max_inputs: int = 2
    sign_split: bool = False  # dense/sparse projections may come as an excitatory + inhibitory pair


@dataclass
class ChipCase:
    """A generated network with one sample of input."""

    graph: ChipGraph
    inputs: dict[str, np.ndarray]
    steps: int
    tags: dict = field(default_factory=dict)

    def batched(self) -> dict[str, np.ndarray]:
        """Inputs with a leading batch axis of 1: [1, T, *shape]."""
        return {k: v[None] for k, v in self.inputs.items()}


# -- parameters -------------------------------------------------------------------------------------
def _seeds():
    return st.integers(0, 2**32 - 1)


@st.composite
def _threshold(draw) -> int:
    kind = draw(st.sampled_from(["small", "small", "medium", "huge"]))
    if kind == "small":
        return draw(st.integers(0, 60))
    if kind == "medium":
        return draw(st.integers(60, 3000))
    return draw(st.integers(3000, 2**17 - 1))


@st.composite
def _decay(draw) -> int:
    return draw(st.one_of(st.sampled_from([0, 1, 4095, 4096 // 2]), st.integers(0, 4095)))


@st.composite
def populations(draw, name: str, shape: tuple[int, ...], *, models=("lif",), per_neuron=False) -> Population:
    """A population of `shape` with random (layer or per-neuron) CUBA parameters."""
    rng = np.random.default_rng(draw(_seeds()))
    model = draw(st.sampled_from(list(models)))
    neuron = per_neuron and draw(st.booleans())

    def maybe_array(scalar, lo, hi):
        if neuron and draw(st.booleans()):
            return rng.integers(lo, hi + 1, size=shape)
        return scalar

    if model in SIGMA_DELTA_MODELS:
        return _sigma_delta_population(draw, name, shape, model, maybe_array)
    du = maybe_array(draw(_decay()), 0, 4095)
    dv = maybe_array(draw(_decay()), 0, 4095)
    vth = maybe_array(draw(_threshold()), 0, 300)
    bias_mant = draw(st.one_of(st.just(0), st.integers(-4096, 4095), st.integers(-50, 50)))
    bias_mant = maybe_array(bias_mant, -200, 200)
    bias_exp = maybe_array(draw(st.one_of(st.just(0), st.integers(0, 7))), 0, 7)
    kwargs = dict(du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp, model=model)
    if model == "lif_reset":
        kwargs["reset_interval"] = draw(st.integers(1, 12))
        kwargs["reset_offset"] = draw(st.integers(0, 15))
    if model == "ternary":
        hi = draw(st.integers(-100, 3000))
        lo = draw(st.integers(-3000, hi))
        kwargs["vth_hi"], kwargs["vth_lo"] = hi, lo
    return Population(name, shape, **kwargs)


def _sigma_delta_population(draw, name, shape, model, maybe_array) -> Population:
    """A Delta / SigmaDelta / Sigma population: small and large thresholds, biases, both activation
    modes, cumulative error on or off, exponents up to 7 + 7 (int32 wraps of the scaled input)."""
    if model == "sigma":
        return Population(name, shape, model=model)
    kwargs = dict(
        vth=draw(st.one_of(st.integers(0, 8), st.integers(0, 2**17 - 1))),
        cum_error=draw(st.booleans()),
        spike_exp=draw(st.integers(0, 7)),
        state_exp=draw(st.integers(0, 7)),
    )
    if model == "sigma_delta":
        kwargs["act_bias"] = maybe_array(draw(st.one_of(st.just(0), st.integers(-50, 50), st.integers(-(2**15), 2**15 - 1))), -300, 300)
        kwargs["act_mode"] = draw(st.sampled_from(["relu", "unit"]))
    return Population(name, shape, model=model, **kwargs)


def _graded(src) -> bool:
    """Whether `src` sends graded messages (a graded input or a non-spiking population)."""
    return src.num_message_bits > 0 if isinstance(src, InputPopulation) else not src.spiking


@st.composite
def weight_arrays(draw, shape: tuple[int, ...], *, density: float | None = None) -> np.ndarray:
    """Integer weights in -256..255 of one sign mode (mixed/excitatory/inhibitory), some zeros."""
    rng = np.random.default_rng(draw(_seeds()))
    mode = draw(st.sampled_from(["mixed", "mixed", "excitatory", "inhibitory"]))
    scale = draw(st.sampled_from([8, 64, 256]))
    if mode == "mixed":
        w = rng.integers(-scale, scale, size=shape)
        if scale == 256 and draw(st.booleans()):
            w.flat[0] = -256
    elif mode == "excitatory":
        w = rng.integers(0, min(scale, 255) + 1, size=shape)
    else:
        w = -rng.integers(0, scale + 1, size=shape)  # -256 is clipped to -255 by Lava
    if density is None:
        density = draw(st.sampled_from([1.0, 0.7, 0.3]))
    w = np.where(rng.random(shape) < density, w, 0)
    return w.astype(np.int64)


@st.composite
def conv_geometries(draw, in_shape: tuple[int, int, int], *, max_out_channels: int = 4) -> ConvGeometry:
    """A Conv2d geometry on a (C, H, W) source whose output is at least 1x1."""
    c_in, h, w = in_shape
    divisors = [g for g in range(1, c_in + 1) if c_in % g == 0]
    while True:
        groups = draw(st.sampled_from(divisors))
        c_out = groups * draw(st.integers(1, max(1, max_out_channels // groups)))
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        out_hw = ConvGeometry.output_hw((h, w), kernel, stride, padding, dilation)
        if min(out_hw) >= 1:
            return ConvGeometry(in_shape, (c_out, *out_hw), kernel, stride, padding, dilation, groups)


def _conv_projection(draw, name, src, dst_name, geometry, graded) -> Projection:
    bits = draw(st.integers(1, 8))
    kernel_shape = (geometry.out_shape[0], geometry.in_shape[0] // geometry.groups, *geometry.kernel)
    w = draw(weight_arrays(kernel_shape))
    # Lava's Conv neither truncates nor clips: hand it weights already on the `bits` grid.
    from snnc.ir.bits import truncate_weights

    while not np.array_equal(truncate_weights(w, bits), w):  # truncation can change the sign mode
        w = truncate_weights(w, bits)
    nmb = draw(st.integers(1, 8)) if graded else 0
    return Projection(name, src, dst_name, w, kind="conv", num_weight_bits=bits, num_message_bits=nmb, conv=geometry)


def _dense_projection(draw, name, src, dst, kind, opts: GraphOptions, graded_src: bool) -> Projection:
    shape = (dst.size, src.size)
    w = draw(weight_arrays(shape, density=0.4 if kind == "sparse" else None))
    delay = 0
    if opts.delays and draw(st.booleans()):
        if kind == "dense" and draw(st.booleans()):
            rng = np.random.default_rng(draw(_seeds()))
            delay = rng.integers(0, draw(st.integers(1, 5)) + 1, size=shape)
        else:
            delay = draw(st.integers(0, 5))
    graded = graded_src or (opts.graded and draw(st.integers(0, 3)) == 0)
    return Projection(
        name, src.name, dst.name,
        sp.csr_matrix(w) if kind == "sparse" else w,
        kind=kind,
        weight_exp=draw(st.one_of(st.integers(-2, 3), st.integers(-8, 7))),
        num_weight_bits=draw(st.one_of(st.just(8), st.integers(1, 8))),
        num_message_bits=draw(st.integers(1, 8)) if graded else 0,
        delay=delay,
    )


def _add_projection(draw, g: ChipGraph, proj: Projection, opts: GraphOptions) -> None:
    """Add `proj`, or (sign_split, sometimes) its positive and negative weights as two projections
    with the same source, target and delays, as the quantizer's split_sign stores a layer: with the
    same exponent, or (sometimes, as its exponent_groups do) each with its own."""
    if not opts.sign_split or proj.kind == "conv" or not draw(st.booleans()):
        g.add(proj)
        return
    w = proj.weights.toarray() if sp.issparse(proj.weights) else np.asarray(proj.weights)
    own_exponents = draw(st.booleans())
    for part, half in (("exc", np.maximum(w, 0)), ("inh", np.minimum(w, 0))):
        g.add(Projection(
            f"{proj.name}.{part}", proj.src, proj.dst, sp.csr_matrix(half) if proj.kind == "sparse" else half,
            kind=proj.kind, weight_exp=draw(st.integers(-2, 7)) if own_exponents else proj.weight_exp,
            num_weight_bits=proj.num_weight_bits,
            num_message_bits=proj.num_message_bits, delay=proj.delay,
        ))


# -- graphs -----------------------------------------------------------------------------------------
@st.composite
def chip_graphs(draw, **options) -> ChipGraph:
    """A random `ChipGraph`; keyword options are the fields of `GraphOptions`."""
    opts = GraphOptions(**options)
    g = ChipGraph()
    conv = "conv" in opts.kinds
    flat_kinds = [k for k in opts.kinds if k != "conv"] or ["dense"]
    n_inputs = draw(st.integers(1, opts.max_inputs))
    for i in range(n_inputs):
        spatial = conv and (i == 0 or draw(st.booleans()))
        shape = (
            (draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6)))
            if spatial
            else (draw(st.integers(1, opts.max_neurons)),)
        )
        nmb = draw(st.integers(1, 8)) if opts.graded and draw(st.booleans()) else 0
        g.add(InputPopulation(f"in{i}", shape, num_message_bits=nmb))

    n_pops = draw(st.integers(1, opts.max_populations))
    sources: list = list(g.inputs.values())
    for k in range(n_pops):
        name = f"p{k}"
        src = draw(st.sampled_from(sources))
        graded_src = _graded(src)
        use_conv = conv and len(src.shape) == 3 and draw(st.integers(0, 3)) > 0
        if use_conv:
            geometry = draw(conv_geometries(tuple(src.shape)))
            pop = draw(populations(name, geometry.out_shape, models=opts.models, per_neuron=opts.per_neuron))
            g.add(pop)
            g.add(_conv_projection(draw, f"c{k}", src.name, name, geometry, graded_src))
        else:
            size = draw(st.integers(1, opts.max_neurons))
            pop = draw(populations(name, (size,), models=opts.models, per_neuron=opts.per_neuron))
            g.add(pop)
            kind = draw(st.sampled_from(flat_kinds))
            _add_projection(draw, g, _dense_projection(draw, f"w{k}", src, pop, kind, opts, graded_src), opts)
        # Sometimes a second feed-forward input from another earlier node.
        others = [s for s in sources if s is not src]
        if others and draw(st.integers(0, 2)) == 0:
            extra = draw(st.sampled_from(others))
            _add_projection(draw, g, _dense_projection(
                draw, f"x{k}", extra, pop, draw(st.sampled_from(flat_kinds)), opts, _graded(extra),
            ), opts)
        sources.append(pop)

    if opts.recurrent:
        pops = list(g.populations.values())
        for j, pop in enumerate(pops):
            choice = draw(st.integers(0, 3))
            if choice == 0:
                continue
            src = pop if choice == 1 or j == len(pops) - 1 else draw(st.sampled_from(pops[j:]))
            if conv and src is pop and len(pop.shape) == 3 and draw(st.booleans()):
                # a "same" convolution of the population onto itself
                k = draw(st.sampled_from([1, 3]))
                groups = draw(st.sampled_from([1, pop.shape[0]]))
                same = ConvGeometry(pop.shape, pop.shape, (k, k), (1, 1), (k // 2, k // 2), (1, 1), groups)
                g.add(_conv_projection(draw, f"r{j}", pop.name, pop.name, same, _graded(pop)))
                continue
            _add_projection(draw, g, _dense_projection(draw, f"r{j}", src, pop, draw(st.sampled_from(flat_kinds)), opts, _graded(src)), opts)

    for name in g.populations:
        g.outputs[name] = OutputPort(name, "s")
    return g.validate()


@st.composite
def chip_inputs(draw, graph: ChipGraph, steps: int) -> dict[str, np.ndarray]:
    """One sample of input per input population: [steps, *shape] int64 (spikes or graded)."""
    out = {}
    for inp in graph.inputs.values():
        rng = np.random.default_rng(draw(_seeds()))
        rate = draw(st.sampled_from([0.05, 0.2, 0.5, 0.9]))
        shape = (steps, *inp.shape)
        active = rng.random(shape) < rate
        if inp.num_message_bits:
            top = (1 << int(inp.num_message_bits)) - 1
            values = rng.integers(-top, top + 1, size=shape)
            out[inp.name] = np.where(active, values, 0).astype(np.int64)
        else:
            out[inp.name] = active.astype(np.int64)
    return out


@st.composite
def chip_cases(draw, steps=None, **options) -> ChipCase:
    """A graph, its single-sample inputs and the number of steps (default 8..40)."""
    steps = st.integers(8, 40) if steps is None else steps
    graph = draw(chip_graphs(**options))
    t = draw(steps) if not isinstance(steps, int) else steps
    return ChipCase(graph, draw(chip_inputs(graph, t)), t, tags=dict(options))


def lava_processes(graph: ChipGraph) -> int:
    """OS processes tests/lava_oracle.py spawns for `graph`: LIF + 3 monitors per population, one
    per projection, a RingBuffer per conv-fed input and a bridge per weakly connected part that
    reads no shared (dense/sparse-only) input."""
    own = {i for i in graph.inputs if any(p.kind == "conv" for p in graph.outgoing(i))}
    parent = {n: n for n in [*graph.inputs, *graph.populations]}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for p in graph.projections.values():
        parent[find(p.src)] = find(p.dst)
    roots_with_pop = {find(n) for n in graph.populations}
    roots_shared = {find(n) for n in graph.inputs if n not in own}
    bridges = len(roots_with_pop - roots_shared)
    return 4 * len(graph.populations) + len(graph.projections) + len(own) + bridges


@st.composite
def chip_suites(draw, cases, *, max_processes: int = 60, max_cases: int = 6, min_cases: int = 1) -> list[ChipCase]:
    """Several cases that together fit one Lava run (all use the longest case's step count)."""
    out: list[ChipCase] = []
    used = 1  # the shared RingBuffer
    while len(out) < max_cases:
        case = draw(cases)
        need = lava_processes(case.graph)
        if out and used + need > max_processes and len(out) >= min_cases:
            break
        out.append(case)
        used += need
    steps = max(c.steps for c in out)
    return [_pad(c, steps) for c in out]


def _pad(case: ChipCase, steps: int) -> ChipCase:
    inputs = {}
    for name, arr in case.inputs.items():
        pad = np.zeros((steps - arr.shape[0], *arr.shape[1:]), arr.dtype)
        inputs[name] = np.concatenate([arr, pad])
    return replace(case, inputs=inputs, steps=steps)


# -- product and adaptive-threshold neurons (Lava ProdNeuron / ATRLIF) ---------------------------------
@st.composite
def programmable_graphs(draw, max_inputs: int = 5, max_neurons: int = 4) -> ChipGraph:
    """input x -> product `prod` (ports a_in1, a_in2) and atrlif `alif` -> LIF `out` reading both.

    The product's second port reads either x or the atrlif's spikes (a spiking gate). Weight
    exponents and graded payloads reach the int32 wrap of the product; thresholds, decays and
    theta steps cover Lava's 12-bit ranges.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_in, n = draw(st.integers(1, max_inputs)), draw(st.integers(1, max_neurons))
    bits = draw(st.sampled_from([0, 8]))
    decays = st.sampled_from([0, 1, 64, 512, 2048, 4000, 4095])
    g = ChipGraph()
    g.add(InputPopulation("x", (n_in,), num_message_bits=bits))
    g.add(Population("prod", (n,), model="product", vth=draw(st.sampled_from([0, 1, 1000, 2**16])),
                     prod_exp=draw(st.sampled_from([0, 1, 5, 12, 23]))))
    g.add(Population("alif", (n,), model="atrlif", du=draw(decays), dv=draw(decays), vth=draw(st.integers(0, 4095)),
                     theta_step=draw(st.sampled_from([0, 1, 50, 4095])), d_theta=draw(decays), d_r=draw(decays),
                     bias_mant=rng.integers(-200, 200, n) if draw(st.booleans()) else 0, bias_exp=draw(st.integers(0, 3))))
    g.add(Population("out", (2,), du=draw(decays), dv=draw(decays), vth=draw(st.sampled_from([1, 100, 10000]))))

    def w(rows, cols):
        return rng.integers(-256, 256, (rows, cols))

    exps = st.integers(-8, 7)
    g.add(Projection("in1", "x", "prod", w(n, n_in), num_message_bits=bits, weight_exp=draw(exps), port="a_in1"))
    if draw(st.booleans()):
        g.add(Projection("in2", "x", "prod", w(n, n_in), num_message_bits=bits, weight_exp=draw(exps), port="a_in2"))
    else:
        g.add(Projection("gate", "alif", "prod", w(n, n), weight_exp=draw(exps), port="a_in2"))
    g.add(Projection("ina", "x", "alif", rng.integers(-64, 256, (n, n_in)), num_message_bits=bits, weight_exp=draw(st.integers(0, 4))))
    g.add(Projection("p_out", "prod", "out", w(2, n), num_message_bits=24, weight_exp=draw(exps)))
    g.add(Projection("a_out", "alif", "out", w(2, n), weight_exp=draw(exps)))
    g.outputs["out"] = OutputPort("out")
    return g.validate()


def programmable_inputs(graph: ChipGraph, steps: int, seed: int) -> np.ndarray:
    """[steps, n] values for input x: graded +-255 payloads or 0/1 spikes (about half firing)."""
    rng = np.random.default_rng(seed)
    inp = graph.inputs["x"]
    if inp.num_message_bits:
        return rng.integers(-255, 256, (steps, inp.size))
    return (rng.random((steps, inp.size)) < 0.5).astype(np.int64)
