"""The digits notebook runs top to bottom (nbclient, a fresh kernel) and shows its figures inline."""
from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "digits_notebook.ipynb"
CHECKPOINT = ROOT / "examples" / "digits" / "digits.pt"


@pytest.mark.slow
def test_digits_notebook_executes_with_inline_figures():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if not CHECKPOINT.is_file():
        pytest.skip("the shipped digits model examples/digits/digits.pt is not there")
    from PIL import Image

    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(NOTEBOOK.parent)}})
        client.execute()          # raises CellExecutionError (with the cell's traceback) if any cell fails
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
    images, text = [], []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out
            data = out.get("data", {})
            if "image/png" in data:
                img = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
                img.load()
                images.append(img)
            if out.get("output_type") == "stream":
                text.append(out.get("text", ""))
            elif "text/plain" in data:
                text.append(data["text/plain"])
    # prototypes, tree, path strip, traversal, basin samples, masses, confusion
    assert len(images) >= 7
    assert all(i.width > 100 and i.height > 50 for i in images)
    joined = "".join(text)
    assert "energyscope analysis of" in joined and "minima:" in joined
    assert "sign check passed" in joined
    assert "analysis.json" in joined and "arrays.npz" in joined and "report:" in joined
