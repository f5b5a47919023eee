"""Reference backend against recordings other tools made of the NIR paper's models (../shared/data).

These recordings are the specification of the float semantics: norse/exact LIF spikes and
voltages, snnTorch's Braille hidden-layer spikes, and the sinabs CNN on a real N-MNIST sample.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnc.backends.reference import ReferenceBackend
from snnc.compiler.data.events import nmnist_frames
from snnc.ir.graph import Graph

pytestmark = pytest.mark.refdata


def test_lif_paper_spike_times_and_voltage(refdata):
    """CSV row i is step i, 0-based: input spikes at rows 60, 220, ...; output spikes at rows
    460/510/710/760 in both the exact and the norse recording, in the same step as the input
    spike that pushes v over the threshold. Voltage (after reset) matches norse within 1e-5."""
    folder = refdata / "nir-paper" / "lif"
    norse = np.loadtxt(folder / "lif_norse.csv", delimiter=",")
    exact = np.loadtxt(folder / "lif_exact.csv", delimiter=",")
    assert np.array_equal(norse[:, 0], exact[:, 0]) and exact.shape == (1000, 3)
    prog = ReferenceBackend().build(folder / "lif_norse.nir", dt=1e-4)
    res = prog.run(exact[:, :1], probes=["1/v"])  # [T, 1]: a batch of one
    spikes = np.flatnonzero(res.output[0, :, 0])
    np.testing.assert_array_equal(spikes, [460, 510, 710, 760])
    np.testing.assert_array_equal(spikes, np.flatnonzero(exact[:, 2]))
    np.testing.assert_array_equal(spikes, np.flatnonzero(norse[:, 2]))
    np.testing.assert_allclose(res.probes["1/v"][0, :, 0], norse[:, 1], rtol=0, atol=1e-5)


def test_braille_rnn_matches_snntorch_hidden_spikes_exactly(refdata):
    """snnTorch RSynaptic exported as CubaLIF with a recurrent Affine: 0 of 119 spikes differ,
    and the output layer's spike counts pick the sample's label, 1."""
    folder = refdata / "nir-paper" / "braille"
    x = np.load(folder / "sample0_input.npy")
    expected = np.load(folder / "snntorch_activity_noDelay_bias_zero.npy")
    assert x.shape == (256, 12) and expected.shape == (256, 38) and expected.sum() == 119
    graph = Graph.from_nir(folder / "braille_noDelay_bias_zero.nir")
    assert graph.recurrent == {("lif1.w_rec", "lif1.lif")}
    res = ReferenceBackend().build(graph).run(x, probes=["lif1.lif"])
    hidden = res.probes["lif1.lif"][0]
    assert int((hidden != expected).sum()) == 0
    counts = res.output[0].sum(axis=0)
    assert counts.shape == (7,) and int(np.argmax(counts)) == 1
    assert res.activity.populations["lif1.lif"].spikes == 119


# -- CNN on N-MNIST ---------------------------------------------------------------------------
def load_nmnist_frames(refdata):
    """The real N-MNIST sample in 1 ms bins: [T, 2 polarities, 34 rows (y), 34 columns (x)]."""
    frames = nmnist_frames(refdata / "events" / "sample_nmnist.bin", bin_width_us=1000, dtype=np.float64)
    assert frames.shape == (312, 2, 34, 34) and frames.sum() == 4325
    return frames


def torch_cnn(graph, frames):
    """The same network written independently with torch ops and an explicit IF loop
    (NIR IF: v += x, spike when v > 1, reset to 0); checks conv/pool/flatten wiring."""
    n = graph.nodes
    assert all(not np.any(n[k].bias) for k in ("0", "2", "5", "9", "11"))  # so no bias below
    conv = lambda k, s, pad: lambda v: F.conv2d(v, torch.tensor(n[k].weight, dtype=torch.float64), stride=s, padding=pad)  # noqa: E731
    dense = lambda k: lambda v: v @ torch.tensor(n[k].weight, dtype=torch.float64).T  # noqa: E731
    pool = lambda v: 4.0 * F.avg_pool2d(v, 2)  # noqa: E731
    layers = [conv("0", 2, 1), "if", conv("2", 1, 1), "if", pool, conv("5", 1, 1), "if", pool,
              lambda v: v.reshape(v.shape[0], -1), dense("9"), "if", dense("11"), "if"]
    v_mem = {}
    out = []
    for frame in torch.tensor(frames, dtype=torch.float64)[:, None]:
        h = frame
        for i, layer in enumerate(layers):
            if layer == "if":
                v = v_mem.get(i, torch.zeros_like(h)) + h
                h = (v > 1.0).double()
                v_mem[i] = torch.where(h > 0, torch.zeros_like(v), v)
            else:
                h = layer(h)
        out.append(h[0].numpy())
    return np.array(out)


def test_cnn_sinabs_on_a_real_nmnist_sample(refdata):
    """Output: 10 neurons, spikes, identical to an independent torch implementation."""
    frames = load_nmnist_frames(refdata)
    graph = Graph.from_nir(refdata / "nir-paper" / "cnn" / "cnn_sinabs.nir")
    res = ReferenceBackend().build(graph).run(frames)
    out = res.output[0]
    assert out.shape == (frames.shape[0], 10)
    assert out.sum() > 0
    np.testing.assert_array_equal(out, torch_cnn(graph, frames))
    assert all(res.activity.populations[k].spikes > 0 for k in ("1", "3", "6", "10", "12"))
