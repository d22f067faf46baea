"""Checkpoints: the energyscope format round trip, every foreign layout, entry points, the pickle gate, clear errors."""
from __future__ import annotations

import json
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import energyscope as es
from energyscope import CheckpointError, Landscape
from energyscope.io.checkpoint import convention_caution, describe_checkpoint
from energyscope.io.spec import SpecError, build_module, module_spec

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:`torch.jit.save` is deprecated:DeprecationWarning")]

D = 3


def energy_net(seed: int = 0, act: nn.Module | None = None) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 16), act or nn.LeakyReLU(0.2), nn.Linear(16, 16),
                         act or nn.LeakyReLU(0.2), nn.Linear(16, 1))


def decoder_net(seed: int = 1) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 12), nn.LeakyReLU(0.2), nn.Linear(12, 10))


def encoder_net(seed: int = 2) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 12), nn.LeakyReLU(0.2), nn.Linear(12, 2 * D))


Z = np.random.default_rng(0).standard_normal((20, D))


def U(module: nn.Module, z: np.ndarray = Z, sign: float = 1.0, base: bool = False) -> np.ndarray:
    """The reference energy computed directly from the original module (float64)."""
    m = module.double().eval() if not isinstance(module, torch.jit.ScriptModule) else module
    with torch.no_grad():
        out = sign * m(torch.as_tensor(z, dtype=torch.float64)).reshape(len(z))
    u = out.numpy()
    return u + 0.5 * (z**2).sum(axis=1) if base else u


def decoded(module: nn.Module, z: np.ndarray = Z) -> np.ndarray:
    with torch.no_grad():
        return module.double()(torch.as_tensor(z)).numpy()


# ---------------------------------------------------------------------------------------------- energyscope format
def test_round_trip_energyscope_format(tmp_path):
    E, G, I = energy_net(), decoder_net(), encoder_net()
    ref = np.random.default_rng(1).standard_normal((30, D))
    labels = np.arange(30) % 4
    sampler = {"steps": 60, "step_size": 0.4, "noise": True}
    path = tmp_path / "sub" / "model.pt"
    es.save_checkpoint(path, E, G, I, base_prior="standard_normal", reference=ref, labels=labels, sampler=sampler,
                       data_shape=(1, 2, 5), metadata={"dataset": "toy", "epochs": 3, "lr": np.float32(1e-3)})
    raw = torch.load(path, weights_only=True)  # plain data and tensors only
    assert raw["format"] == "energyscope" and raw["version"] == 1
    assert set(raw["modules"]) == {"energy", "decoder", "encoder"}
    assert raw["modules"]["energy"]["spec"]["layers"][1] == {"type": "LeakyReLU", "slope": pytest.approx(0.2)}

    land = es.load_checkpoint(path)
    assert isinstance(land, Landscape) and land.dim == D and land.dtype == torch.float64
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E, base=True), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(land.decode(Z), decoded(G), rtol=1e-6, atol=1e-6)
    x = decoded(G)
    with torch.no_grad():
        enc = I.double()(torch.as_tensor(x)).numpy()[:, :D]
    np.testing.assert_allclose(land.encode(x), enc, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(land.reference, ref)
    np.testing.assert_array_equal(land.labels, labels)
    assert land.sampler == sampler
    assert land.metadata["dataset"] == "toy" and land.metadata["epochs"] == 3
    assert land.metadata["lr"] == pytest.approx(1e-3)
    assert land.metadata["data_shape"] == [1, 2, 5]
    assert land.base_prior == "standard_normal" and land.convention == "energy"


def test_save_a_landscape_and_conventions(tmp_path):
    E = energy_net()
    land0 = Landscape(E, convention="log_density", temperature=2.0, base_prior="standard_normal", base_sigma=1.5,
                      reference=Z, labels=np.array(list("abcdefghij") * 2), sampler={"steps": 20})
    es.save_checkpoint(tmp_path / "l.pt", land0)
    land = es.load_checkpoint(tmp_path / "l.pt")
    assert (land.convention, land.temperature, land.base_sigma) == ("log_density", 2.0, 1.5)
    np.testing.assert_allclose(land.energy(Z).numpy(), land0.energy(Z).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(land.labels, land0.labels)  # string labels survive
    assert land.sampler == {"steps": 20}


def test_data_shape_is_inferred_from_the_decoder(tmp_path):
    G = nn.Sequential(nn.Linear(D, 8), nn.Unflatten(1, (2, 2, 2)), nn.ConvTranspose2d(2, 1, 2, stride=2),
                      nn.Sigmoid())
    es.save_checkpoint(tmp_path / "c.pt", energy_net(), G)
    land = es.load_checkpoint(tmp_path / "c.pt", dtype=torch.float32)
    assert land.metadata["data_shape"] == [1, 4, 4]
    assert land.dtype == torch.float32 and land.energy(Z).dtype == torch.float32
    np.testing.assert_allclose(land.decode(Z), decoded(G), rtol=1e-5, atol=1e-6)


ALL_LAYERS = [
    nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2 * 3 * 3, bias=False), nn.LeakyReLU(0.1),
    nn.Unflatten(1, (2, 3, 3)), nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(3),
    nn.ELU(0.5), nn.Conv2d(3, 2, 3, padding=1, groups=1), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Dropout(0.2),
    nn.Conv2d(2, 2, 1, groups=2), nn.Tanh(), nn.Flatten(), nn.Softplus(beta=2.0), nn.Sequential(nn.Identity(),
                                                                                               nn.Linear(72, 1)),
    nn.Sigmoid(),
]


def test_spec_round_trip_covers_every_layer_type():
    torch.manual_seed(0)
    net = nn.Sequential(*ALL_LAYERS)
    with torch.no_grad():  # non-trivial running statistics
        net.train()(torch.randn(16, 4))
    net.eval()
    spec = module_spec(net)
    json.dumps(spec)  # plain data
    rebuilt = build_module(spec)
    rebuilt.load_state_dict(net.state_dict())
    rebuilt.eval()
    x = torch.randn(5, 4)
    torch.testing.assert_close(rebuilt(x), net(x))
    assert [type(m) for m in rebuilt.modules()] == [type(m) for m in net.modules()]


def test_single_layer_and_nested_sequential_save(tmp_path):
    lin = nn.Linear(D, 1)
    es.save_checkpoint(tmp_path / "s.pt", lin)
    np.testing.assert_allclose(es.load_checkpoint(tmp_path / "s.pt").energy(Z).numpy(), U(lin), rtol=1e-6)


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(D, 1)

    def forward(self, z):
        return self.lin(z).square()


def test_saving_an_indescribable_module_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"Custom.*--model"):
        es.save_checkpoint(tmp_path / "x.pt", Custom())
    with pytest.raises(CheckpointError, match=r"energy\.1 is a Custom"):
        es.save_checkpoint(tmp_path / "x.pt", nn.Sequential(nn.Identity(), Custom()))
    with pytest.raises(CheckpointError, match="metadata.when holds a object"):
        es.save_checkpoint(tmp_path / "x.pt", energy_net(), metadata={"when": object()})
    with pytest.raises(CheckpointError, match="reference latents have 2 columns"):
        es.save_checkpoint(tmp_path / "x.pt", energy_net(), dim=D, reference=np.zeros((4, 2)))
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------------------------------------- foreign layouts
def optimiser_state(module: nn.Module) -> dict:
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    module(torch.randn(2, D)).sum().backward()
    opt.step()
    return opt.state_dict()


def _check_foreign(path, E, G=None, I=None, **kw):
    with pytest.warns(UserWarning, match="inferred from weight shapes"):
        land = es.load_checkpoint(path, **kw)
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)
    if G is not None:
        np.testing.assert_allclose(land.decode(Z), decoded(G), rtol=1e-6, atol=1e-6)
    else:
        assert not land.has_decoder
    assert land.has_encoder == (I is not None)
    return land


@pytest.mark.parametrize("keys", [("netE", "netG", "netI"), ("E_state_dict", "G_state_dict", "I_state_dict"),
                                  ("energy", "decoder", "encoder"), ("ebm", "generator", "inference")])
def test_dict_of_state_dicts(tmp_path, keys):
    E, G, I = energy_net(), decoder_net(), encoder_net()
    ckpt = {keys[0]: E.state_dict(), keys[1]: G.state_dict(), keys[2]: I.state_dict(),
            "optE": optimiser_state(energy_net()), "optimizer_G": optimiser_state(energy_net()), "epoch": 12,
            "args": {"lr": 1e-3}}
    torch.save(ckpt, tmp_path / "f.pt")
    _check_foreign(tmp_path / "f.pt", E, G, I)
    info = describe_checkpoint(tmp_path / "f.pt")
    assert info["layout"] == "dict of state_dicts"
    assert {"optE", "optimizer_G", "epoch", "args"} <= set(info["ignored"])
    assert any("LeakyReLU(0.2)" in n and "assumed" in n for n in info["notes"])


@pytest.mark.parametrize("prefixes", [("ebm", "decoder", "encoder"), ("energy", "generator", None),
                                      ("module.ebm", "module.decoder", "module.encoder")])
def test_flat_state_dict_with_prefixes(tmp_path, prefixes):
    E, G, I = energy_net(), decoder_net(), encoder_net()
    sd = {}
    for prefix, mod in zip(prefixes, (E, G, I)):
        if prefix is not None:
            sd.update({f"{prefix}.{k}": v for k, v in mod.state_dict().items()})
    torch.save(sd, tmp_path / "flat.pt")
    _check_foreign(tmp_path / "flat.pt", E, G, I if prefixes[2] else None)
    assert describe_checkpoint(tmp_path / "flat.pt")["layout"] == "flat state_dict"


def test_lightning_checkpoint(tmp_path):
    E, G = energy_net(), decoder_net()
    sd = {f"model.ebm.{k}": v for k, v in E.state_dict().items()}
    sd.update({f"model.decoder.{k}": v for k, v in G.state_dict().items()})
    ckpt = {"epoch": 3, "global_step": 300, "pytorch-lightning_version": "2.2.0", "state_dict": sd,
            "optimizer_states": [optimiser_state(energy_net())], "lr_schedulers": [], "hyper_parameters": {"d": D}}
    torch.save(ckpt, tmp_path / "light.ckpt")
    _check_foreign(tmp_path / "light.ckpt", E, G)
    info = describe_checkpoint(tmp_path / "light.ckpt")
    assert info["layout"] == "Lightning checkpoint" and "optimizer_states" in info["ignored"]


def test_bare_energy_state_dict_with_dataparallel_prefix_and_named_layers(tmp_path):
    E = energy_net()
    torch.save({f"module.{k}": v for k, v in E.state_dict().items()}, tmp_path / "bare.pt")
    _check_foreign(tmp_path / "bare.pt", E)

    class Named(nn.Module):  # layers named fc1/fc2/out, registered in forward order
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.out = nn.Linear(D, 8), nn.Linear(8, 8), nn.Linear(8, 1)

        def forward(self, z):
            a = nn.functional.leaky_relu
            return self.out(a(self.fc2(a(self.fc1(z), 0.2)), 0.2))
    torch.manual_seed(3)
    N = Named()
    torch.save({"netE": N.state_dict()}, tmp_path / "named.pt")
    _check_foreign(tmp_path / "named.pt", N)


def test_positions_decide_activations_and_module_names_are_kept(tmp_path):
    class Holder(nn.Module):  # an attribute whose name contains "module" must survive prefix stripping
        def __init__(self):
            super().__init__()
            torch.manual_seed(5)
            self.submodule = nn.Sequential(nn.Linear(D, 8), nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Dropout(0.1),
                                           nn.Linear(8, 1))

        def forward(self, z):
            return self.submodule(z)
    H = Holder()
    torch.save({f"module.{k}": v for k, v in H.state_dict().items()}, tmp_path / "h.pt")
    land = _check_foreign(tmp_path / "h.pt", H)
    kinds = [type(m).__name__ for m in land.energy_module]
    assert kinds == ["Linear", "Linear", "LeakyReLU", "Linear"]  # no activation between adjacent positions 0 and 1


def test_activation_from_spec_overrides_the_default(tmp_path):
    E = energy_net(act=nn.ReLU())
    torch.save({"netE": E.state_dict()}, tmp_path / "relu.pt")
    with pytest.warns(UserWarning):
        wrong = es.load_checkpoint(tmp_path / "relu.pt")  # assumes LeakyReLU(0.2): a different function
    assert np.abs(wrong.energy(Z).numpy() - U(E)).max() > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing was assumed: no warning
        land = es.load_checkpoint(tmp_path / "relu.pt", spec={"energy": {"activation": "relu"}})
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)


def test_spec_file_json_with_prefixes_layers_conventions(tmp_path):
    torch.manual_seed(0)
    E = nn.Sequential(nn.Linear(D, 8), nn.GELU(), nn.Linear(8, 1))
    G = nn.Sequential(nn.Linear(D, 2 * 2 * 2), nn.Unflatten(1, (2, 2, 2)), nn.ConvTranspose2d(2, 1, 2, stride=2),
                      nn.Sigmoid())
    sd = {f"prior_net.{k}": v for k, v in E.state_dict().items()}
    sd.update({f"gen_net.{k}": v for k, v in G.state_dict().items()})
    torch.save({"model": sd, "optimizer": optimiser_state(energy_net())}, tmp_path / "w.pt")
    spec = {
        "energy": {"key": "prior_net", "activation": "gelu"},
        "decoder": {"key": "gen_net", "layers": [
            {"type": "linear"}, {"type": "unflatten", "sizes": [2, 2, 2]},
            {"type": "conv_transpose2d", "stride": 2}, {"type": "sigmoid"}]},
        "convention": "log_density", "base_prior": "standard_normal", "data_shape": [1, 4, 4],
        "sampler": {"steps": 40, "step_size": 0.1},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    land = es.load_checkpoint(tmp_path / "w.pt", spec=tmp_path / "spec.json")
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E, sign=-1.0, base=True), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(land.decode(Z), decoded(G), rtol=1e-6, atol=1e-6)
    assert land.metadata["data_shape"] == [1, 4, 4] and land.sampler == {"steps": 40, "step_size": 0.1}


def test_spec_file_yaml(tmp_path):
    yaml = pytest.importorskip("yaml")
    E = energy_net(act=nn.Tanh())
    torch.save({"weird_name": E.state_dict()}, tmp_path / "w.pt")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"energy": {"key": "weird_name", "activation": "tanh"},
                                                     "temperature": 2.0}))
    land = es.load_checkpoint(tmp_path / "w.pt", spec=tmp_path / "s.yaml")
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E) / 2.0, rtol=1e-6, atol=1e-6)


def test_torchscript_energy_with_settings_file(tmp_path):
    E = energy_net()
    scripted = torch.jit.script(E)
    torch.jit.save(scripted, str(tmp_path / "e.pt"),
                   _extra_files={"energyscope.json": json.dumps({"convention": "log_density",
                                                                 "base_prior": "standard_normal"})})
    # TorchScript is code: it loads only with the trust flag, and says why
    with pytest.raises(CheckpointError, match="TorchScript archive: it contains code .* trust_pickle=True"):
        es.load_checkpoint(tmp_path / "e.pt")
    land = es.load_checkpoint(tmp_path / "e.pt", trust_pickle=True)
    assert land.dim == D
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E, sign=-1.0, base=True), rtol=1e-6, atol=1e-6)
    assert describe_checkpoint(tmp_path / "e.pt", trust_pickle=True)["layout"] == "TorchScript"


class EnergyAndDecoder(nn.Module):
    def __init__(self, energy: nn.Module, decoder: nn.Module):
        super().__init__()
        self.energy = energy
        self.decoder = decoder

    def forward(self, z):
        return self.energy(z)


def test_torchscript_archive_with_energy_and_decoder(tmp_path):
    E, G = energy_net(), decoder_net()
    torch.jit.save(torch.jit.script(EnergyAndDecoder(E, G)), str(tmp_path / "both.pt"))
    land = es.load_checkpoint(tmp_path / "both.pt", spec={"dim": D}, trust_pickle=True)
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(land.decode(Z), decoded(G), rtol=1e-6, atol=1e-6)
    # a spec names sub-modules by dotted path, and can leave one out
    land = es.load_checkpoint(tmp_path / "both.pt", spec={"dim": D, "energy": "energy", "decoder": None},
                              trust_pickle=True)
    assert not land.has_decoder
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)
    with pytest.raises(CheckpointError, match="no such sub-module; its children: energy, decoder"):
        es.load_checkpoint(tmp_path / "both.pt", spec={"energy": "prior"}, trust_pickle=True)


# ---------------------------------------------------------------------------------------------- entry points
ENTRY = textwrap.dedent("""
    import torch
    from torch import nn
    import energyscope as es

    def build(ckpt):
        net = nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.LeakyReLU(0.2),
                            nn.Linear(16, 1))
        net.load_state_dict(ckpt["weights"])
        return es.Landscape(lambda z: -net.double()(z), dim=3, convention="log_density",
                            reference=ckpt["ref"].numpy())

    def not_a_landscape(ckpt):
        return {"nope": 1}

    def broken(ckpt):
        raise KeyError("weights_v2")
""")


def test_entry_point_file_and_package(tmp_path, monkeypatch):
    E = energy_net()
    torch.save({"weights": E.state_dict(), "ref": torch.zeros(4, D)}, tmp_path / "c.pt")
    (tmp_path / "my_entry.py").write_text(ENTRY)
    land = es.load_checkpoint(tmp_path / "c.pt", model=f"{tmp_path / 'my_entry.py'}:build")
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)
    assert land.reference.shape == (4, D)

    pkg = tmp_path / "pkgroot" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(ENTRY)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgroot"))
    land2 = es.load_checkpoint(tmp_path / "c.pt", model="mypkg.models:build")
    np.testing.assert_allclose(land2.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)

    with pytest.raises(CheckpointError, match="returned dict; it must return an energyscope.Landscape"):
        es.load_checkpoint(tmp_path / "c.pt", model="mypkg.models:not_a_landscape")
    with pytest.raises(CheckpointError, match="raised KeyError.*weights_v2"):
        es.load_checkpoint(tmp_path / "c.pt", model="mypkg.models:broken")
    with pytest.raises(CheckpointError, match="has no callable 'missing'"):
        es.load_checkpoint(tmp_path / "c.pt", model="mypkg.models:missing")
    with pytest.raises(CheckpointError, match="cannot import 'nopkg_xyz.mod'"):
        es.load_checkpoint(tmp_path / "c.pt", model="nopkg_xyz.mod:build")
    with pytest.raises(CheckpointError, match="must look like 'pkg.module:fn'"):
        es.load_checkpoint(tmp_path / "c.pt", model="mypkg.models")
    with pytest.raises(CheckpointError, match="entry point file not found"):
        es.load_checkpoint(tmp_path / "c.pt", model=f"{tmp_path / 'nope.py'}:build")
    sys.modules.pop("mypkg.models", None)
    sys.modules.pop("mypkg", None)


# ---------------------------------------------------------------------------------------------- pickles
class WholeModel(nn.Module):
    """A VAE-like container pickled whole: children named like roles."""

    def __init__(self):
        super().__init__()
        self.ebm = energy_net()
        self.generator = decoder_net()

    def forward(self, z):
        return self.generator(z)


def test_pickled_modules_need_the_trust_flag(tmp_path):
    model = WholeModel()
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(CheckpointError, match=r"pickled Python objects.*trust_pickle=True \(CLI: --trust-pickle\) "
                                              r"only for files you trust"):
        es.load_checkpoint(tmp_path / "whole.pt")
    land = es.load_checkpoint(tmp_path / "whole.pt", trust_pickle=True)
    np.testing.assert_allclose(land.energy(Z).numpy(), U(model.ebm), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(land.decode(Z), decoded(model.generator), rtol=1e-6, atol=1e-6)

    E = energy_net()
    torch.save({"netE": E, "epoch": 1}, tmp_path / "dict_of_modules.pt")
    with pytest.raises(CheckpointError, match="trust_pickle"):
        es.load_checkpoint(tmp_path / "dict_of_modules.pt")
    land2 = es.load_checkpoint(tmp_path / "dict_of_modules.pt", trust_pickle=True)
    np.testing.assert_allclose(land2.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------- bad checkpoints
def test_file_not_found_and_not_a_torch_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file not found: .*missing.pt"):
        es.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError, match="is not a torch checkpoint file"):
        es.load_checkpoint(tmp_path / "text.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is not a torch checkpoint file"):
        es.load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        es.load_checkpoint(tmp_path)


def test_missing_keys(tmp_path):
    es.save_checkpoint(tmp_path / "m.pt", energy_net())
    ck = torch.load(tmp_path / "m.pt", weights_only=True)
    del ck["modules"]["energy"]["state_dict"]
    torch.save(ck, tmp_path / "m1.pt")
    with pytest.raises(CheckpointError, match="missing key 'modules.energy.state_dict'"):
        es.load_checkpoint(tmp_path / "m1.pt")
    ck = torch.load(tmp_path / "m.pt", weights_only=True)
    del ck["modules"]["energy"]["state_dict"]["4.bias"]
    torch.save(ck, tmp_path / "m2.pt")
    with pytest.raises(CheckpointError, match="energy weights are missing key.*4.bias"):
        es.load_checkpoint(tmp_path / "m2.pt")
    torch.save({"netE": energy_net().state_dict()}, tmp_path / "m3.pt")
    with pytest.raises(CheckpointError, match="spec names key 'energy_v2'.*keys seen: netE"):
        es.load_checkpoint(tmp_path / "m3.pt", spec={"energy": {"key": "energy_v2"}})


def test_shape_mismatch_with_the_spec(tmp_path):
    torch.save({"netE": energy_net().state_dict()}, tmp_path / "s.pt")
    layers = [{"type": "linear", "in": 5, "out": 16}, {"type": "relu"}, {"type": "linear"}, {"type": "relu"},
              {"type": "linear"}]
    with pytest.raises(CheckpointError, match=r"shape mismatch with the spec at '0.weight'.*in=5.*\[16, 3\]"):
        es.load_checkpoint(tmp_path / "s.pt", spec={"energy": {"layers": layers}})
    ck = {"format": "energyscope", "version": 1, "modules": {"energy": {
        "spec": module_spec(energy_net()), "state_dict": energy_net().state_dict()}}}
    ck["modules"]["energy"]["spec"]["layers"][2]["out"] = 17
    torch.save(ck, tmp_path / "s2.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatch with the spec at '2.weight'.*out=17"):
        es.load_checkpoint(tmp_path / "s2.pt")


def test_unknown_layout_lists_the_keys(tmp_path):
    torch.save({"foo": energy_net().state_dict(), "bar": torch.zeros(3), "epoch": 1}, tmp_path / "u.pt")
    with pytest.raises(CheckpointError, match=r"unknown checkpoint layout.*foo \(state_dict, 6 tensors\), "
                                              r"bar \(tensor \[3\]\), epoch \(int\)"):
        es.load_checkpoint(tmp_path / "u.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="unknown checkpoint layout: the file holds a list"):
        es.load_checkpoint(tmp_path / "list.pt")


def test_non_finite_weights_name_the_tensor(tmp_path):
    sd = energy_net().state_dict()
    sd["2.weight"][3, 4] = float("nan")
    sd["2.weight"][0, 0] = float("inf")
    torch.save({"netE": sd}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"energy's tensor '2.weight' has 2 non-finite value"):
        es.load_checkpoint(tmp_path / "nan.pt")
    bad = energy_net()
    with torch.no_grad():
        bad[0].bias[0] = float("nan")
    with pytest.raises(CheckpointError, match="tensor '0.bias' has non-finite values; refusing to save"):
        es.save_checkpoint(tmp_path / "nan2.pt", bad)


def test_convolutional_weights_without_a_spec(tmp_path):
    G = nn.Sequential(nn.Linear(D, 8), nn.Unflatten(1, (2, 2, 2)), nn.ConvTranspose2d(2, 1, 2, stride=2))
    torch.save({"netE": energy_net().state_dict(), "netG": G.state_dict()}, tmp_path / "conv.pt")
    with pytest.raises(CheckpointError, match=r"decoder: '2.weight' has shape \[2, 1, 2, 2\] \(a convolution\).*"
                                              r"--spec"):
        es.load_checkpoint(tmp_path / "conv.pt")


def test_version_too_new_and_bad_spec_file(tmp_path):
    torch.save({"format": "energyscope", "version": 99, "modules": {}}, tmp_path / "v.pt")
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        es.load_checkpoint(tmp_path / "v.pt")
    es.save_checkpoint(tmp_path / "ok.pt", energy_net())
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="spec file .*bad.json is not valid JSON"):
        es.load_checkpoint(tmp_path / "ok.pt", spec=tmp_path / "bad.json")
    with pytest.raises(CheckpointError, match="spec file not found"):
        es.load_checkpoint(tmp_path / "ok.pt", spec=tmp_path / "none.json")
    with pytest.raises(CheckpointError, match="unknown convention 'probability'"):
        es.load_checkpoint(tmp_path / "ok.pt", spec={"convention": "probability"})


def test_spec_errors_are_value_errors():
    with pytest.raises(SpecError, match="unknown layer type 'transformer'"):
        build_module({"type": "Sequential", "layers": [{"type": "transformer"}]})
    assert issubclass(CheckpointError, ValueError)


def test_describe_checkpoint_numbers(tmp_path):
    E = energy_net()
    ref = np.random.default_rng(3).standard_normal((40, D))
    es.save_checkpoint(tmp_path / "d.pt", E, decoder_net(), reference=ref, labels=np.arange(40) % 2,
                       base_prior="standard_normal")
    info = describe_checkpoint(tmp_path / "d.pt", n_samples=500, seed=1)
    assert info["layout"] == "energyscope v1" and info["size_bytes"] == (tmp_path / "d.pt").stat().st_size
    assert info["landscape"]["energy_parameters"] == sum(p.numel() for p in E.parameters())
    assert info["labels"] == {"0": 20, "1": 20}
    assert info["data_shape"] == [10]
    u_ref = U(E, ref, base=True)
    assert info["energy"]["reference"]["mean"] == pytest.approx(u_ref.mean(), rel=1e-6)
    base = np.random.default_rng(1).standard_normal((500, D))
    assert info["energy"]["base"]["mean"] == pytest.approx(U(E, base, base=True).mean(), rel=1e-6)
    assert info["sign_check"]["ok"] == bool(u_ref.mean() < U(E, base, base=True).mean())
    json.dumps(info)


# ---------------------------------------------------------------------------------------------- real layouts (issue 11)
class PangE(nn.Module):
    """The official Pang et al. latent-EBM prior's layout: an MLP held as ``self.ebm`` (keys ``ebm.0.weight``)."""

    def __init__(self, seed: int = 7):
        super().__init__()
        torch.manual_seed(seed)
        self.ebm = nn.Sequential(nn.Linear(D, 20), nn.LeakyReLU(0.2), nn.Linear(20, 20), nn.LeakyReLU(0.2),
                                 nn.Linear(20, 1))

    def forward(self, z):
        return self.ebm(z.squeeze()).view(-1, 1, 1, 1)


class PangG(nn.Module):
    """The official Pang et al. generator's layout: a ConvTranspose stack held as ``self.gen``, fed (N, d, 1, 1)."""

    def __init__(self, seed: int = 8):
        super().__init__()
        torch.manual_seed(seed)
        self.gen = nn.Sequential(nn.ConvTranspose2d(D, 8, 4, 1, 0), nn.Identity(), nn.LeakyReLU(0.2),
                                 nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh())

    def forward(self, z):
        return self.gen(z)


PANG_LAYERS = [{"type": "conv_transpose2d", "stride": 1, "padding": 0}, {"type": "identity"},
               {"type": "leaky_relu", "slope": 0.2}, {"type": "conv_transpose2d", "stride": 2, "padding": 1},
               {"type": "tanh"}]


def pang_checkpoints(tmp_path) -> tuple[PangE, PangG, dict]:
    """The three ways Pang et al.-style code saves: dict of state_dicts (train_svhn.py), one flat state_dict under
    'net' (train_celeba_128.py), and a bare flat state_dict of a wrapper holding netE/netG."""
    E, G = PangE(), PangG()
    esd, gsd = E.state_dict(), G.state_dict()
    nested = {f"netE.{k}": v for k, v in esd.items()} | {f"netG.{k}": v for k, v in gsd.items()}
    paths = {"dict": tmp_path / "svhn.pth", "net": tmp_path / "celeba.pth", "flat": tmp_path / "flat.pth"}
    torch.save({"epoch": 3, "netE": esd, "optE": optimiser_state(energy_net()), "netG": gsd, "optG": {}},
               paths["dict"])
    torch.save({"epoch": 3, "net": nested, "optE": {}, "optG": {}}, paths["net"])
    torch.save(nested, paths["flat"])
    return E, G, paths


def pang_decoded(G: PangG, z: np.ndarray = Z) -> np.ndarray:
    with torch.no_grad():
        return G.double()(torch.as_tensor(z)[:, :, None, None]).numpy()


@pytest.mark.parametrize("layout", ["dict", "net", "flat"])
def test_pang_nested_prefixes_in_a_spec(tmp_path, layout):
    E, G, paths = pang_checkpoints(tmp_path)
    for decoder in ({"prefix": "netG.gen", "layers": PANG_LAYERS},  # the nested prefix, spelt out
                    {"layers": PANG_LAYERS}):                        # found: netG, with its one child 'gen'
        land = es.load_checkpoint(paths[layout], spec={"energy": {"prefix": "netE.ebm", "activation": "leaky_relu"},
                                                       "decoder": decoder})
        np.testing.assert_allclose(land.energy(Z).numpy(), U(E.ebm, base=True), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(land.decode(Z), pang_decoded(G), rtol=1e-6, atol=1e-6)
    info = describe_checkpoint(paths[layout], spec={"decoder": {"layers": PANG_LAYERS}})
    assert any("'netG.gen'" in n for n in info["notes"]) and any("'netE.ebm'" in n for n in info["notes"])


def test_pang_layout_guesses_energy_with_a_standard_normal_base(tmp_path):
    E, _, paths = pang_checkpoints(tmp_path)
    with pytest.warns(UserWarning, match="assumed"):
        land = es.load_checkpoint(paths["dict"], spec={"decoder": None})
    # netE outputs an energy: p(z) ∝ exp(-netE(z)) N(z; 0, I) (Langevin descends netE(z) + ||z||²/2)
    assert (land.convention, land.base_prior) == ("energy", "standard_normal")
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E.ebm, base=True), rtol=1e-6, atol=1e-6)
    assert "Pang" in land.metadata["convention_guess"]
    caution = convention_caution(land)
    assert "cannot confirm the convention without reference latents" in caution and "--data" in caution
    assert convention_caution(land, has_reference=True) is None
    info = describe_checkpoint(paths["dict"], spec={"decoder": None})
    assert info["convention_caution"] == caution
    # a spec that states the convention is not a guess; neither is the energyscope format
    stated = es.load_checkpoint(paths["dict"], spec={"decoder": None, "convention": "energy",
                                                     "energy": {"activation": "leaky_relu"}})
    assert stated.base_prior == "standard_normal" and convention_caution(stated) is None
    es.save_checkpoint(tmp_path / "own.pt", energy_net())
    assert convention_caution(es.load_checkpoint(tmp_path / "own.pt")) is None
    # a spec's explicit null turns the implied base prior off
    plain = es.load_checkpoint(paths["dict"], spec={"decoder": None, "base_prior": None,
                                                    "energy": {"activation": "leaky_relu"}})
    assert plain.base_prior is None
    np.testing.assert_allclose(plain.energy(Z).numpy(), U(E.ebm), rtol=1e-6, atol=1e-6)


def test_a_spec_can_leave_a_role_out(tmp_path):
    E, _, paths = pang_checkpoints(tmp_path)
    with pytest.raises(CheckpointError, match=r"decoder.*convolution.*\"decoder\": null"):
        es.load_checkpoint(paths["net"])  # the conv generator cannot be inferred: say how to skip it
    land = es.load_checkpoint(paths["net"], spec={"energy": {"activation": "leaky_relu"}, "decoder": None})
    assert not land.has_decoder
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E.ebm, base=True), rtol=1e-6, atol=1e-6)
    with pytest.raises(CheckpointError, match="cannot leave out the energy"):
        es.load_checkpoint(paths["net"], spec={"energy": None})
    pytest.importorskip("yaml")
    (tmp_path / "s.yaml").write_text("energy:\n  activation: leaky_relu\ndecoder:\n")  # YAML's empty value: null
    assert not es.load_checkpoint(paths["net"], spec=tmp_path / "s.yaml").has_decoder


def test_prefixes_reach_any_depth_and_bad_ones_list_the_candidates(tmp_path):
    E = energy_net()
    torch.save({"models": {"prior": {f"net.{k}": v for k, v in E.state_dict().items()}}, "step": 5},
               tmp_path / "deep.pt")
    with pytest.warns(UserWarning, match="under 'models.prior.net'.*assumed"):
        land = es.load_checkpoint(tmp_path / "deep.pt", spec={"energy": "models.prior.net"})  # a string: the prefix
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)
    with pytest.raises(CheckpointError, match=r"prefix 'models.prior.nett' for the energy.*models.prior.net"):
        es.load_checkpoint(tmp_path / "deep.pt", spec={"energy": {"prefix": "models.prior.nett"}})


def jem_state_dict(seed: int = 4, K: int = 5) -> tuple[nn.Module, nn.Module, nn.Module, dict]:
    """JEM's layout (Grathwohl et al. 2020), in latent space: a trunk ``f`` and two heads on its output."""
    torch.manual_seed(seed)
    f = nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, 16))
    eo, co = nn.Linear(16, 1), nn.Linear(16, K)
    sd = {f"f.{k}": v for k, v in f.state_dict().items()}
    sd |= {f"energy_output.{k}": v for k, v in eo.state_dict().items()}
    sd |= {f"class_output.{k}": v for k, v in co.state_dict().items()}
    return f, eo, co, sd


@pytest.mark.parametrize("wrap", [False, True])
def test_two_head_state_dicts_are_not_chained(tmp_path, wrap):
    f, eo, co, sd = jem_state_dict()
    ckpt = {"model_state_dict": sd, "replay_buffer": torch.zeros(8, D)} if wrap else sd
    torch.save(ckpt, tmp_path / "jem.pt")
    with pytest.raises(CheckpointError) as err:
        es.load_checkpoint(tmp_path / "jem.pt")
    msg = str(err.value)
    assert "parallel heads" in msg and "'energy_output'" in msg and "'class_output'" in msg and "'f'" in msg
    assert '"prefix": ["f", "energy_output"]' in msg and '"convention": "logits"' in msg
    assert "mat1" not in msg and "shapes cannot be multiplied" not in msg
    relu = nn.ReLU()
    land = es.load_checkpoint(tmp_path / "jem.pt", spec={"energy": {"prefix": ["f", "energy_output"],
                                                                    "activation": "relu"}})
    np.testing.assert_allclose(land.energy(Z).numpy(), U(nn.Sequential(f, relu, eo)), rtol=1e-6, atol=1e-6)
    land = es.load_checkpoint(tmp_path / "jem.pt", spec={"energy": {"prefix": ["f", "class_output"],
                                                                    "activation": "relu"}, "convention": "logits"})
    with torch.no_grad():
        logits = nn.Sequential(f, relu, co).double()(torch.as_tensor(Z))
    np.testing.assert_allclose(land.energy(Z).numpy(), -torch.logsumexp(logits, 1).numpy(), rtol=1e-6, atol=1e-6)
    # per-part settings: no activation between the trunk and the head
    land = es.load_checkpoint(tmp_path / "jem.pt", spec={"energy": {"parts": [
        {"prefix": "f", "activation": "relu", "output_activation": None}, {"prefix": "energy_output"}]}})
    np.testing.assert_allclose(land.energy(Z).numpy(), U(nn.Sequential(f, eo)), rtol=1e-6, atol=1e-6)


def test_several_outputs_or_a_wrong_dim_are_clear_errors(tmp_path):
    f, _, co, sd = jem_state_dict()
    only_classes = {k: v for k, v in sd.items() if not k.startswith("energy_output.")}
    torch.save(only_classes, tmp_path / "ccf.pt")  # trunk + class head only: a plain chain with K outputs
    with pytest.raises(CheckpointError, match=r"last layer gives 5 values per latent.*\"convention\": \"logits\""):
        es.load_checkpoint(tmp_path / "ccf.pt", spec={"energy": {"activation": "relu"}})
    land = es.load_checkpoint(tmp_path / "ccf.pt", spec={"energy": {"activation": "relu"}, "convention": "logits"})
    with torch.no_grad():
        logits = nn.Sequential(f, nn.ReLU(), co).double()(torch.as_tensor(Z))
    np.testing.assert_allclose(land.energy(Z).numpy(), -torch.logsumexp(logits, 1).numpy(), rtol=1e-6, atol=1e-6)
    torch.save({"netE": energy_net().state_dict()}, tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match=r"spec says dim=5 but the energy's first layer takes 3 inputs"):
        es.load_checkpoint(tmp_path / "e.pt", spec={"dim": 5, "energy": {"activation": "leaky_relu"}})


def test_encoder_mean_head_is_chosen_over_the_log_variance_head(tmp_path):
    torch.manual_seed(6)
    fc1, mu, logvar = nn.Linear(10, 12), nn.Linear(12, D), nn.Linear(12, D)
    E = energy_net()
    sd = {f"ebm.{k}": v for k, v in E.state_dict().items()}
    for name, m in (("fc1", fc1), ("fc_mu", mu), ("fc_logvar", logvar)):
        sd |= {f"encoder.{name}.{k}": v for k, v in m.state_dict().items()}
    torch.save(sd, tmp_path / "vae.pt")
    with pytest.warns(UserWarning):
        land = es.load_checkpoint(tmp_path / "vae.pt")
    x = np.random.default_rng(2).standard_normal((7, 10))
    with torch.no_grad():
        want = nn.Sequential(fc1, nn.LeakyReLU(0.2), mu).double()(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(land.encode(x), want, rtol=1e-6, atol=1e-6)
    info = describe_checkpoint(tmp_path / "vae.pt")
    assert any("mean head 'fc_mu'" in n and "fc_logvar" in n for n in info["notes"])


def test_layers_that_do_not_chain_are_one_clear_error(tmp_path):
    class OutOfOrder(nn.Module):  # registered head first: registration order is not the forward order
        def __init__(self):
            super().__init__()
            self.out, self.fc1 = nn.Linear(8, 1), nn.Linear(D, 8)

        def forward(self, z):
            return self.out(torch.relu(self.fc1(z)))
    torch.save({"netE": OutOfOrder().state_dict()}, tmp_path / "o.pt")
    with pytest.raises(CheckpointError, match=r"do not chain.*'fc1.weight' takes 3 .*'out' before it gives 1.*"
                                              r"\"prefix\": \[") as err:
        es.load_checkpoint(tmp_path / "o.pt")
    assert "mat1" not in str(err.value)
    land = es.load_checkpoint(tmp_path / "o.pt", spec={"energy": {"prefix": ["netE.fc1", "netE.out"],
                                                                  "activation": "relu"}})
    assert land.dim == D
    *_, sd = jem_state_dict()
    torch.save(sd, tmp_path / "jem.pt")  # the parts named in the wrong order
    with pytest.raises(CheckpointError, match=r"energy's parts do not chain: 'class_output' gives 5 .*"
                                              r"'energy_output' after it takes 16"):
        es.load_checkpoint(tmp_path / "jem.pt", spec={"energy": ["f", "class_output", "energy_output"]})


def test_spec_mistakes_are_clear_errors_not_internal_ones(tmp_path):
    E = nn.Sequential(nn.Linear(D, 8), nn.GELU(), nn.Linear(8, 1))
    sd = {f"prior_net.{k}": v for k, v in E.state_dict().items()}
    sd |= {f"gen_net.{k}": v for k, v in nn.Linear(D, 4).state_dict().items()}
    torch.save(sd, tmp_path / "w.pt")
    cases = [({"decoder": {"key": "gen_net"}}, r"no energy weights.*prior_net.*\"energy\": \{\"prefix\""),
             ({"energy": 5}, "the spec's 'energy' entry must be"),
             ({"energy": {"key": "prior_net", "layers": "linear"}}, "'layers' must be a list"),
             ({"energy": {"key": "prior_net", "activaton": "gelu"}}, "unknown key 'activaton'"),
             ({"energy": {"key": "prior_net", "prefix": "gen_net"}}, "both 'key' and 'prefix'"),
             ({"energy": {"prefix": ["prior_net", "gen_net"], "layers": [{"type": "linear"}]}}, "'layers' per part"),
             ({"energy": {"parts": [{"prefix": "prior_net"}, {"activation": "relu"}]}}, "part 2 needs a 'prefix'")]
    for spec, match in cases:
        with pytest.raises(CheckpointError, match=match):
            es.load_checkpoint(tmp_path / "w.pt", spec=spec)
    land = es.load_checkpoint(tmp_path / "w.pt", spec={"energy": {"key": "prior_net", "activation": "gelu"},
                                                       "decoder": "gen_net"})
    np.testing.assert_allclose(land.energy(Z).numpy(), U(E), rtol=1e-6, atol=1e-6)


def test_two_candidate_prefixes_for_one_role_are_refused(tmp_path):
    sd = {f"E.{k}": v for k, v in energy_net(0).state_dict().items()}
    sd |= {f"ebm.{k}": v for k, v in energy_net(1).state_dict().items()}
    torch.save(sd, tmp_path / "two.pt")
    with pytest.raises(CheckpointError, match=r"both 'E' and 'ebm' could be the energy.*\"prefix\": \"E\""):
        es.load_checkpoint(tmp_path / "two.pt")
    torch.save({"netE": energy_net(0).state_dict(), "ebm": energy_net(1).state_dict()}, tmp_path / "two_d.pt")
    with pytest.raises(CheckpointError, match=r"both 'netE' and 'ebm' could be the energy"):
        es.load_checkpoint(tmp_path / "two_d.pt")


def test_a_decoder_that_does_not_run_is_a_clear_error(tmp_path):
    G = nn.Sequential(nn.Linear(D, 8), nn.Unflatten(1, (2, 2, 2)), nn.ConvTranspose2d(2, 1, 2, stride=2))
    torch.save({"netE": energy_net().state_dict(), "netG": G.state_dict()}, tmp_path / "g.pt")
    bad = [{"type": "linear"}, {"type": "unflatten", "sizes": [2, 3, 2]}, {"type": "conv_transpose2d", "stride": 2}]
    with pytest.raises(CheckpointError, match=r"the decoder does not run.*\"decoder\": null"):
        es.load_checkpoint(tmp_path / "g.pt", spec={"energy": {"activation": "leaky_relu"},
                                                    "decoder": {"layers": bad}})


ENTRY_WITH_PATH = textwrap.dedent("""
    import json
    from pathlib import Path
    import energyscope as es

    def build(ckpt, checkpoint_path):
        side = json.loads((Path(checkpoint_path).parent / "config.json").read_text())
        return es.Landscape(lambda z: side["scale"] * (z ** 2).sum(1), dim=side["dim"])

    def build_kw(ckpt, **kwargs):
        return es.Landscape(lambda z: (z ** 2).sum(1), dim=2, metadata={"from": str(kwargs["checkpoint_path"])})
""")


def test_entry_points_may_receive_the_checkpoint_path(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "c.pt")
    (tmp_path / "config.json").write_text(json.dumps({"scale": 3.0, "dim": 2}))
    (tmp_path / "entry_path.py").write_text(ENTRY_WITH_PATH)
    land = es.load_checkpoint(tmp_path / "c.pt", model=f"{tmp_path / 'entry_path.py'}:build")
    assert land.dim == 2 and land.energy(np.ones((1, 2))).item() == pytest.approx(6.0)
    land = es.load_checkpoint(tmp_path / "c.pt", model=f"{tmp_path / 'entry_path.py'}:build_kw")
    assert land.metadata["from"] == str(tmp_path / "c.pt")


def test_guessed_convention_is_a_caution_in_inspect_and_the_report(tmp_path, capsys):
    """Without reference latents the sign check cannot catch a wrong convention: inspect and the report say so."""
    from energyscope import cli
    _, _, paths = pang_checkpoints(tmp_path)
    spec = tmp_path / "spec.json"
    spec.write_text('{"decoder": null, "energy": {"activation": "leaky_relu"}}')
    assert cli.main(["inspect", str(paths["dict"]), "--spec", str(spec), "--samples", "64"]) == 0
    out = capsys.readouterr().out
    caution = [line for line in out.splitlines() if line.startswith("caution")]
    assert len(caution) == 1 and "the sign check cannot confirm the convention without reference latents" in caution[0]
    assert "convention_guess" not in out  # not repeated in the metadata row
    land = es.load_checkpoint(paths["dict"], spec=json.loads(spec.read_text()))
    res = es.analyze(land, n_restarts=8, progress=False, masses=False, n_paths=1, grid_size=16)
    assert "cannot confirm the convention without reference latents" in res.model["convention_caution"]
    assert "cannot confirm the convention without reference latents" in res.render_report()
