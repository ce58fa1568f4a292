"""The peers' own code, for the tests and benchmarks that hold our numbers against it.

lightly (PyPI, ``pip install --no-deps -r requirements-peers.txt``) ships LeJEPA's
``SIGReg`` in ``lightly/loss/lejepa_loss.py``, which needs torch only; but the package
``lightly.loss`` imports every loss on import, some of them torchvision, which does not
install beside this CPU torch.  So when the plain import fails for that reason, the one
module is loaded from the installed package's file, unchanged.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def lightly_sigreg():
    """``(SIGReg class, how it was imported)`` of the installed lightly, or ``(None, why not)``."""
    try:
        from lightly.loss.lejepa_loss import SIGReg  # type: ignore

        return SIGReg, "lightly.loss.lejepa_loss"
    except ModuleNotFoundError as exc:
        if exc.name == "lightly" or importlib.util.find_spec("lightly") is None:
            return None, "lightly is not installed (pip install --no-deps -r requirements-peers.txt)"
        first = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any import failure of the package
        first = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    import lightly  # the package itself imports (only lightly.loss pulls torchvision)

    path = Path(lightly.__path__[0]) / "loss" / "lejepa_loss.py"
    if not path.is_file():
        return None, f"{first}; and {path} does not exist"
    spec = importlib.util.spec_from_file_location("_peer_lightly_lejepa_loss", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.SIGReg, f"{path.name} of lightly {getattr(lightly, '__version__', '?')} (lightly.loss: {first})"
