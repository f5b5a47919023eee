"""Spiking attention and SSM blocks: NIR form (saved and read back) -> chip, against the float model.

The attention block's chip form holds the float model's numbers exactly (IF neurons without leak,
0/1 and count products), so its logits must EQUAL the float model's. The SSM's diagonal decay is
truncated on the chip each step (the float model multiplies exactly): its logits must stay within
the bound that truncation allows. Unsupported operations name the op, where it is and what to use.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from snnc.backends.sim import SimBackend
from snnc.compiler.frontends import attention as A
from snnc.compiler.frontends.loader import load_model
from snnc.compiler.frontends.torch import from_torch
from snnc.ir.errors import ParameterError, UnsupportedNodeError


def _model(block, seed=0):
    torch.manual_seed(seed)
    model = A.SequenceClassifier(block, 10).double()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(3.0)  # spikes at every layer
    return model


def _chip_logits(model, x, tmp_path):
    path = tmp_path / "model.nir"
    nir.write(path, A.to_nir(model, x.shape[-1]))
    seq = A.nir_to_chip(nir.read(path))
    assert list(load_model(path).populations) == list(seq.chip.populations)  # the loader takes the file too
    run = SimBackend().build(seq.chip).run(seq.pad(x), probes=[f"{p}/s" for p in seq.chip.populations])
    return seq, seq.logits(run.outputs["logits"]), run


@pytest.mark.parametrize("scale_shift", [0, 2])
def test_attention_chip_equals_float_model(tmp_path, scale_shift):
    x = np.random.default_rng(0).integers(0, 17, (12, 8, 8))
    torch.manual_seed(0)
    model = _model(A.SpikingSelfAttention(8, 4, scale_shift=scale_shift))
    with torch.no_grad():
        want = model(torch.from_numpy(x).double()).numpy()
    seq, got, run = _chip_logits(model, x, tmp_path)
    assert np.array_equal(got, want)
    assert run.activity.populations["attn.qs"].spikes > 0  # the products did carry something
    assert seq.latency == 5 and seq.chip.projections["attn.qs.a_in1"].delay == 2  # q waits for K^T V
    assert seq.chip.populations["attn.qs"].prod_exp == scale_shift


def test_ssm_chip_within_truncation_bound_of_float_model(tmp_path):
    x = np.random.default_rng(1).integers(0, 17, (12, 8, 8))
    block = A.SpikingSSM(8, 6)
    model = _model(block, seed=1)
    with torch.no_grad():
        want = model(torch.from_numpy(x).double()).numpy()
    seq, got, _ = _chip_logits(model, x, tmp_path)
    # chip h is float h up to truncation (< 1/64 of a weight unit per step, summed geometrically),
    # so each payload floor(16 h) can differ by at most one unit (1/16) per step and channel
    w = A._w(model.readout)
    bound = x.shape[1] * np.abs(w).sum(axis=1) / 16
    assert np.all(np.abs(got - want) <= bound[None, :]), np.abs(got - want).max()
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.9


@pytest.mark.parametrize("forward, op, hint", [
    (lambda m, x: torch.softmax(m.l(x), -1), "softmax", "Spikformer drops it"),
    (lambda m, x: torch.einsum("bi,bj->bij", m.l(x), x).flatten(1), "einsum", "Q.K^T.V"),
    (lambda m, x: m.l(x) @ m.l(x).T, "T", "K^T"),
    (lambda m, x: torch.nn.functional.layer_norm(m.l(x), (4,)), "layer_norm", "BatchNorm"),
])
def test_unsupported_ops_name_op_place_and_alternative(forward, op, hint):
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = torch.nn.Linear(4, 4)

        def forward(self, x):
            return forward(self, x)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = Block()

        def forward(self, x):
            return self.attn(x)

    with pytest.raises(UnsupportedNodeError) as err:
        from_torch(Net(), (4,))
    msg = str(err.value)
    assert any(form in msg for form in (f"operation '{op}'", f"(attribute .{op})", f"(torch.{op})", f"({op})")), msg
    assert "in module 'attn' (Block)" in msg and hint in msg


def test_blocks_inside_a_per_step_model_point_to_the_exporter():
    with pytest.raises(UnsupportedNodeError, match="SpikingSSM.*attention.to_nir"):
        from_torch(torch.nn.Sequential(A.SpikingSSM(4, 4)), (4,))


def test_chip_lowering_refuses_what_it_cannot_mean(tmp_path):
    model = _model(A.SpikingSSM(8, 6))
    graph = A.to_nir(model, 8)
    graph.nodes["ssm.y"].metadata = {}  # a Scale without the product key would be a silent sum
    with pytest.raises(UnsupportedNodeError, match="Scale without the snnc product key"):
        A.nir_to_chip(graph)
    graph = A.to_nir(model, 8)
    graph.nodes["ssm.h"].tau = graph.nodes["ssm.h"].tau * 1.001
    with pytest.raises(ParameterError, match="LI decays must be integer / 4096"):
        A.nir_to_chip(graph)
    graph = A.to_nir(model, 8)
    graph.nodes["ssm.B"].weight = graph.nodes["ssm.B"].weight + 1e-3
    with pytest.raises(ParameterError, match="power-of-two grid"):
        A.nir_to_chip(graph)
    graph = A.to_nir(model, 8)
    graph.nodes["s4d"] = nir.CubaLI(tau_syn=np.ones(2), tau_mem=np.ones(2), r=np.ones(2), v_leak=np.zeros(2))
    with pytest.raises(UnsupportedNodeError, match="only a float model in Lava 0.10"):
        A.nir_to_chip(graph)


def test_calibration_shifts_the_readout_into_24_bits():
    """Readout weights at the top of their grid overflow the 24-bit logits integrator: with
    calibration data the readout is shifted right (a floor per step, stated) and the chip's logits
    stay within that floor of the float model's; without it a note says the range is unchecked."""
    x = np.random.default_rng(2).integers(8, 17, (16, 8, 8))
    model = _model(A.SpikingSelfAttention(8, 4), seed=2)
    with torch.no_grad():
        for m in (model.block.q, model.block.k, model.block.v):
            m.weight.fill_(254 / 256)  # every neuron spikes every step: S_t = t + 1 everywhere
        model.readout.weight.fill_(254 / 64)
        want = model(torch.from_numpy(x).double()).numpy()
    graph = A.to_nir(model, 8)
    assert any("unchecked" in n for n in A.nir_to_chip(graph).notes)
    seq = A.nir_to_chip(graph, calibration=x)
    shifts = {-p.weight_exp for p in seq.chip.incoming("logits")}
    assert len(shifts) == 1 and shifts.pop() > 0 and any("shifted right" in n for n in seq.notes)
    run = SimBackend().build(seq.chip).run(seq.pad(x), probes=["logits/v"])
    assert np.abs(run.probes["logits/v"]).max() < 2**22  # within half of v's range
    got = seq.logits(run.outputs["logits"])
    steps = seq.steps(x.shape[1])
    assert np.all(np.abs(got - want) <= steps * 64 * seq.logit_scale)  # one floor per step and class


def test_calibration_refuses_a_saturating_relay():
    model = _model(A.SpikingSSM(8, 6, frac_bits=16), seed=3)
    with torch.no_grad():
        model.block.B.weight.fill_(1.0)  # clamped to the top of the grid: 127 / 2**15
    with pytest.raises(ParameterError, match="relay saturates"):
        A.nir_to_chip(A.to_nir(model, 8), calibration=np.full((2, 24, 8), 16))  # 24 rows: h approaches 17M


def test_load_model_takes_the_torch_model_itself():
    model = _model(A.SpikingSSM(8, 6))
    x = np.random.default_rng(4).integers(0, 17, (4, 8, 8))
    chip = load_model(model, sample_input_shape=(8,), calibration=x)
    assert {p.model for p in chip.populations.values()} == {"relay", "lif", "product"}
    with pytest.raises(ParameterError, match="sample_input_shape"):
        load_model(model)


def test_inputs_of_one_node_on_different_grids_share_the_finest_unit(tmp_path):
    """The residual's readout weights on a coarse grid (multiples of 1/4) and the attention's on a
    fine one (1/64): both projections into the logits must deliver one unit, exactly."""
    torch.manual_seed(5)
    model = _model(A.SpikingSelfAttention(8, 4), seed=5)
    with torch.no_grad():
        model.readout.weight[:, 4:] = torch.round(model.readout.weight[:, 4:] * 4) / 4 + 0.25
        model.readout.weight[:, :4] = 1 / 64 + torch.round(model.readout.weight[:, :4] * 32) / 32
    x = np.random.default_rng(5).integers(0, 17, (8, 8, 8))
    with torch.no_grad():
        want = model(torch.from_numpy(x).double()).numpy()
    seq, got, _ = _chip_logits(model, x, tmp_path)
    exps = {p.name: A._grid(A.to_nir(model, 8).nodes[p.meta["nir_node"]].weight, "")[1] for p in seq.chip.incoming("logits")}
    assert len(set(exps.values())) == 2  # the two Linears really sit on different grids
    assert np.array_equal(got, want)
