"""Crop pre-processing and image decoding shared by training and serving."""

import cv2
import numpy as np
import pytest

from vantage.imaging import ImageError, crop_square, decode_image, image_size_from_header, normalise, validate_box


def _png(img):
    return cv2.imencode(".png", img[:, :, ::-1])[1].tobytes()


def test_crop_square_pads_with_edge_pixels_instead_of_stretching():
    img = np.zeros((40, 100, 3), np.uint8)
    img[:, :50] = (255, 0, 0)
    img[:, 50:] = (0, 0, 255)
    crop = crop_square(img, None, 50, margin=0.0)  # whole 100×40 image → 100×100 square
    assert crop.shape == (50, 50, 3)
    # rows above/below the image replicate the edge rows: left half red, right half blue, everywhere
    assert (crop[0, :20] == (255, 0, 0)).all() and (crop[-1, -20:] == (0, 0, 255)).all()


def test_crop_square_is_centred_on_the_box_with_margin():
    img = np.zeros((200, 200, 3), np.uint8)
    img[90:110, 80:120] = 255  # a 40×20 white box
    crop = crop_square(img, (80, 90, 120, 110), 60, margin=0.25)  # side 40 * 1.5 = 60
    white = np.argwhere(crop[:, :, 0] > 128)
    assert white[:, 1].min() == 10 and white[:, 1].max() == 49
    assert white[:, 0].min() == 20 and white[:, 0].max() == 39


@pytest.mark.parametrize(
    "box,msg",
    [((10, 10, 10, 20), "zero"), ((0, 0, float("nan"), 5), "non-finite"), ((500, 500, 600, 600), "outside"), ((1, 2, 3), "4 numbers")],
)
def test_bad_boxes_are_refused(box, msg):
    with pytest.raises(ImageError, match=msg):
        validate_box(box, 100, 100)


def test_decode_round_trip_and_errors():
    img = np.random.default_rng(0).integers(0, 255, (30, 20, 3), dtype=np.uint8)
    png = _png(img)
    assert image_size_from_header(png) == (20, 30)
    jpg = cv2.imencode(".jpg", img)[1].tobytes()
    assert image_size_from_header(jpg) == (20, 30)
    np.testing.assert_array_equal(decode_image(png), img)
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="could not be decoded"):
        decode_image(b"definitely not an image")
    with pytest.raises(ImageError, match="limit"):
        decode_image(png, max_pixels=100)


def test_normalise_layout_and_values():
    crops = np.full((2, 4, 4, 3), 255, np.uint8)
    x = normalise(crops, (0.5, 0.5, 0.5), (0.5, 0.25, 0.5))
    assert x.shape == (2, 3, 4, 4) and x.dtype == np.float32
    assert np.allclose(x[:, 1], 2.0) and np.allclose(x[:, 0], 1.0)
