import numpy as np
import pytest

from realsr.capture_align import geometry as geo


def test_scaling_keeps_pixel_edges():
    s = geo.scaling(0.5)
    # the left edge of pixel 0 (-0.5) stays the left edge; pixel centres 0,1 -> 0.25 - 0.5 ...
    assert np.allclose(geo.apply(s, [[-0.5, -0.5], [1.5, 3.5]]), [[-0.5, -0.5], [0.5, 1.5]])
    assert np.allclose(geo.scaling(2.0) @ geo.scaling(0.5), np.eye(3))


def test_fit_homography_with_outliers_is_accurate():
    rng = np.random.default_rng(0)
    h = geo.normalize(np.array([[0.51, 0.01, 30.0], [-0.012, 0.49, 12.0], [2e-5, -1e-5, 1.0]]))
    src = rng.uniform(0, 1000, (400, 2))
    dst = geo.apply(h, src) + rng.normal(0, 0.2, (400, 2))
    dst[:120] = rng.uniform(0, 500, (120, 2))  # 30 % outliers
    for method in ("magsac", "ransac"):
        fit = geo.fit_transform(src, dst, "homography", method, threshold=1.5)
        assert fit is not None and fit.n_inliers >= 270
        assert geo.displacement(fit.matrix @ np.linalg.inv(h), geo.apply(h, src[120:])).max() < 0.1
    aff = geo.fit_transform(src[120:], geo.apply(np.array([[0.5, 0.02, 3], [0.01, 0.5, 4], [0, 0, 1.0]]), src[120:]),
                            "affine", "magsac", 1.0)
    assert aff is not None and np.allclose(aff.matrix[2], [0, 0, 1])
    assert geo.fit_transform(src[:3], dst[:3]) is None


def test_local_scale_orientation_and_convexity():
    h = np.diag([0.25, 0.25, 1.0])
    assert geo.local_scale(h, (10, 10)) == pytest.approx(0.25)
    assert geo.is_orientation_preserving(h, (0, 0))
    assert not geo.is_orientation_preserving(np.diag([-1.0, 1.0, 1.0]), (0, 0))
    assert geo.is_convex(np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]]))
    assert not geo.is_convex(np.array([[0, 0], [1, 1], [1, 0], [0, 1.0]]))


def test_largest_centred_box_inside_polygon_and_frame():
    poly = np.array([[10.0, 5.0], [90.0, 8.0], [88.0, 60.0], [12.0, 58.0]])
    box = geo.largest_centred_box(poly, (50.0, 32.0), (70, 100), aspect=1.5)
    x0, y0, x1, y1 = box
    corners = geo.box_corners(box)
    edges = np.roll(poly, -1, axis=0) - poly  # this polygon is clockwise in image coordinates
    cross = edges[None, :, 0] * (corners[:, None, 1] - poly[None, :, 1]) - edges[None, :, 1] * (
        corners[:, None, 0] - poly[None, :, 0])
    assert (cross >= 0).all()  # every corner on the inner side of every edge
    assert x1 - x0 > 60 and y1 - y0 > 40  # near the largest possible
    shrunk = geo.largest_centred_box(poly, (50.0, 32.0), (70, 100), aspect=1.5, shrink=0.1)
    assert (shrunk[2] - shrunk[0]) <= 0.82 * (x1 - x0) + 1
    # a footprint larger than the LR: limited by the LR frame
    big = np.array([[-100.0, -100.0], [300.0, -100.0], [300.0, 300.0], [-100.0, 300.0]])
    assert geo.largest_centred_box(big, (49.5, 34.5), (70, 100), aspect=1.5) == (0, 0, 100, 70)
    assert geo.largest_centred_box(poly, (500.0, 500.0), (70, 100), 1.5) is None
