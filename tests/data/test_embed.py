"""The embedding and neighbour index against independent computations (torch, brute force)."""

import numpy as np
import torch
import torch.nn.functional as F

from workbench.data.embed import NeighbourIndex, blurred, centred, neighbours
from workbench.data.scan import resize


def test_resize_matches_torch_antialiased_bilinear():
    g = torch.rand(4, 28, 20)
    for h, w in ((16, 16), (8, 12), (40, 30)):
        ref = F.interpolate(g[:, None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[:, 0]
        assert np.abs(resize(g.numpy(), h, w) - ref.numpy()).max() < 1e-5


def test_centring_undoes_a_shift():
    t = np.zeros((2, 16, 16), np.float32)
    t[0, 4:8, 3:9] = 1
    t[1, 6:10, 7:13] = 1  # the same block, moved by (2, 4)
    c = centred(t)
    assert np.abs(c[0] - c[1]).max() < 1e-5


def test_blur_keeps_the_mean_and_smooths():
    t = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    b = blurred(t, 1.0)
    assert np.allclose(b.mean((1, 2)), t.mean((1, 2)), atol=1e-2)
    assert b.std() < t.std()


def test_index_matches_brute_force():
    rng = np.random.default_rng(0)
    E = (rng.standard_normal((5000, 16)) * np.linspace(3, 0.5, 16)).astype(np.float32)
    dist, ind, _ = neighbours(E, 5)
    D = ((E[:300, None] - E[None]) ** 2).sum(-1)
    D[np.arange(300), np.arange(300)] = np.inf
    true = np.argsort(D, 1)[:, :5]
    recall = np.mean([len(set(true[i]) & set(ind[i])) / 5 for i in range(300)])
    assert recall >= 0.9
    assert np.mean(ind[:300, 0] == true[:, 0]) >= 0.95
    assert (ind != np.arange(5000)[:, None]).all()  # never itself
    np.testing.assert_allclose(dist[np.arange(300), 0], np.sqrt(D[np.arange(300), ind[:300, 0]]), rtol=1e-3)


def test_small_index_is_exact():
    E = np.random.default_rng(1).standard_normal((400, 8)).astype(np.float32)
    idx = NeighbourIndex(E)
    _, ind = idx.query(E, 3, exclude_self=True)
    D = ((E[:, None] - E[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    assert (ind == np.argsort(D, 1)[:, :3]).all()
