"""`SimProgram`: runs a planned chip graph over chunks of time steps.

Time convention (shared with `tests/lava_oracle.py`): input index t (0-based) is what Lava's
RingBuffer sends at Lava step t+1, and output/probe index t is the state after Lava step t+1. A
spike sent at index t therefore changes the target's `u` at index t+1+delay; nothing arrives at
index 0 (except through a `direct` input projection, which delivers input index t at index t).

Per chunk of C steps (C chosen so the chunk buffers stay within `memory_budget_mb`), components
run in topological order. Every link from an earlier component or an input is evaluated for all
B*C (sample, step) rows at once and added, as Lava's synapse process would send it (weight_exp
shift, int32 / 24-bit wrap), into an int32 input buffer at time offset 1+delay; what lands past
the chunk is carried into the next one. A link is evaluated event-driven (numba: the weight rows
or CSC columns of the nonzero messages) when activity is sparse, and with a BLAS matmul or a torch
conv2d when it is dense; float arithmetic is used only where it is exact (every partial sum is
bounded by max-row-L1(|W|) * max|message|, which must stay below 2**24 for float32, 2**53 for
float64). Then a numba kernel runs the neuron dynamics over the chunk; a recurrent component
steps its internal projections one time step at a time inside the kernel.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np

from snnc.backends.base import (
    Activity,
    PopulationActivity,
    ProjectionActivity,
    RunResult,
    normalize_inputs,
)
from snnc.ir.chip import ChipGraph
from snnc.ir.conv import torch_threads
from snnc.ir.errors import BackendError, ShapeError

from . import buffers
from . import kernels as K
from . import kernels_atrlif, kernels_prodneuron, kernels_refractory, kernels_rf
from . import kernels_conv, kernels_sdn
from .plan import F32_EXACT, F64_EXACT, Plan, chunk_steps, missing_probe

# numba's OpenMP workers sleep between the sim's parallel kernels instead of spinning (libgomp's
# default, ~300k spins): a chunk runs several short kernels with serial Python and BLAS between
# them, and spinning workers hold cores that BLAS, the next kernel's other thread and other
# processes need. On the loaded 2-core machine a batch-64 run of bench_layer's 1M-synapse layer
# took 90 ms with spinning workers, 23 ms without (its one-thread CPU time). libgomp reads this when
# numba first starts its threads (the first run); a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_BUDGET = 64 * 2**20  # chunk buffers the allocator reuses and the caches hold (measured: benchmarks/bench_sdnn.py)
DEFAULT_MAX_CHUNK = 1024
# The cost model that picks BLAS/torch or the event kernels per sample: times in ns on the 2-core
# development machine. MAC and ACCUMULATE: medians of 3 runs of `benchmarks/bench_layer.py
# --calibrate` (2026-12-04); the event constants keep the ratio to MAC that the same script measures
# with one thread each (medians of 3 runs, 2026-12-04, int8 weight rows at 50 % density): the
# crossover for a 1000-source layer is then ~80 % nonzero messages for spikes, ~32 % for payloads.
MAC_NS = 0.021  # one float32 multiply-add of a BLAS matmul (sgemm, 6400 x 1000 x 1000)
EVENT_NS = 0.028  # one weight added by `gather_dense` (int8 rows summed in int16 lanes, binary message)
EVENT_GRADED_NS = 0.070  # the same for a graded message (weight times payload)
ACCUMULATE_NS = 1.25  # one BLAS result turned into what the projection sends (`accumulate`)
# conv links (`benchmarks/bench_conv.py --calibrate`: CPU time of one thread, fresh pages for each
# call's buffers as in a run; medians of 2 runs, 2026-12-04):
CONV_MAC_NS = 0.067  # one float32 multiply-add of torch's conv2d
CONV_TARGET_NS = 5.8  # per target neuron of the dense path: torch's output and columns, the conversion (accumulate)
CONV_EVENT_NS = 12.4  # one nonzero message in `kernels_conv.scatter_conv`
CONV_RUN_NS = 2.5  # one run of kernel columns it reaches
CONV_LANE_NS = 0.08  # one weight of that run added
CONV_SEND_NS = 1.5  # one target's sum sent (per row with messages)
SYNAPSE_MODES = ("auto", "events", "dense")  # how links are evaluated (results are identical)
SERIAL_WORK = 1 << 21  # runs with fewer (sample, step, neuron) items per chunk use one thread,
PARALLEL_EVENT_NS = 500_000  # except a `gather_dense` call estimated (EVENT_NS) to take longer than this on one


class _ChunkSource:
    """One chunk of a source's messages: the dense array [B, C, n], its largest |value| and its
    number of nonzero messages; the per-row counts, the CSR events and the float copies for
    BLAS/torch are made on first use and shared by every link that reads the source. An input's
    synaptic ops per row (`fanout` [P, n] given) come with its events, or from the dense rows."""

    def __init__(self, dense: np.ndarray, peak: float, nnz: int, counts: np.ndarray | None = None,
                 fanout: np.ndarray | None = None):
        self.dense = dense
        self.peak = peak
        self.nnz = nnz
        self.n = dense.shape[2]
        self._counts = counts
        self._fanout = fanout if fanout is not None else np.zeros((0, self.n), np.int64)
        self._ops: np.ndarray | None = None
        self._rows: np.ndarray | None = None
        self._events: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._float: dict = {}
        self._grain: float | None = None

    def rows(self) -> np.ndarray:
        """[B*C, n] C-contiguous view (copied only if the chunk is a strided member view)."""
        if self._rows is None:
            x = self.dense if self.dense.flags.c_contiguous else np.ascontiguousarray(self.dense)
            self._rows = x.reshape(-1, self.n)
        return self._rows

    def counts(self) -> np.ndarray:
        """Nonzero messages per row (sample, step) [B*C]."""
        if self._counts is None:
            self._counts = np.empty(self.dense.shape[0] * self.dense.shape[1], np.int64)
            K.count_events(self.rows(), self._counts)
        return self._counts

    def per_sample(self) -> np.ndarray:
        """Nonzero messages per sample over the chunk [B]."""
        return self.counts().reshape(self.dense.shape[0], -1).sum(axis=1)

    def events(self, values: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ptr, idx, val): row r's nonzero messages are sources idx[ptr[r]:ptr[r+1]] (int32) and,
        when `values` (a graded link reads them), values val (int32; else empty)."""
        if self._events is None or (values and self._events[2].size < self._events[1].size):
            counts = self.counts()
            ptr = np.zeros(counts.size + 1, np.int64)
            np.cumsum(counts, out=ptr[1:])
            idx, val = np.empty(ptr[-1], np.int32), np.empty(ptr[-1] if values else 0, np.int32)
            ops = np.zeros((counts.size, self._fanout.shape[0]), np.int64)
            K.fill_events(self.rows(), ptr, idx, val, self._fanout, ops)
            self._events = (ptr, idx, val)
            self._ops = ops
        return self._events

    def ops(self) -> np.ndarray:
        """Synaptic ops per row and outgoing projection [B*C, P]: summed along the events when a
        link made them, else over the dense rows."""
        if self._ops is None:
            self._ops = np.zeros((self.dense.shape[0] * self.dense.shape[1], self._fanout.shape[0]), np.int64)
            K.row_ops(self.rows(), self._fanout, self._ops)
        return self._ops

    def granularity(self) -> float:
        """The largest power of two that divides every message of the chunk (1 for none sent).
        Sigma-delta messages are often multiples of 2**spike_exp: divided by this they are smaller
        integers, so float32 can sum them exactly where the raw values would need float64."""
        if self._grain is None:
            bits = int(np.bitwise_or.reduce(self.rows().astype(np.int64), axis=None))
            self._grain = float(bits & -bits) if bits else 1.0
        return self._grain

    def dense_float(self, dtype, absolute: bool, grain: float = 1.0) -> np.ndarray:
        """The messages (or their |values|) divided by `grain` (a power of two dividing them all:
        exact), in `dtype`."""
        key = (np.dtype(dtype).str, absolute, grain)
        if key not in self._float:
            x = np.abs(self.dense) if absolute else self.dense
            if grain != 1.0:
                x = x / grain
            self._float[key] = np.ascontiguousarray(x, dtype=dtype)
        return self._float[key]


def _torch():
    import torch

    return torch


class SimProgram:
    """A chip graph ready to run on the CPU, bit-exact with Lava 0.10.0 fixed_pt (made by
    `SimBackend.build`, which checks the graph first)."""

    backend = "sim"
    reusable = True  # `run` keeps no state between calls: snnc.backends.program_cache may keep it

    def __init__(self, graph: ChipGraph, *, chunk: int | None = None, memory_budget_mb: float | None = None,
                 max_chunk: int = DEFAULT_MAX_CHUNK, synapses: str = "auto"):
        if synapses not in SYNAPSE_MODES:
            raise BackendError("unknown synapses mode", where="sim backend", expected=SYNAPSE_MODES, got=synapses)
        self.graph = graph
        self.plan = Plan(graph)
        self.synapses = synapses
        self.chunk = chunk
        self.budget = int((memory_budget_mb or DEFAULT_BUDGET / 2**20) * 2**20)
        self.max_chunk = int(max_chunk)

    # -- public -----------------------------------------------------------------------------------
    def run(self, inputs, steps: int | None = None, probes: Sequence[str] = (), activity: bool = True) -> RunResult:
        """Run a batch. `inputs`: [batch, T, *shape] (or [T, *shape]) or {input name: array}.
        Without `activity` the result has no activity counters (None), and the fanout tables they
        are counted from are not made: for a caller that reads only outputs and probes."""
        plan = self.plan
        graph = self.graph
        shapes = {name: inp.shape for name, inp in graph.inputs.items()}
        if shapes:
            data, batch, steps = normalize_inputs(inputs, shapes, steps)
        else:
            if steps is None:
                raise ShapeError("a graph without inputs needs `steps`", where="sim run", hint="pass steps=T")
            data, batch, steps = {}, 1, int(steps)
        requests = self._requests(probes)
        chunk = self.chunk or chunk_steps(plan, batch, steps, self.budget, self.max_chunk)
        chunk = max(1, min(int(chunk), steps))
        import numba

        threads = max(1, numba.get_num_threads())
        state = _RunState(plan, batch, steps, chunk, requests, threads, activity)
        width = sum(c.n for c in plan.components) + sum(i.n for i in plan.inputs.values())
        # Small chunks are not worth waking the worker threads (costly on a busy machine).
        if batch * chunk * width < SERIAL_WORK:
            state.threads = 1
        clean = []
        try:
            for t0 in range(0, steps, chunk):
                c = min(chunk, steps - t0)
                self._chunk(state, data, t0, c)
            for comp, acc in zip(plan.components, state.acc):
                # what landed past the last step; the kernels cleared the rest (or each chunk's end did)
                acc[:, : comp.max_link_delay + 1] = 0
                clean.append(acc)
        finally:
            state.use_threads(threads)
            state.lease.release(clean)  # the input sums go back all zero: the next run need not clear them
        return self._result(state, requests, activity)

    # -- internals --------------------------------------------------------------------------------
    def _requests(self, probes: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{key: (node, var)} for the outputs and the probes."""
        plan = self.plan
        req: dict[str, tuple[str, str]] = {}
        for name, port in self.graph.outputs.items():
            req[f"output:{name}"] = (port.population, port.var)
        for probe in probes:
            if not isinstance(probe, str):
                raise missing_probe(plan, repr(probe))
            node, _, var = probe.partition("/")
            var = var or "s"
            if node in self.graph.populations and var in ("s", "u", "v"):
                req[f"probe:{probe}"] = (node, var)
            elif node in self.graph.populations and var == "a":
                if any(node in c.members and c.recurrent for c in plan.components):
                    raise BackendError("the synaptic input 'a' is recorded for feed-forward populations only",
                                       where=f"probe {probe!r}", hint="a recurrent component adds its loop's input "
                                       "inside the compiled kernel; replay the loop's spikes as inputs to read it")
                req[f"probe:{probe}"] = (node, var)
            elif node in self.graph.inputs and var == "s":
                req[f"probe:{probe}"] = (node, "s")
            else:
                raise missing_probe(plan, probe)
        for key, (node, var) in req.items():
            pop = self.graph.populations.get(node)
            if pop is not None and pop.model == "product" and var != "s":
                raise BackendError("a product population keeps no state to read", where=f"{key.partition(':')[2]} ({node}/{var})",
                                   expected=f"{node}/s (its graded output)", got=var,
                                   hint="Lava's ProdNeuron computes (a1 * a2) >> exp afresh every step; read its output")
        return req

    def _chunk(self, state: "_RunState", data: Mapping[str, np.ndarray], t0: int, c: int) -> None:
        plan = self.plan
        batch = state.batch
        lease = buffers.Lease()  # this chunk's message buffers, for the next chunk once it ends
        sources: dict[str, _ChunkSource] = {}
        for name, inp in plan.inputs.items():
            state.use_threads(state.threads if batch * c * inp.n >= SERIAL_WORK else 1)  # as for a component
            x = data[name][:, t0 : t0 + c]
            x = K.message_array(x).reshape(batch, c, inp.n)  # the kernels' dtypes, whatever the caller passed
            nnz = np.zeros(batch * c, np.int64)
            bad, peak = K.check_input(x.reshape(batch * c, inp.n), inp.graded, float(inp.limit), nnz)
            if bad:
                self._bad_input(name, data[name], inp)
            total = int(nnz.sum())
            state.input_counts[name] += total
            sources[name] = _ChunkSource(x, float(peak), total, nnz, state.input_fanout[name])
            if (name, "s") in state.records:
                state.store(name, "s", t0, c, x)

        for ci, comp in enumerate(plan.components):
            # the same rule per component: a small layer of a large network runs on one thread too
            width = max([comp.n, *(sources[link.src].n for link in comp.links)])
            state.use_threads(state.threads if batch * c * width >= SERIAL_WORK else 1)
            acc = state.acc[ci]
            for link in comp.links:
                self._apply(link, sources[link.src], acc, batch, c, state)
            for name in comp.members:  # probe "name/a": the int32 input sum its neurons take at each step
                if (name, "a") in state.records:
                    state.store(name, "a", t0, c, acc[:, :c, comp.offsets[name] : comp.offsets[name] + comp.sizes[name]])
            s_buf = lease.empty((batch, c, comp.n), _message_dtype(comp))
            u_buf = np.empty((batch, c, comp.n), np.int32) if state.write_u[ci] else state.dummy32
            v_buf = np.empty((batch, c, comp.n), np.int32) if state.write_v[ci] else state.dummy32
            units, block = state.units[ci]
            spikes_t = np.zeros((units, len(comp.members), c), np.int64)
            ops_t = np.zeros((units, len(comp.outgoing), c), np.int64)
            g = comp.groups
            p = comp.params
            sd_peak = np.zeros(units, np.int64)  # a sigma-delta kernel's largest |message| per work unit
            cleared = False
            if comp.prog:
                _scan_programmable(comp, state.prog_state[ci], acc, c, s_buf, u_buf, v_buf, state.write_u[ci],
                                   state.write_v[ci], state.fanout[ci], spikes_t, state.counts[ci], state.active[ci], ops_t)
            elif comp.sdn:
                kernels_sdn.scan_sdn(
                    acc, t0, c, state.sd_state[ci], **comp.sdn, s_out=s_buf, u_out=u_buf, v_out=v_buf,
                    write_u=state.write_u[ci], write_v=state.write_v[ci], fanout=state.fanout[ci], block=block,
                    spikes_t=spikes_t, counts=state.counts[ci], active=state.active[ci], ops_t=ops_t, peak=sd_peak,
                )
                cleared = True  # as scan_ff
            elif not comp.recurrent:
                K.scan_ff(
                    acc, t0, c, state.u_state[ci], state.v_state[ci], state.p_state[ci],
                    p["du"], p["dv"], p["vth_e"], p["bias"], int(p["model"][0]), int(p["r_interval"][0]),
                    int(p["r_offset"][0]), p["hi_e"], p["lo_e"], int(p["reset"][0]), p["v_reset"], int(p["r_shift"][0]),
                    s_buf, u_buf, v_buf, state.write_u[ci], state.write_v[ci],
                    state.fanout[ci], block, spikes_t, state.counts[ci], state.active[ci], ops_t,
                )
                cleared = True  # scan_ff clears the acc rows it reads
            else:
                K.scan(
                    acc, t0, c, state.u_state[ci], state.v_state[ci], state.p_state[ci],
                    p["du"], p["dv"], p["vth_e"], p["bias"], p["model"], p["r_interval"], p["r_offset"], p["hi_e"], p["lo_e"],
                    p["reset"], p["v_reset"], p["r_shift"],
                    g["src_lo"], g["src_hi"], g["dst_lo"], g["dst_hi"], g["colptr_off"], g["delay"], g["shift"], g["mode"],
                    g["graded"], g["colptr"], g["rows"], g["wvals"], state.hist[ci],
                    s_buf, u_buf, v_buf, state.write_u[ci], state.write_v[ci],
                    state.fanout[ci], block, state.member_of[ci],
                    spikes_t, state.counts[ci], state.active[ci], ops_t,
                )
            per_member = spikes_t.sum(axis=0)  # [M, C]
            # scan/scan_ff/scan_sdn count each member's nonzero messages per (unit, step): per (sample, step)
            # that is the row count the event kernels need, so no extra pass over the spikes
            per_row = None if comp.prog else spikes_t.reshape(batch, -1, len(comp.members), c).sum(axis=1)
            for m, name in enumerate(comp.members):
                state.spikes_t[name][t0 : t0 + c] += per_member[m]
            if state.activity:
                state.comp_ops[ci][:, t0 : t0 + c] += ops_t.sum(axis=0)  # [projection, step]
            for m, name in enumerate(comp.members):
                off, n = comp.offsets[name], comp.sizes[name]
                view = s_buf if len(comp.members) == 1 else s_buf[:, :, off : off + n]
                # spikes are 0/+-1; a relay's graded payloads bound the exact-float check by their size
                if comp.sdn:  # a single member, its largest |message| from the kernel
                    peak = float(sd_peak.max(initial=0))
                else:
                    peak = 1.0 if self.graph.populations[name].spiking else float(np.abs(view).max(initial=0))
                counts = None if per_row is None else np.ascontiguousarray(per_row[:, m]).reshape(-1)
                sources[name] = _ChunkSource(view, peak, int(per_member[m].sum()), counts)
                state.store(name, "s", t0, c, view)
                if state.write_u[ci]:
                    state.store(name, "u", t0, c, u_buf[:, :, off : off + n])
                if state.write_v[ci]:
                    state.store(name, "v", t0, c, v_buf[:, :, off : off + n])
            # Carry what lands after this chunk into the next one, clear the rest.
            if comp.links and cleared:  # rows [0, c) are clear already
                d = comp.max_link_delay
                acc[:, : d + 1] = acc[:, c : c + d + 1]
                acc[:, max(c, d + 1) : c + d + 1] = 0
            elif comp.links:
                d = comp.max_link_delay
                tail = acc[:, c : c + d + 1].copy()
                acc[:] = 0
                acc[:, : d + 1] = tail
        for name, inp in plan.inputs.items():  # an input's synaptic ops, along its events if a link made them
            if state.activity and sources[name].nnz and inp.outgoing:
                state.input_ops[name][:, t0 : t0 + c] += sources[name].ops().reshape(batch, c, -1).sum(axis=0).T
        sources.clear()
        lease.release()

    def _apply(self, link, src: "_ChunkSource", acc: np.ndarray, batch: int, c: int, state: "_RunState") -> None:
        """Add one link's contribution for all steps of the chunk into the component's buffer.

        Per sample, by the cost model (`event_limit`): a BLAS matmul / torch conv over all its
        steps (exact while every partial sum stays below 2**24 in float32, 2**53 in float64), or
        the event kernels, which touch only the weights of its nonzero messages. Both give the
        same integers, so the choice is about time only."""
        if src.nnz == 0:
            return  # nothing sent: every synapse process sends 0
        if link.latency == 0:  # a direct input projection is the identity: each value is its own sum
            x = src.dense_float(np.float64 if src.dense.dtype == np.float64 else np.float32, False)
            K.accumulate(x.reshape(batch * c, -1), np.arange(batch), c, acc, 0, link.n_off, link.shift, link.mode)
            return
        bound = link.l1 * src.peak
        t_off = link.latency + link.delay
        floats_exact = bound < F64_EXACT and (link.dense is not None or link.kind == "conv")
        if not floats_exact or self.synapses == "events":
            blas = np.zeros(batch, np.bool_)
        elif self.synapses == "dense":
            blas = np.ones(batch, np.bool_)
        else:
            blas = src.per_sample() > event_limit(link, src.n) * c
        if blas.any():
            # float32 sums integers exactly below 2**24: messages that share a power-of-two factor
            # are divided by it (exact), summed in float32 when that bound holds, then scaled back
            # (a product with a power of two is exact in floats)
            grain = src.granularity() if bound >= F32_EXACT else 1.0
            dtype = np.float32 if bound / grain < F32_EXACT else np.float64
            if dtype == np.float64:
                grain = 1.0
            samples = np.flatnonzero(blas)
            x = src.dense_float(dtype, link.abs_msg, grain)
            if samples.size < batch:
                x = x[samples]
            rows = samples.size * c
            if link.kind == "conv":
                y = self._conv(link, x, rows, dtype)
            else:
                y = x.reshape(rows, -1) @ link.dense_t(dtype)
            if grain != 1.0:
                y *= np.float32(grain)
            K.accumulate(y, samples, c, acc, t_off, link.n_off, link.shift, link.mode)
            if samples.size == batch:
                return
        skip = blas.view(np.uint8)
        if link.kind == "conv":  # from the kernel, over the nonzero messages of the dense chunk
            kernels_conv.scatter_conv(src.rows(), skip, link.graded, bound >= kernels_conv.I32_EXACT, *link.conv_kernel(),
                                      c, acc, t_off, link.n_off)
            return
        ptr, idx, val = src.events(link.graded)
        if link.dense is not None:  # a long one on every thread, even in a run small enough for one
            long = ptr[-1] * link.n_dst * (EVENT_GRADED_NS if link.graded else EVENT_NS) > PARALLEL_EVENT_NS
            before = state.current
            if long:
                state.use_threads(state.all_threads)
            K.gather_dense(ptr, idx, val, link.graded, skip, *link.event_weights(), c, acc, t_off,
                           link.n_off, link.shift, link.mode)
            state.use_threads(before)
        else:
            colptr, rows_of, wvals = link.csc()
            K.scatter_sparse(ptr, idx, val, link.graded, skip, colptr, rows_of, wvals, link.n_dst, c, acc, t_off,
                             link.n_off, link.shift, link.mode)

    @staticmethod
    def _conv(link, x: np.ndarray, rows: int, dtype) -> np.ndarray:
        """Conv for all rows with torch. Exact: direct/im2col algorithms only (NNPACK, which may
        use Winograd/FFT, is switched off) and every partial sum is an integer below 2**24
        (float32) or 2**53 (float64)."""
        torch = _torch()
        g = link.conv.conv
        tdtype = torch.float32 if dtype == np.float32 else torch.float64
        inp = torch.from_numpy(x).reshape(rows, *g.in_shape)
        with torch.no_grad(), torch.backends.nnpack.flags(enabled=False), torch_threads(torch, rows * link.dense_macs):
            out = torch.nn.functional.conv2d(
                inp, link.conv_weight(torch, tdtype), stride=g.stride, padding=g.padding,
                dilation=g.dilation, groups=g.groups,
            )
        return out.reshape(rows, -1).numpy()

    def _bad_input(self, name: str, arr: np.ndarray, inp) -> None:
        values = np.asarray(arr)
        if inp.graded:
            bad = (values != np.round(values)) | (np.abs(values) > inp.limit)
            expected = f"integers with |value| <= {inp.limit} (num_message_bits={inp.limit.bit_length()})"
            hint = "quantize the graded input to the payload's integer range"
        else:
            bad = (values != 0) & (values != 1)
            expected = "binary spikes (0 or 1)"
            hint = "binary inputs carry spikes only; give the input population num_message_bits > 0 for graded values"
        idx = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else ()
        raise ShapeError(
            "input values out of range",
            where=f"input {name!r} at index {list(idx)}",
            expected=expected,
            got=values[idx].item() if idx else None,
            hint=hint,
        )

    def _result(self, state: "_RunState", requests, activity: bool) -> RunResult:
        graph = self.graph
        outputs, probe_out = {}, {}
        for key, (node, var) in requests.items():
            arr = state.records[(node, var)]
            if key.startswith("output:"):
                outputs[key[len("output:") :]] = arr
            else:
                probe_out[key[len("probe:") :]] = arr
        return RunResult(
            outputs=outputs, probes=probe_out, activity=self._activity(state) if activity else None, backend="sim",
            time_shift=int(graph.meta.get("time_shift", 0) or 0),
        )

    def _activity(self, state: "_RunState") -> Activity:
        """The run's activity counters, from what the kernels counted."""
        graph, plan = self.graph, self.plan
        act = Activity(batch=state.batch, steps=state.steps)
        for ci, comp in enumerate(plan.components):
            counts = state.counts[ci].sum(axis=0)
            active = state.active[ci].sum(axis=0)
            for m, name in enumerate(comp.members):
                off, n = comp.offsets[name], comp.sizes[name]
                per_step = state.spikes_t[name]
                act.populations[name] = PopulationActivity(
                    neurons=n,
                    neuron_updates=n * state.steps * state.batch,
                    active_updates=int(active[m]),
                    spikes=int(per_step.sum()),
                    spikes_per_step=per_step,
                    spike_counts=counts[off : off + n].copy(),
                )
        sent = {name: int(spikes.sum()) for name, spikes in state.spikes_t.items()} | state.input_counts
        totals = dict(zip(state.ops, np.concatenate([ops.sum(axis=1) for ops in [*state.comp_ops, *state.input_ops.values()]]).tolist()))
        for name, proj in graph.projections.items():
            act.projections[name] = ProjectionActivity(
                synaptic_ops=totals[name], messages_in=sent[proj.src], synaptic_ops_per_step=state.ops[name],
            )
        return act


def _message_dtype(comp) -> type:
    """The dtype of a component's messages (`arg_types.MESSAGE_DTYPES`): uint8 for the 0/1 spikes of a
    feed-forward LIF-like population (a quarter of the bytes to write and read), float64 for
    sigma-delta's and a product's int32 payloads (exact in float64 only), else float32."""
    if comp.sdn or (comp.prog and comp.prog["kind"] == "product"):
        return np.float64
    if not comp.prog and not comp.recurrent and int(comp.params["model"][0]) in (K.MODEL_LIF, K.MODEL_RESET):
        return np.uint8
    return np.float32


def _scan_programmable(comp, prog_state, acc, c, s_buf, u_buf, v_buf, write_u, write_v, fanout, spikes_t, counts, active, ops_t):
    """One chunk of a programmable component (`kernels_prodneuron` / `_refractory` / `_rf` / `_atrlif`)."""
    args = {k: v for k, v in comp.prog.items() if k != "kind"}
    if comp.prog["kind"] == "product":
        kernels_prodneuron.scan_product(acc, c, args["exp"], args["vth"], s_buf, fanout, spikes_t, counts, active, ops_t)
    elif comp.prog["kind"] == "rf":
        kernels_rf.scan_rf(acc, c, prog_state, **args, s_out=s_buf, u_out=u_buf, v_out=v_buf, write_u=write_u, write_v=write_v,
                           fanout=fanout, spikes_t=spikes_t, counts=counts, active=active, ops_t=ops_t)
    elif comp.prog["kind"] == "lif_refractory":
        kernels_refractory.scan_refractory(acc, c, prog_state, **args, s_out=s_buf, u_out=u_buf, v_out=v_buf, write_u=write_u,
                                           write_v=write_v, fanout=fanout, spikes_t=spikes_t, counts=counts, active=active,
                                           ops_t=ops_t)
    else:
        kernels_atrlif.scan_atrlif(acc, c, prog_state, **args, s_out=s_buf, u_out=u_buf, v_out=v_buf, write_u=write_u,
                                   write_v=write_v, fanout=fanout, spikes_t=spikes_t, counts=counts, active=active, ops_t=ops_t)


def _initial_prog_state(prog: dict | None, batch: int, n: int) -> np.ndarray | None:
    """The persistent state of a stateful programmable component (atrlif, lif_refractory, rf/rf_iz)."""
    if prog and prog["kind"] == "atrlif":
        return kernels_atrlif.initial_state(batch, n, prog["theta_0"])
    if prog and prog["kind"] == "lif_refractory":
        return kernels_refractory.initial_state(batch, n)
    if prog and prog["kind"] == "rf":
        return kernels_rf.initial_state(batch, n)
    return None


def event_limit(link, n_src: int) -> float:
    """Nonzero messages per step above which a sample is cheaper on BLAS/torch than on the event
    kernels: where the matmul's cost per row (n_src x n_dst multiply-adds, and the conversion of
    its n_dst results) equals the events' (n_dst weights each; for a conv, its taps scattered)."""
    if link.kind == "conv":
        return conv_event_limit(link)
    return (n_src * MAC_NS + ACCUMULATE_NS) / (EVENT_GRADED_NS if link.graded else EVENT_NS)


def conv_event_limit(link) -> float:
    """`event_limit` of a conv link: torch's multiply-adds for one row (and per target its output,
    columns and conversion, in fresh pages) against the kernel's cost per nonzero message (per
    kernel row it reaches, its runs of columns, each a vector of weights added), after the kernel's
    own cost per row (its send)."""
    if "event_limit" not in link._cache:  # once per link: the means below cost more than the rest of _apply
        wt, geo, _, ny, tx, nx = link.conv_kernel()
        lanes = float(tx[:, :, 2].sum(axis=1).mean()) * (geo[kernels_conv.C_OUT] // geo[kernels_conv.GROUPS])
        per_event = CONV_EVENT_NS + float(ny.mean()) * (float(nx.mean()) * CONV_RUN_NS + lanes * CONV_LANE_NS)
        link._cache["event_limit"] = (link.dense_macs * CONV_MAC_NS + link.n_dst * (CONV_TARGET_NS - CONV_SEND_NS)) / per_event
    return link._cache["event_limit"]


class _RunState:
    """Buffers of one run: neuron state, chunk buffers, records and counters."""

    def __init__(self, plan: Plan, batch: int, steps: int, chunk: int, requests, threads: int, activity: bool = True):
        self.batch, self.steps, self.chunk = batch, steps, chunk
        # what the kernels count synaptic ops with: the plan's fanout tables, or none at all (P = 0)
        self.activity = activity
        self.fanout = [comp.fanout if activity else np.zeros((0, comp.n), np.int64) for comp in plan.components]
        self.input_fanout = {name: inp.fanout if activity else np.zeros((0, inp.n), np.int64) for name, inp in plan.inputs.items()}
        graph = plan.graph
        wanted = {(node, var) for node, var in requests.values()}
        self.records: dict[tuple[str, str], np.ndarray] = {}
        for node, var in wanted:
            shape = graph.source(node).shape
            spiking = node in graph.populations and graph.populations[node].spiking
            dtype = np.int8 if var == "s" and spiking else np.int32  # a relay's "s" is its graded payload
            self.records[(node, var)] = np.zeros((batch, steps, *shape), dtype)
        self.input_counts = {name: 0 for name in plan.inputs}
        self.threads = threads  # what a large component runs on (see SimProgram.run)
        self.all_threads = threads  # what a long event kernel may use even in a small run (see SimProgram._apply)
        self.current = threads  # what numba's kernels run on now (`use_threads`)
        self.lease = buffers.Lease()  # the large buffers, given back when the run ends (SimProgram.run)
        self.acc = []
        self.u_state, self.v_state, self.p_state, self.hist = [], [], [], []
        self.write_u, self.write_v, self.units, self.member_of = [], [], [], []
        self.counts, self.active = [], []
        self.dummy32 = np.zeros((1, 1, 1), np.int32)
        self.prog_state = [_initial_prog_state(c.prog, batch, c.n) for c in plan.components]
        self.sd_state = [np.zeros((4, batch, c.n) if c.sdn else (4, 1, 1), np.int32) for c in plan.components]
        for comp in plan.components:
            n = comp.n
            self.acc.append(self.lease.zeros((batch, chunk + comp.max_link_delay + 1, comp.acc_width), np.int32))
            wu = any((m, "u") in wanted for m in comp.members)
            wv = any((m, "v") in wanted for m in comp.members)
            self.write_u.append(wu)
            self.write_v.append(wv)
            self.u_state.append(np.zeros((batch, n), np.int32))
            self.v_state.append(np.zeros((batch, n), np.int32))
            self.p_state.append(np.zeros((batch, n), np.int8))
            self.hist.append(np.zeros((batch, comp.hist_len, n), np.float32) if comp.recurrent else np.zeros((1, 1, 1), np.float32))
            if comp.recurrent or batch >= 2 * threads:
                n_blocks = 1
            else:
                n_blocks = max(1, min(math.ceil(n / 32), math.ceil(2 * threads / batch)))
            block = math.ceil(n / n_blocks)
            n_blocks = math.ceil(n / block)
            units = batch * n_blocks
            self.units.append((units, block))
            member = np.zeros(n, np.int64)
            for m, name in enumerate(comp.members):
                member[comp.offsets[name] : comp.offsets[name] + comp.sizes[name]] = m
            self.member_of.append(member)
            self.counts.append(np.zeros((units, n), np.int64))
            self.active.append(np.zeros((units, len(comp.members)), np.int64))
        self.spikes_t = {name: np.zeros(steps, np.int64) for name in graph.populations}
        # synaptic ops per step of each projection: one [projection, step] array per component (its
        # outgoing projections) and per input, added to a chunk at a time; `ops` names their rows
        self.comp_ops = [np.zeros((len(comp.outgoing), steps), np.int64) for comp in plan.components]
        self.input_ops = {name: np.zeros((len(inp.outgoing), steps), np.int64) for name, inp in plan.inputs.items()}
        self.ops = {proj: row for comp, ops in zip(plan.components, self.comp_ops) for proj, row in zip(comp.outgoing, ops)}
        self.ops.update({proj: row for inp, ops in zip(plan.inputs.values(), self.input_ops.values()) for proj, row in zip(inp.outgoing, ops)})

    def use_threads(self, n: int) -> None:
        """numba's kernels run on `n` threads from now on (numba is asked only on a change: each
        call takes its process-wide locks)."""
        if n != self.current:
            import numba

            numba.set_num_threads(n)
            self.current = n

    def store(self, node: str, var: str, t0: int, c: int, chunk: np.ndarray) -> None:
        rec = self.records.get((node, var))
        if rec is not None:
            rec[:, t0 : t0 + c] = chunk.reshape(rec.shape[0], c, *rec.shape[2:])
