"""Device handling: the numeric paths keep every tensor on the Landscape's device (and in its dtype).

No GPU is needed for most of this. :class:`device_guard.DeviceGuard` makes ``cpu:0`` stand in for an accelerator and
raises wherever CUDA would (host/accelerator tensors combined, a host tensor indexed by an accelerator index,
``.numpy()`` on an accelerator tensor, a CPU generator drawing on the accelerator) and where float32 bookkeeping meets
float64 data. The main paths run under it on ``Landscape(device="cpu:0")`` and must give the known answers, and the
same numbers as a plain CPU run. A static test checks the source for tensor factories without ``device=``, with a
reviewed allow-list. The real CUDA test runs wherever CUDA exists.
"""
from __future__ import annotations

import ast
import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import energyscope as es
from energyscope._tensor import to_numpy
from energyscope.io.checkpoint import describe_checkpoint
from energyscope.interpret.masses import basin_masses
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY, MULLER_BROWN_SADDLES_ENERGY,
                                  MullerBrown)

from device_guard import ACCEL, DeviceGuard, DeviceMixError, on_accel

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "energyscope"
DIGITS = ROOT / "examples" / "digits"
MB_BOX = ((-1.5, -0.5), (1.2, 2.0))
E_S1, E_S2 = MULLER_BROWN_SADDLES_ENERGY


def mb(device: str = "cpu:0", **kw) -> es.Landscape:
    return es.Landscape(MullerBrown(), dim=2, device=device, **kw)


# ---------------------------------------------------------------------------------------------- the guard itself
def _bad_patterns():
    dev, f64 = ACCEL, torch.float64

    def acc():  # created under the guard, so it lives on the stand-in accelerator
        return torch.arange(4, device=dev, dtype=f64)

    def host_bookkeeping_indexed_by_device_index():
        n = torch.zeros(4, dtype=torch.long)
        n[torch.nonzero(acc() > 1).flatten()] += 1

    def host_tensor_in_where():
        x = acc()
        torch.where(x > 1, x, torch.zeros(4, dtype=f64))

    def numpy_of_device_tensor():
        acc().numpy()

    def cpu_generator_drawing_on_device():
        torch.randn(3, generator=torch.Generator().manual_seed(0), device=dev, dtype=f64)

    def float32_bookkeeping():
        torch.maximum(acc(), torch.zeros(4, device=dev))  # fmax = torch.zeros(P, device=dev): float32

    return [host_bookkeeping_indexed_by_device_index, host_tensor_in_where, numpy_of_device_tensor,
            cpu_generator_drawing_on_device, float32_bookkeeping]


@pytest.mark.parametrize("pattern", _bad_patterns(), ids=lambda f: f.__name__)
def test_guard_catches_what_cuda_rejects(pattern):
    with DeviceGuard(), pytest.raises(DeviceMixError):
        pattern()


def test_guard_allows_what_cuda_allows():
    with DeviceGuard() as g:
        x = torch.arange(4, device=ACCEL, dtype=torch.float64)
        assert on_accel(x) and x.device == ACCEL
        y = x[torch.arange(2)] + torch.tensor(1.0, dtype=torch.float64)  # host index into device data; host scalar
        gen = torch.Generator().manual_seed(0)
        y = y + torch.randn(2, generator=gen, dtype=torch.float64).to(x.device)  # drawn on the host, then moved
        lin = nn.Linear(4, 2).to(device=ACCEL, dtype=torch.float64)
        out = lin(x[None])
        assert on_accel(y) and on_accel(out) and on_accel(lin.weight)
        assert not on_accel(x.cpu()) and isinstance(to_numpy(x), np.ndarray)
    assert g.accel_ops > 0


# ---------------------------------------------------------------------------------------------- the numeric paths
def test_find_minima_on_device_matches_cpu():
    with DeviceGuard() as g:
        m = es.find_minima(mb(), n_restarts=32, seed=0, bounds=MB_BOX, progress=False)
    assert g.accel_ops > 1000
    ref = es.find_minima(mb("cpu"), n_restarts=32, seed=0, bounds=MB_BOX, progress=False)
    np.testing.assert_allclose(m.energy, MULLER_BROWN_MINIMA_ENERGY, atol=1e-8)
    np.testing.assert_array_equal(m.energy, ref.energy)
    np.testing.assert_array_equal(m.z, ref.z)


def test_neb_on_device():
    with DeviceGuard() as g:
        path = es.neb(mb(), MULLER_BROWN_MINIMA[0], MULLER_BROWN_MINIMA[2])
    assert g.accel_ops > 1000
    assert path.saddle_validated
    assert path.saddle_energy == pytest.approx(E_S1, abs=1e-8)
    ref = es.neb(mb("cpu"), MULLER_BROWN_MINIMA[0], MULLER_BROWN_MINIMA[2])
    np.testing.assert_array_equal(path.energy, ref.energy)


def test_connect_on_device():
    with DeviceGuard():
        land = mb()
        m = es.find_minima(land, n_restarts=32, seed=0, bounds=MB_BOX, progress=False)
        net = es.connect(land, m, progress=False)
    saddles = sorted(e for _, _, e in net.graph.edges(data="energy"))
    np.testing.assert_allclose(saddles, sorted([E_S1, E_S2]), atol=1e-8)
    assert net.minimax_energy(0, 1) == pytest.approx(max(E_S1, E_S2), abs=1e-8)


def _tiny_model(device: str) -> es.Landscape:
    """d = 2 MLP energy with a standard-normal base, a decoder to 4×4 images, an encoder, labelled reference."""
    torch.manual_seed(0)
    E = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    G = nn.Sequential(nn.Linear(2, 16), nn.Sigmoid(), nn.Unflatten(1, (1, 4, 4)))
    I = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    ref = np.random.default_rng(0).standard_normal((60, 2))
    return es.Landscape(E, decoder=G, encoder=I, dim=2, base_prior="standard_normal", reference=ref,
                        labels=np.arange(60) % 3, sampler={"steps": 20, "step_size": 0.3}, device=device)


@pytest.mark.parametrize("method", ["importance", "mala"])
def test_basin_masses_on_device_match_cpu(method):
    kw = dict(method=method, n_prior=256, n_sampler=64, seed=0, progress=False,
              mala={"n_chains": 4, "n_samples": 16, "burn_in": 20})
    results = []
    for device, ctx in (("cpu:0", DeviceGuard()), ("cpu", contextlib.nullcontext())):
        with ctx:
            land = _tiny_model(device)
            m = es.find_minima(land, n_restarts=16, seed=0, progress=False)
            results.append(basin_masses(land, m, **kw))
    dev, cpu = results
    assert len(dev) == len(cpu) >= 1
    assert dev.equilibrium.method == method
    for which in ("equilibrium", "sampler", "data"):
        a, b = getattr(dev, which), getattr(cpu, which)
        np.testing.assert_array_equal(a.mass, b.mass)
        np.testing.assert_array_equal(a.basin, b.basin)


def test_analyze_on_device_matches_cpu():
    """The whole pipeline (minima, connect, tree, prototypes, traversals, paths, masses, labels) on a tiny model."""
    rng = np.random.default_rng(1)
    ref = np.concatenate([m + 0.03 * rng.standard_normal((20, 2)) for m in MULLER_BROWN_MINIMA])
    labels = np.repeat(np.array(["A", "B", "C"]), 20)
    kw = dict(seed=0, n_restarts=16, progress=False, grid_size=16, n_frames=3, n_paths=2,
              interpret_kwargs={"n_prior": 64, "n_sampler": 32, "mala": {"n_chains": 4, "n_samples": 8,
                                                                          "burn_in": 10}})
    results = []
    for device, ctx in (("cpu:0", DeviceGuard()), ("cpu", contextlib.nullcontext())):
        torch.manual_seed(0)
        dec = nn.Sequential(nn.Linear(2, 16), nn.Sigmoid(), nn.Unflatten(1, (1, 4, 4)))
        enc = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        with ctx:
            land = es.Landscape(MullerBrown(), decoder=dec, encoder=enc, dim=2, reference=ref, labels=labels,
                                device=device)
            results.append(es.analyze(land, **kw))
    dev, cpu = results
    assert dev.diagnostics["stage_errors"] == {}
    np.testing.assert_allclose(dev.minima.energy, MULLER_BROWN_MINIMA_ENERGY, atol=1e-8)
    np.testing.assert_array_equal(dev.minima.energy, cpu.minima.energy)
    np.testing.assert_array_equal(dev.prototypes, cpu.prototypes)
    np.testing.assert_allclose(sorted(e for _, _, e in dev.network.graph.edges(data="energy")),
                               sorted([E_S1, E_S2]), atol=1e-8)


ENTRY = """
import energyscope as es
from torch import nn

def build(ckpt):
    E = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    E.load_state_dict(ckpt["weights"])
    return es.Landscape(E, dim=2)   # built on the CPU, as most entry points are
"""


def test_checkpoints_load_on_the_requested_device(tmp_path):
    """A checkpoint saved from a device Landscape loads on the CPU and on the device; an entry point's
    Landscape is moved to a requested device; ``--data`` is encoded on the device."""
    torch.manual_seed(0)
    E = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    z = np.random.default_rng(0).standard_normal((5, 2))
    u_cpu = es.Landscape(E, dim=2).energy(z).numpy()
    with DeviceGuard():
        land = _tiny_model("cpu:0")
        es.save_checkpoint(tmp_path / "dev.pt", land)
        back = es.load_checkpoint(tmp_path / "dev.pt", device="cpu:0")
        assert back.device == ACCEL and on_accel(back.energy_module[0].weight)
        np.testing.assert_array_equal(to_numpy(back.energy(z)), to_numpy(land.energy(z)))
        x = land.decode(land.reference[:7])
        np.testing.assert_allclose(back.encode(x), land.encode(x))
        desc = describe_checkpoint(tmp_path / "dev.pt", device="cpu:0", n_samples=64)
        assert desc["landscape"]["device"] == "cpu:0"

        torch.save({"weights": E.state_dict()}, tmp_path / "c.pt")
        (tmp_path / "entry.py").write_text(ENTRY)
        moved = es.load_checkpoint(tmp_path / "c.pt", model=f"{tmp_path / 'entry.py'}:build", device="cpu:0")
        assert moved.device == ACCEL and on_accel(moved.energy_module[0].weight)
        np.testing.assert_array_equal(to_numpy(moved.energy(z)), u_cpu)
    plain = es.load_checkpoint(tmp_path / "dev.pt")
    assert plain.device == torch.device("cpu")
    np.testing.assert_array_equal(plain.energy(z).numpy(), to_numpy(back.energy(z)))


# ---------------------------------------------------------------------------------------------- static check
FACTORIES = {"zeros", "ones", "full", "empty", "arange", "linspace", "logspace", "eye", "tensor", "as_tensor",
             "asarray", "from_numpy", "randn", "rand", "randint", "randperm", "normal", "scalar_tensor"}

# Reviewed uses of a tensor factory without device= (file, start of the call's source): each is CPU on purpose.
ALLOWED = {
    # a host index into a device tensor is fine on CUDA (mins lives on land.device)
    ("masses.py", "torch.arange(n_chains)"): "chain starts: mins[host index]",
    # random numbers drawn on the host from a CPU generator, then moved (.to(dev)): same streams on every device
    ("masses.py", "torch.randn(*s, generator=gen"): "MALA noise, moved with .to(dev)",
    ("masses.py", "torch.rand(*s, generator=gen"): "MALA uniforms, moved with .to(dev)",
    ("masses.py", "torch.randint(0, k, (n_chains,), generator=gen)"): "MALA jump targets, moved with .to(dev)",
    ("sampling.py", "torch.randn(z.shape, generator=gen"): "short-run sampler noise, moved with .to(land.device)",
    # saving: what goes into the file lives on the CPU
    ("checkpoint.py", "torch.from_numpy(np.ascontiguousarray(x))"): "arrays written to a checkpoint",
    ("checkpoint.py", "torch.from_numpy(land.reference.copy())"): "reference latents written to a checkpoint",
    # module weights made on the CPU; Landscape moves the whole module to its device
    ("surfaces.py", "torch.randn(hidden, width, generator=g)"): "RandomMLPPrior init",
    ("surfaces.py", "torch.randn(hidden, generator=g)"): "RandomMLPPrior init",
    ("surfaces.py", "torch.randn(1, width, generator=g)"): "RandomMLPPrior init",
}


def _factory_calls(path: Path):
    """(node, source) of every ``torch.<factory>(...)`` call in the file."""
    src = path.read_text()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            yield node, ast.get_source_segment(src, node)


def test_tensor_factories_name_their_device():
    modules = sorted(p for p in PKG.rglob("*.py") if p.name != "_tensor.py")
    assert len(modules) >= 15
    missing, used = [], set()
    for path in modules:
        for node, seg in _factory_calls(path):
            if any(k.arg == "device" for k in node.keywords):
                continue
            key = next((k for k in ALLOWED if k[0] == path.name and seg.startswith(k[1])), None)
            if key is None:
                missing.append(f"{path.name}:{node.lineno}: {seg}")
            else:
                used.add(key)
    assert not missing, "tensor factories without device= (add device=, or review and allow-list):\n" + \
        "\n".join(missing)
    assert used == set(ALLOWED), f"allow-list entries that no longer match any call: {set(ALLOWED) - used}"


def test_loads_map_to_cpu_and_no_bare_numpy():
    """torch.load / torch.jit.load read onto the CPU (a GPU-saved file loads anywhere); .numpy() only after .cpu()."""
    for path in sorted(PKG.rglob("*.py")):
        src = path.read_text()
        for node in ast.walk(ast.parse(src)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("load", "numpy")):
                continue
            seg = ast.get_source_segment(src, node)
            if node.func.attr == "load" and seg.startswith(("torch.load(", "torch.jit.load(")):
                assert any(k.arg == "map_location" for k in node.keywords), f"{path.name}:{node.lineno}: {seg}"
            if node.func.attr == "numpy" and not node.args:
                recv = node.func.value
                assert isinstance(recv, ast.Call) and isinstance(recv.func, ast.Attribute) \
                    and recv.func.attr == "cpu", f"{path.name}:{node.lineno}: {seg} (use _tensor.to_numpy)"


# ---------------------------------------------------------------------------------------------- real CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_analyze_digits_on_cuda_matches_cpu(tmp_path):
    kw = dict(seed=0, n_restarts=16, progress=False, grid_size=16, n_frames=3, n_paths=2,
              interpret_kwargs={"n_prior": 128, "n_sampler": 32, "mala": {"n_chains": 4, "n_samples": 8,
                                                                           "burn_in": 10}})
    res = {}
    for device in ("cuda", "cpu"):
        land = es.load_checkpoint(DIGITS / "digits.pt", device=device)
        assert land.device.type == device
        res[device] = es.analyze(land, **kw)
        assert res[device].diagnostics["stage_errors"] == {}
    gpu, cpu = res["cuda"], res["cpu"]
    assert len(gpu.minima) == len(cpu.minima)
    np.testing.assert_allclose(np.sort(gpu.minima.energy), np.sort(cpu.minima.energy), rtol=0, atol=1e-8)
    # a checkpoint whose tensors were saved on the GPU loads on the CPU (read with map_location="cpu")
    def to_cuda(x):
        if isinstance(x, torch.Tensor):
            return x.cuda()
        if isinstance(x, dict):
            return {k: to_cuda(v) for k, v in x.items()}
        if isinstance(x, list):
            return [to_cuda(v) for v in x]
        return x
    raw = torch.load(DIGITS / "digits.pt", map_location="cpu", weights_only=True)
    torch.save(to_cuda(raw), tmp_path / "cuda_tensors.pt")
    back = es.load_checkpoint(tmp_path / "cuda_tensors.pt", device="cpu")
    z = cpu.minima.z
    np.testing.assert_allclose(back.energy(z).numpy(), cpu.minima.energy, rtol=0, atol=1e-8)
