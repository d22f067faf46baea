import matplotlib

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


@pytest.fixture(scope="session")
def digits2d_lrelu():
    """The shipped d = 2 digits model whose prior's energy net uses LeakyReLU(0.2) (piecewise linear)."""
    import energyscope as es
    return es.load_checkpoint(DIGITS / "digits2d_lrelu.pt")
