"""D2C-SR: network shapes and parameter counts, the divergence loss against hand-computed values,
its schedule, the joint/sequential training steps, resume, and that the loss pushes branches apart."""

from __future__ import annotations

import math

import pytest
import torch

from realsr.errors import UsageError
from realsr.train.config import D2CConfig, from_dict
from realsr.train.d2c import d2c_normalise, divergence_loss, divergence_weight, residual_distance
from realsr.train.models import build
from realsr.train.trainer import Trainer

# METHODS.md 1.3, counted from the official layer list
PARAMS = {2: 5_178_700, 3: 5_917_260, 4: 5_769_548, 8: 6_360_396}


@pytest.mark.parametrize("scale", sorted(PARAMS))
def test_parameter_counts_and_output_sizes(scale):
    m = build("d2csr", scale=scale)
    assert sum(p.numel() for p in m.parameters()) == PARAMS[scale]
    assert sum(p.numel() for p in m.convergence.parameters()) == 46_080
    if scale == 4:
        with torch.no_grad():
            assert m(torch.rand(1, 3, 6, 5)).shape == (1, 3, 24, 20)


def test_fusion_weights_sum_to_one_and_mix_the_branches():
    torch.manual_seed(0)
    m = build("d2csr", scale=2, num_feat=16, num_group=1, num_block=1, reduction=4).eval()
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        outs = m.divergence(x)
        fused = m(x)
        with m.outputting("weights"):
            w = m(x)
        with m.outputting("21"):
            b21 = m(x)
    assert w.shape == (2, 4, 18, 14)
    assert torch.allclose(w.sum(1), torch.ones(2, 18, 14), atol=1e-6) and (w >= 0).all()
    assert torch.allclose(fused, sum(w[:, k:k + 1] * outs[k] for k in range(4)), atol=1e-6)
    assert torch.equal(b21, outs[2])
    assert m._output == "fused"
    with pytest.raises(UsageError, match="d2csr output must be"):
        with m.outputting("33"):
            pass
    # the other backbone: EDSR residual blocks in every node
    e = build("d2csr", scale=2, num_feat=16, num_group=1, num_block=2, node="edsr")
    assert e(torch.rand(1, 3, 5, 5)).shape == (1, 3, 10, 10)


def test_normalisation_is_per_batch_with_the_population_std():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(2, 1, 1, 2).expand(2, 3, 1, 2)
    n = d2c_normalise(x)
    # mean 2.5, population std sqrt(1.25) = 1.118 (MegEngine F.std; unbiased would be 1.291)
    assert torch.allclose(n.flatten(), (torch.tensor([1.0, 2, 3, 4]) - 2.5) / math.sqrt(1.25))


def test_divergence_loss_against_a_hand_computed_value():
    # two-pixel images: any non-constant channel mean normalises to (-1, 1) or (1, -1)
    hr = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    same, flipped = hr.clone(), hr.flip(3)
    # residuals r = |norm(o) - norm(hr)|: branches 11 and 21 give 0, branches 12 and 22 give 2
    outs = [same, flipped, same, flipped]
    ms, md = 2e-5, 5e-5
    # ordered pairs (i, j), term max(mean(r_i^2) - mean((r_i - r_j)^2) + m, 0):
    #   (11,12) s: 0-4+ms -> 0      (11,21) c: md        (11,22) c: 0-4+md -> 0
    #   (12,11) s: 4-4+ms -> 0.8ms  (12,21) c: 4-4+md    (12,22) c: 4-0+md
    #   (21,11) c: md               (21,12) c: -> 0      (21,22) s: -> 0
    #   (22,11) c: 4-4+md           (22,12) c: 4+md      (22,21) s: 0.8ms
    expected = (8 + 6 * md + 1.6 * ms) / 12
    got = divergence_loss(outs, hr, ms, md, 0.8)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # margins swapped give another value: siblings and cousins are told apart
    assert divergence_loss(outs, hr, md, ms, 0.8).item() == pytest.approx((8 + 6 * ms + 1.6 * md) / 12, rel=1e-6)
    assert residual_distance(outs, hr).item() == pytest.approx(4 * 4 / 6)


def test_divergence_weight_schedule():
    c = D2CConfig(weight=2e-5)
    w = [divergence_weight(e * 10, c, 10) for e in (0, 200, 201, 999, 1000, 1199, 1200, 2000, 2199, 2200, 4100)]
    assert w == [0, 0, 0, 0, 2e-5, 2e-5, 0, 1e-5, 1e-5, 0, 5e-6]
    assert divergence_weight(0, D2CConfig(weight=3.0, schedule="always"), 10) == 3.0


def _tree(kit, pairs, **d2c):
    return kit.tiny(pairs, method="d2c",
                    model={"arch": "d2csr", "args": {"num_feat": 8, "num_group": 1, "num_block": 1, "reduction": 4}},
                    losses={"pixel": {"kind": "l2", "weight": 1.0}},
                    d2c={"schedule": "always", "weight": 1.0, **d2c},
                    optim={"iterations": 6, "ema": 0, "generator": {"lr": 1e-3}, "convergence": {"lr": 1e-3}})


def test_joint_training_resumes_exactly(tmp_path, pairs, kit):
    full = Trainer(from_dict(_tree(kit, pairs)), tmp_path / "full", progress=False)
    full.run()
    part = Trainer(from_dict(_tree(kit, pairs), ["optim.iterations=3"]), tmp_path / "part", progress=False)
    part.run()
    resumed = Trainer(from_dict(_tree(kit, pairs)), tmp_path / "part", resume=True, progress=False)
    assert resumed.iteration == 3
    assert resumed.method.opt.state_dict()["state"]  # the convergence optimiser's moments came back
    resumed.run()
    a, b = kit.losses_of(tmp_path / "full"), kit.losses_of(tmp_path / "part")
    assert [i for i, _ in a] == [i for i, _ in b] == list(range(1, 7))
    for (_, x), (_, y) in zip(a, b):
        assert set(x) == {"branches", "divergence", "residual_distance", "convergence"}
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-5, abs=1e-7), k


def test_divergence_loss_pushes_branches_apart(tmp_path, pairs, kit):
    """Same start, same data: with the loss in the graph the branches' residuals end further apart
    than with the released code's detached loss (which only logs it)."""
    dist = {}
    for in_graph in (True, False):
        tree = _tree(kit, pairs, in_graph=in_graph, weight=5.0)
        tree["optim"]["iterations"] = 12
        Trainer(from_dict(tree), tmp_path / str(in_graph), progress=False).run()
        dist[in_graph] = kit.losses_of(tmp_path / str(in_graph))
    assert dist[True][0][1]["residual_distance"] == pytest.approx(dist[False][0][1]["residual_distance"])
    assert dist[True][-1][1]["residual_distance"] > 1.2 * dist[False][-1][1]["residual_distance"]
    assert dist[True][-1][1]["residual_distance"] > dist[True][0][1]["residual_distance"]


def test_sequential_mode_trains_one_network_at_a_time(tmp_path, pairs, kit):
    tr = Trainer(from_dict(_tree(kit, pairs, mode="sequential", divergence_iterations=3)), tmp_path / "s", progress=False)
    conv0 = [p.detach().clone() for p in tr.G.convergence.parameters()]
    tr.run()
    recs = kit.losses_of(tmp_path / "s")
    assert all("branches" in x and "convergence" not in x for i, x in recs if i <= 3)
    assert all("convergence" in x and "branches" not in x for i, x in recs if i > 3)
    assert any(not torch.equal(a, b) for a, b in zip(conv0, tr.G.convergence.parameters()))


def test_d2c_config_errors(pairs, kit):
    bad = _tree(kit, pairs)
    bad["model"] = {"arch": "rrdbnet"}
    with pytest.raises(UsageError, match="method d2c trains the d2csr architecture"):
        from_dict(bad)
    with pytest.raises(UsageError, match="method d2c uses losses.pixel only"):
        from_dict(_tree(kit, pairs), ["losses.tv.weight=1"])
    with pytest.raises(UsageError, match="d2c.mode: 'both' is not one of"):
        from_dict(_tree(kit, pairs), ["d2c.mode=both"])
    plain = kit.tiny(pairs, model={"arch": "d2csr"})
    with pytest.raises(UsageError, match="trained with method: d2c"):
        from_dict(plain)
