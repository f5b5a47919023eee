"""dt is refused where it enters, with the same error everywhere (reference, compile, torch, chip NIR)."""
import math

import pytest

from snnc.ir.errors import ParameterError
from snnc.ir.timestep import check_dt


@pytest.mark.parametrize("bad", [0, -1e-4, math.nan, math.inf, "fast", None])
def test_bad_dt_names_where_and_the_value(bad):
    with pytest.raises(ParameterError, match=r"build option dt: dt must be a positive number of seconds"):
        check_dt(bad, "build option dt")


def test_good_dt_comes_back_as_float():
    assert check_dt("1e-4", "x") == 1e-4 and isinstance(check_dt(1, "x"), float)


def test_every_entry_point_uses_it(refdata):
    from snnc.backends.reference import ReferenceBackend
    from snnc.compiler.pipeline import compile as snnc_compile
    from snnc.ir.errors import PassError

    lif = refdata / "nir-paper" / "lif" / "lif_norse.nir"
    with pytest.raises(ParameterError, match="build option dt"):
        ReferenceBackend().build(lif, dt=-1)
    with pytest.raises((ParameterError, PassError), match="compile option dt"):
        snnc_compile(str(lif), dt=0)
