"""quantize(max_weight_exp=...): weight exponents capped (lava-dl netx refits a `.net` file's
weights with exponents <= 0), and `snnc compile MODEL -o OUT.net` using it so that a snnTorch model
compiled by snnc runs in lava-dl netx exactly as on snnc's sim."""
from __future__ import annotations

import dataclasses

import lavadl_oracle as oracle  # first: imports Lava's runtime with its start method fixed
import numpy as np
import pytest

from snnc.compiler.passes import parse_pipeline
from snnc.compiler.pipeline import compile as snnc_compile
from snnc.compiler.pipeline import default_passes
from snnc.ir.errors import SnncError


def _snntorch_graph(bias: bool):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snnc.compiler.frontends.torch import from_torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(12, 10, bias=bias), snn.Leaky(beta=0.9, reset_mechanism="zero", init_hidden=True),
        torch.nn.Linear(10, 4, bias=bias), snn.Leaky(beta=0.8, reset_mechanism="zero", init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[0].weight.mul_(3.0)  # an active network at 40% input rate
        net[2].weight.mul_(3.0)
    return from_torch(net, torch.zeros(1, 12), dt=1e-4)


def test_pipeline_text_caps_every_weight_exponent():
    """Parsed from pipeline text; the default compile of the same model uses exponents > 0 (the cap
    is what changes), the capped one none above the cap, bias synapses included."""
    (q,) = [p for p in parse_pipeline("canonicalize,fuse,timing,quantize(max_weight_exp=0),legalize") if p.name == "quantize"]
    assert q.max_weight_exp == 0
    g = _snntorch_graph(bias=True)
    free = snnc_compile(g, dt=1e-4, guard=False).chip
    assert max(p.weight_exp for p in free.projections.values()) > 0
    for cap in (0, 2):
        chip = snnc_compile(g, dt=1e-4, guard=False, passes=f"canonicalize,fuse,timing,quantize(max_weight_exp={cap}),legalize").chip
        exps = [int(p.weight_exp) for p in chip.projections.values()]
        assert max(exps) <= cap and max(exps) == cap  # the largest weights use the top of the allowed range


@pytest.mark.parametrize("bad", [-1, 8, 1.5])
def test_max_weight_exp_out_of_range_is_a_parameter_error(bad):
    with pytest.raises(SnncError) as err:
        snnc_compile(_snntorch_graph(bias=False), dt=1e-4, guard=False,
                     passes=f"canonicalize,fuse,timing,quantize(max_weight_exp={bad}),legalize")
    assert "max_weight_exp" in str(err.value) and "0..7" in str(err.value)


@pytest.mark.lava
def test_cli_compile_snntorch_to_net_runs_in_lavadl_as_on_sim(tmp_path, capsys):
    """`snnc compile model.nir -o model.net` (a snnTorch model, default options): the file is written,
    and lava-dl netx (Lava fixed_pt) gives the spikes snnc's sim gives for the same compile, every step."""
    from snnc.backends.base import get_backend
    from snnc.compiler.cli import main
    from snnc.ir.graph import write_nir

    g = _snntorch_graph(bias=False)
    write_nir(g, tmp_path / "m.nir")
    assert main(["compile", str(tmp_path / "m.nir"), "-o", str(tmp_path / "m.net")]) == 0, capsys.readouterr().err
    assert "max_weight_exp=0" in capsys.readouterr().out

    passes = [dataclasses.replace(p, max_weight_exp=0, split_sign=False, exponent_groups=1) if p.name == "quantize" else p
              for p in default_passes(dt=1e-4)]
    chip = snnc_compile(tmp_path / "m.nir", dt=1e-4, passes=passes, guard=False).chip
    assert all(p.weight_exp <= 0 for p in chip.projections.values())
    x = (np.random.default_rng(3).random((30, 12)) < 0.4).astype(np.int32)
    sim = get_backend("sim").build(chip).run({name: x[None] for name in chip.inputs}).outputs
    ref = oracle.run_netx(tmp_path / "m.net", x)
    np.testing.assert_array_equal(next(iter(sim.values()))[0], ref)
    assert ref.sum() > 0  # not two silent runs
