import numpy as np

from realsr.capture_align.field import PolyField, fit_field


def test_fit_recovers_radial_distortion_and_ignores_outliers():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 800, (300, 2))
    c, r, k1 = np.array([400.0, 300.0]), 500.0, -0.02
    d = pts - c
    true = d * (k1 * (d**2).sum(1, keepdims=True) / r**2)  # exactly cubic
    noisy = true + rng.normal(0, 0.02, true.shape)
    noisy[:30] += rng.normal(0, 3.0, (30, 2))  # bad tiles
    f = fit_field(pts, noisy, (400.0, 300.0), 500.0, degree=3)
    dx, dy = f(pts[:, 0], pts[:, 1])
    err = np.hypot(dx - true[:, 0], dy - true[:, 1])
    assert np.median(err) < 0.01 and err.max() < 0.06


def test_degree_drops_with_few_points_and_grid_matches_pointwise():
    pts = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5.0]])
    f = fit_field(pts, np.ones((5, 2)), (5.0, 5.0), 7.0, degree=3)
    assert f.degree == 0 and np.allclose(f.coef_x, [1.0])
    rng = np.random.default_rng(1)
    g = PolyField(3, (50.0, 40.0), 60.0, tuple(rng.normal(size=10)), tuple(rng.normal(size=10)))
    xs, ys = np.linspace(0, 100, 11), np.linspace(0, 80, 9)
    gx, gy = np.meshgrid(xs, ys)
    a, b = g(gx, gy), g.on_grid(xs, ys)
    assert np.abs(a[0] - b[0]).max() < 1e-4 and np.abs(a[1] - b[1]).max() < 1e-4
    back = PolyField.from_json(g.to_json())
    assert back == g
    s = g.add(PolyField.zero(g.centre, g.norm, 1))
    assert np.allclose(s(gx, gy)[0], a[0])
