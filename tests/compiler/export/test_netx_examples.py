"""`snnc compile MODEL -o OUT.net` on the models users have: the repo's examples and the NIR paper's files.

Each either becomes a file that lava-dl's netx (Lava fixed_pt) runs exactly as snnc's sim runs the
compiled chip graph (every output, every step), or is one error naming the construct netx cannot
express. Biases go to bias_mant at netx's bias_exp 6 (`quantize(bias="mant", bias_exp=6)`): exact
for layers without state whose bias alone stays below threshold, otherwise one `snnc: warning:` per
layer naming the approximation, with the fidelity guard's numbers (also in report.json).

    model (what the example compiles)          .net
    digits_snntorch   (snnTorch Leaky, biased)  written; netx = sim; 2 bias warnings (start-up)
    NIR paper braille (recurrent CubaLIF)       written (dense_rec); netx = sim; 2 bias warnings (alpha > 0)
    NIR paper lif     (Affine -> LIF)           written; netx = sim; no warning
    NIR paper cnn     (sinabs conv/pool/IF)     written (conv, conv, conv, flatten, dense x2); netx = sim
    digits_conversion, digits_rnn_conversion    error: clock inputs (netx has one input)
    spikformer_digits, ssm_digits               error: the input feeds several populations (no branches)
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lava.lib.dl.netx", reason="lava-dl 0.6.0 is installed by `make venv`")

import lavadl_oracle as oracle  # noqa: E402
from netx_cases import assert_same_network, sim_outputs  # noqa: E402

from snnc.compiler.cli import main  # noqa: E402
from snnc.compiler.frontends.netx import load_netx  # noqa: E402
from snnc.ir.chip_nir import chip_from_nir  # noqa: E402
from snnc.ir.graph import read_nir_file  # noqa: E402

pytestmark = pytest.mark.lava
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _example(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"snnc_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the models, as files (the examples' --fast models) ---------------------------------------------
def _digits_snntorch(tmp: Path):
    """examples/digits_snntorch.py --fast: 64 -> 48 Leaky -> 10 Leaky, biased Linear layers, trained."""
    import nir
    import torch

    ex = _example("digits_snntorch")
    from _common import load_digits_split, seeded

    from snnc.compiler.frontends.torch import from_torch

    with seeded(0):
        x_train, x_test, y_train, _ = load_digits_split(0)
        rng = np.random.default_rng(0)
        s_train, s_test = ex.rate_encode(x_train, 16, rng), ex.rate_encode(x_test[:1], 16, rng)
        net = ex.train(ex.build_net(48), s_train[:512], y_train[:512], 4)
        with torch.no_grad():
            ex.run_net(net, torch.from_numpy(s_test))  # materializes snnTorch's hidden state (as the example does)
        nir.write(tmp / "model.nir", from_torch(net, (64,), dt=ex.DT))
    np.save(tmp / "calib.npy", s_train[:64])
    x = np.concatenate([s_test[0], np.zeros((4, 64), np.float32)])  # a test image, then silence: the last spikes arrive
    return tmp / "model.nir", ["--calibrate", str(tmp / "calib.npy"), "--reset-mode", "zero"], x


def _braille(tmp: Path, refdata: Path):
    folder = refdata / "nir-paper" / "braille"
    x = np.load(folder / "sample0_input.npy")
    return folder / "braille_noDelay_bias_zero.nir", ["--calibrate", str(folder / "sample0_input.npy")], x[:40]


def _nir_lif(tmp: Path, refdata: Path):
    x = (np.random.default_rng(1).random((40, 1)) < 0.7).astype(np.float32)
    return refdata / "nir-paper" / "lif" / "lif_norse.nir", [], x


def _nir_cnn(tmp: Path, refdata: Path):
    x = (np.random.default_rng(2).random((16, 2, 34, 34)) < 0.3).astype(np.float32)
    return refdata / "nir-paper" / "cnn" / "cnn_sinabs.nir", [], x


def _conversion_chip(tmp: Path):
    """examples/digits_conversion.py: the CNN's chip-exact conversion (weights as quantized, untrained)."""
    import torch

    from snnc.compiler.frontends.conversion.chip import convert_to_chip, quantize_model
    from snnc.ir.graph import write_nir

    fnet = _example("digits_conversion").build_cnn((4, 8)).double()
    from _common import load_digits_split

    torch.manual_seed(0)
    q = quantize_model(fnet, load_digits_split(0)[0][:64, None], levels=4, input_scale=1 / 16, input_range=(0, 16))
    write_nir(convert_to_chip(q, (1, 8, 8)).to_nir(), tmp / "cnn_chip.nir")
    return tmp / "cnn_chip.nir"


def _rnn_chip(tmp: Path):
    """examples/digits_rnn_conversion.py: the Elman RNN's chip-exact conversion."""
    from snnc.compiler.frontends.conversion.chip_rnn import convert_rnn_to_chip, quantize_rnn
    from snnc.ir.graph import write_nir

    frnn = _example("digits_rnn_conversion").build_rnn(16).double()
    from _common import load_digits_split

    q = quantize_rnn(frnn.rnn, frnn.head, load_digits_split(0)[0][:64], levels=4, input_scale=1 / 16, input_range=(0, 16), pow2_step=True)
    write_nir(convert_rnn_to_chip(q, 8).to_nir(), tmp / "rnn_chip.nir")
    return tmp / "rnn_chip.nir"


def _sequence(block: str):
    """examples/spikformer_digits.py / ssm_digits.py: the SequenceClassifier written by attention.to_nir."""
    def build(tmp: Path):
        import nir
        import torch

        from snnc.compiler.frontends import attention

        torch.manual_seed(0)
        inner = attention.SpikingSelfAttention(8, 8) if block == "attention" else attention.SpikingSSM(8, 16, frac_bits=10)
        nir.write(tmp / f"{block}.nir", attention.to_nir(attention.SequenceClassifier(inner, 10, frac_bits=9).double(), 8))
        return tmp / f"{block}.nir"
    return build


# -- written, and run by lava-dl netx as snnc's sim runs it -----------------------------------------
def _compile_net(capsys, tmp: Path, model: Path, options: list[str]):
    out = tmp / "model.net"
    code = main(["compile", str(model), "-o", str(out), "--report", str(tmp / "report.json"), "--dump-after", "legalize", *options])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    chip = chip_from_nir(read_nir_file(next((tmp / "model.dumps").glob("*_legalize.nir"))))
    return out, chip, stdout, stderr, json.loads((tmp / "report.json").read_text())


@pytest.mark.parametrize("name", ["digits_snntorch", "braille", "nir_lif", "nir_cnn"])
def test_models_compile_to_net_files_lavadl_runs_as_sim(tmp_path, capsys, request, name):
    """CLI compile -> .net -> lava-dl netx: every output spike at every step equals the sim's run of
    the compiled chip graph (dumped after the last pass); snnc reads the file back to that graph;
    exactly the layers whose bias netx holds inexactly get one warning each, with the guard's numbers,
    which report.json holds too."""
    if name == "digits_snntorch":
        model, options, x = _digits_snntorch(tmp_path)
    else:
        builder = {"braille": _braille, "nir_lif": _nir_lif, "nir_cnn": _nir_cnn}[name]
        model, options, x = builder(tmp_path, request.getfixturevalue("refdata"))
    out, chip, stdout, stderr, report = _compile_net(capsys, tmp_path, model, options)
    assert "netx.hdf5.Network(net_config=" in stdout

    assert_same_network(chip, load_netx(out))
    x = x.astype(np.int32)
    ref = oracle.run_netx(out, x if x.ndim == 2 else x.transpose(0, 3, 2, 1))  # lava-dl takes images as (W, H, C)
    sim = sim_outputs(chip, x)
    np.testing.assert_array_equal(next(iter(sim.values()))[0].reshape(ref.shape), ref)
    assert ref.sum() >= 3  # an active network: the equality is not between two silent runs

    biased = {name for name, pop in chip.populations.items() if np.any(pop.bias_mant)}
    assert biased == {"digits_snntorch": {"1", "3"}, "braille": {"lif1.lif", "lif2"}}.get(name, set())
    warned = {line.split("'")[1] for line in stderr.splitlines() if line.startswith("snnc: warning: layer ")}
    assert warned == biased  # none of these layers is stateless: each bias is an approximation, stated once
    for layer in biased:
        approximations = report["layers"][layer]["bias_approximation"]
        assert any("start-up transient" in a for a in approximations)
        assert any("alpha > 0" in a for a in approximations) == (name == "braille")  # CubaLIF: synaptic current
        measured = report["fidelity"]["layers"][layer]
        assert f"agreement {measured['agreement']:.4g}" in stderr
        assert all(chip.populations[layer].bias_exp == 6 for layer in biased)


@pytest.mark.parametrize("name, build, words", [
    ("digits_conversion", _conversion_chip, ["chip graph inputs", "exactly one input", "clock_h1", "clock inputs", "OUT.nir"]),
    ("digits_rnn_conversion", _rnn_chip, ["chip graph inputs", "exactly one input", "clock_h", "OUT.nir"]),
    ("spikformer_digits", _sequence("attention"), ["node 'input'", "feeds 3 populations", "attn.q", "branches", "OUT.nir"]),
    ("ssm_digits", _sequence("ssm"), ["node 'input'", "feeds 2 populations", "ssm.B", "branches", "OUT.nir"]),
])
def test_models_netx_cannot_express_are_one_error_naming_the_construct(tmp_path, capsys, name, build, words):
    model = build(tmp_path)
    code = main(["compile", str(model), "-o", str(tmp_path / "m.net")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("snnc: error: ")
    for word in words:
        assert word in err[0], (name, word)
    assert not (tmp_path / "m.net").exists()


# -- biases in bias_mant: where they are exact -----------------------------------------------------
def _one_layer(path: Path, *, beta: float, bias: float, threshold: float, tau_syn: float | None = None, n: int = 3):
    """input (4) -> Affine(w, bias) -> LIF (or CubaLIF) -> output, dt = 1e-4, reset to zero."""
    import nir

    dt = 1e-4
    tau = dt / (1 - beta) if beta < 1 else np.inf
    w = np.random.default_rng(3).uniform(0.1, 0.6, (n, 4))
    ones = np.ones(n)
    if tau_syn is None:
        neuron = nir.LIF(tau=ones * tau, r=ones * (tau / dt), v_leak=0 * ones, v_threshold=ones * threshold, v_reset=0 * ones)
    else:
        neuron = nir.CubaLIF(tau_syn=ones * tau_syn, tau_mem=ones * tau, r=ones * (tau / dt), v_leak=0 * ones,
                             v_threshold=ones * threshold, v_reset=0 * ones, w_in=ones * (tau_syn / dt))
    graph = nir.NIRGraph.from_list(nir.Input(np.array([4])), nir.Affine(w, np.full(n, bias)), neuron, nir.Output(np.array([n])))
    nir.write(path, graph)
    return path


def _compiled(path: Path, bias: str):
    import dataclasses

    from snnc.compiler.pipeline import compile as snnc_compile, default_passes

    netx = dict(max_weight_exp=0, split_sign=False, exponent_groups=1, bias=bias, bias_exp=6 if bias == "mant" else None)
    passes = [dataclasses.replace(p, **netx) if p.name == "quantize" else p for p in default_passes()]
    return snnc_compile(path, passes=passes, reset_mode="zero", guard=False)


def _float_and_chip(path: Path, x: np.ndarray, bias: str):
    from snnc.backends.base import get_backend
    from snnc.compiler.frontends.loader import load_model

    result = _compiled(path, bias)
    reference = get_backend("reference").build(load_model(path, reset_mode="zero"), dt=1e-4).run(x[None]).output[0]
    return result, reference, result.run(x[None]).output[0]


def test_bias_mant_is_not_exact_on_a_leaky_layer_the_bias_neuron_is(tmp_path):
    """Counterexample to "du = 4095 makes bias_mant exact": a Leaky layer (no synaptic current) with
    bias 0.3 and threshold 1, no input: the float v is 0.3, 0.57, 0.813, 1.03 -> first spike at step
    3. bias_mant also acts in the step before the layer's first input (latency 1), so the chip spikes
    one step early; the bias neuron, delayed to that first input, spikes at step 3 as the float does."""
    path = _one_layer(tmp_path / "leaky.nir", beta=0.9, bias=0.3, threshold=1.0)
    x = np.zeros((12, 4))
    mant, reference, chip_mant = _float_and_chip(path, x, "mant")
    assert int(np.argmax(reference[:, 0])) == 3 and reference[3].all()
    _, _, chip_neuron = _float_and_chip(path, x, "neuron")
    np.testing.assert_array_equal(chip_neuron, reference)
    assert int(np.argmax(chip_mant[:, 0])) == 2  # one step early: the start-up transient
    (layer,) = mant.layers.values()
    assert len(layer["bias_approximation"]) == 1 and "1 step(s) before the layer's first input" in layer["bias_approximation"][0]
    pop = next(iter(mant.chip.populations.values()))
    assert pop.bias_exp == 6 and int(pop.bias_mant) << 6 == pytest.approx(0.3 * layer["scale"], abs=32)  # nearest multiple of 64


def test_bias_mant_is_exact_on_a_stateless_layer_and_lavadl_runs_it(tmp_path, capsys):
    """A layer without state (beta = 0, no synaptic current: a LIFReset clearing u and v every step)
    whose bias alone stays below threshold: the steps before its first input leave nothing, so
    bias_mant is the float model's bias; no warning, and netx (reset_interval 1) runs the file as the
    sim runs the graph."""
    path = _one_layer(tmp_path / "stateless.nir", beta=0.0, bias=0.3, threshold=0.5)
    x = (np.random.default_rng(4).random((24, 4)) < 0.5).astype(np.float64)
    result, reference, chip = _float_and_chip(path, x, "mant")
    (layer,) = result.layers.values()
    assert layer["model"] == "lif_reset" and layer["bias_approximation"] == []
    np.testing.assert_array_equal(chip, reference)
    assert 0 < reference.sum() < reference.size  # the bias changes which steps spike

    code = main(["compile", str(path), "-o", str(tmp_path / "s.net"), "--reset-mode", "zero", "--strict"])
    stdout, stderr = capsys.readouterr()
    assert code == 0 and "snnc: warning" not in stderr, stderr
    assert "reset_interval=1" in stdout
    lava = oracle.run_netx(tmp_path / "s.net", x.astype(np.int32), reset_interval=1, reset_offset=0)
    np.testing.assert_array_equal(lava, sim_outputs(result.chip, x.astype(np.int32))["output"][0])


def test_bias_mant_on_a_cuba_layer_names_the_current_and_strict_fails(tmp_path, capsys):
    """A CubaLIF layer (alpha > 0): the bias enters v at the current's steady value; the CLI warns,
    and with --strict that warning is an error (exit 1, no file)."""
    path = _one_layer(tmp_path / "cuba.nir", beta=0.9, bias=0.05, threshold=1.0, tau_syn=5e-4)
    code = main(["compile", str(path), "-o", str(tmp_path / "c.net"), "--reset-mode", "zero", "--strict"])
    _, stderr = capsys.readouterr()
    assert code == 1 and not (tmp_path / "c.net").exists()
    assert "alpha > 0" in stderr and "start-up transient" in stderr and "bias_mant (bias_exp 6)" in stderr


def test_quantize_bias_exp_needs_bias_mant_and_a_3_bit_exponent(tmp_path):
    from snnc.compiler.passes.quantize import Quantize
    from snnc.ir.errors import PassError, SnncError

    path = _one_layer(tmp_path / "l.nir", beta=0.9, bias=0.3, threshold=1.0)
    from snnc.compiler.pipeline import compile as snnc_compile, default_passes

    for bad, words in ((dict(bias="neuron", bias_exp=6), "bias='mant'"), (dict(bias="mant", bias_exp=8), "0..7")):
        passes = [Quantize(**bad) if p.name == "quantize" else p for p in default_passes()]
        with pytest.raises((PassError, SnncError)) as err:
            snnc_compile(path, passes=passes, reset_mode="zero", guard=False)
        assert "bias_exp" in str(err.value) and words in str(err.value)
