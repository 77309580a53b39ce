"""Cross-instance mixing at matched poses: partners and the slerped label (training with it: test_train.py)."""

import numpy as np
import torch

from vantage.geometry import geodesic_distance, viewpoint_to_rotation
from vantage.train.instance_mix import mix, pose_partners, slerp


def _rotations(azimuths_deg: list[float]) -> np.ndarray:
    a = np.asarray(azimuths_deg, float)
    return viewpoint_to_rotation(a, np.full_like(a, 12.0), np.zeros_like(a))


def test_partners_are_the_nearest_pose_of_another_instance_of_the_category_within_the_radius():
    rotations = _rotations([0, 5, 12, 40, 3, 90])[None]  # one copy
    categories = np.array([0, 0, 0, 0, 1, 0])
    instances = np.array(["a", "a", "b", "b", "c", "d"])
    partners = pose_partners(rotations, categories, instances, radius_deg=20.0)
    # a@0° and a@5° pair with b@12° (never with their own instance, a@5° is nearer for a@0°); b@12° with a@5°;
    # b@40° has no other instance within 20°; c is alone in its category; d@90° is 50° from b@40°
    assert partners.tolist() == [[2, 2, 1, -1, -1, -1]]
    assert pose_partners(rotations, categories, instances, radius_deg=60.0)[0, 5] == 3


def test_slerp_goes_the_given_share_of_the_geodesic_and_mix_blends_features_alike():
    a, b = _rotations([10, 70, 200]), _rotations([30, 40, 160])
    w = np.array([0.0, 0.25, 0.5])
    r = slerp(a, b, w)
    total = geodesic_distance(a, b)
    np.testing.assert_allclose(geodesic_distance(a, r), w * total, atol=1e-6)
    np.testing.assert_allclose(geodesic_distance(r, b), (1 - w) * total, atol=1e-6)
    np.testing.assert_allclose(r[0], a[0], atol=1e-12)
    x, y = torch.ones(3, 2, 4, 4), torch.zeros(3, 2, 4, 4)
    blended, r2 = mix(x, y, a, b, w)
    assert torch.allclose(blended[:, 0, 0, 0], torch.tensor([1.0, 0.75, 0.5]))
    np.testing.assert_allclose(r2, r)
