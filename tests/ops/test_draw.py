"""``Detections.annotate``: boxes, labels and keypoints drawn where they belong, nothing else touched."""

import numpy as np
import pytest

from pyimgcls import Detections
from pyimgcls.ops.draw import PALETTE, annotate, class_color


def _dets(boxes, classes=None, scores=None, names=("cat", "dog", "person")):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Detections(xyxy=boxes, confidence=np.asarray(scores if scores is not None else [0.9] * n, np.float32),
                      class_id=np.asarray(classes if classes is not None else [0] * n, np.int32), class_names=names)


def _changed(a, b):
    return np.any(a != b, axis=-1)


def test_box_edges_drawn_in_class_colour_and_nothing_far_away_touched(photos):
    img = photos["astronaut"]  # 512 x 512 RGB
    d = _dets([[100, 150, 300, 400], [320, 40, 480, 200]], classes=[0, 1])
    out = d.annotate(img, thickness=3)
    assert out.shape == img.shape and out.dtype == np.uint8
    # bottom and right edges (no label there): exactly the class colour, 3 px wide, inside the box
    assert (out[399, 120:280] == class_color(0)).all() and (out[397, 120:280] == class_color(0)).all()
    assert (out[200:380, 299] == class_color(0)).all()
    assert (out[199, 340:460] == class_color(1)).all() and (out[60:180, 479] == class_color(1)).all()
    assert class_color(0) != class_color(1)
    # the box insides (below the labels) and everything away from the boxes are untouched
    ch = _changed(out, img)
    assert not ch[200:390, 110:290].any() and not ch[90:190, 330:470].any()
    allowed = np.zeros(img.shape[:2], bool)
    allowed[150 - 40:400 + 3, 100 - 3:300 + 3] = True  # box 0 with its label above (at most 40 px tall)
    allowed[40 - 40:200 + 3, 320 - 3:480 + 3] = True
    assert not (ch & ~allowed).any()
    # the labels: above each box's top-left corner, filled with the class colour
    assert ch[110:150, 100:140].mean() > 0.5 and (out[140:150, 100:105] == class_color(0)).all(axis=-1).any()


def test_input_is_not_modified_and_empty_detections_give_an_equal_copy(photos):
    img = photos["coffee"]
    before = img.copy()
    out = Detections.empty(["cat"]).annotate(img)
    assert np.array_equal(out, img) and not np.shares_memory(out, img)
    _dets([[10, 10, 100, 100]]).annotate(img)
    assert np.array_equal(img, before)


def test_label_goes_inside_the_box_when_the_box_touches_the_top():
    img = np.full((120, 200, 3), 128, np.uint8)
    out = _dets([[20, 0, 180, 100]], classes=[2]).annotate(img, thickness=2)
    ch = _changed(out, img)
    # label starts at the top-left corner inside the image: filled with the class colour there
    assert (out[0:3, 22:30] == class_color(2)).all()
    assert ch[2:14, 22:60].mean() > 0.8  # the label's background
    assert not ch[40:95, 25:175].any()


def test_label_stays_inside_the_image_on_the_right():
    img = np.full((100, 100, 3), 128, np.uint8)
    out = _dets([[90, 50, 99, 90]], names=["a_long_class_name"]).annotate(img)
    ch = _changed(out, img)
    assert ch[:50, :90].any()  # the label was moved left, inside the image, above the box
    assert not ch[:, :].all()


def test_boxes_partly_or_far_outside_the_image_are_clipped_not_refused():
    img = np.full((100, 100, 3), 128, np.uint8)
    out = _dets([[-50, -50, 60, 60], [80, 80, 1e9, 1e9], [-1e9, 200, -1e8, 300]], classes=[0, 1, 2]).annotate(
        img, thickness=1, labels=False)
    assert (out[59, 0:60] == class_color(0)).all() and (out[0:60, 59] == class_color(0)).all()
    assert (out[80, 80:100] == class_color(1)).all() and (out[80:100, 80] == class_color(1)).all()
    ch = _changed(out, img)
    assert ch.sum() == 60 + 59 + 20 + 19  # the third box is entirely outside: nothing drawn


def test_class_colours_come_from_the_fixed_palette_by_id():
    img = np.zeros((64, 64 * 25, 3), np.uint8)
    boxes = [[64 * k + 8, 8, 64 * k + 56, 56] for k in range(25)]
    out = _dets(boxes, classes=list(range(25)), names=[str(k) for k in range(25)]).annotate(img, thickness=1,
                                                                                           labels=False)
    for k in range(25):
        assert tuple(out[55, 64 * k + 30]) == PALETTE[k % len(PALETTE)]


def test_best_box_drawn_last():
    img = np.zeros((50, 50, 3), np.uint8)
    d = _dets([[10, 10, 40, 40], [10, 10, 40, 40]], classes=[0, 1], scores=[0.9, 0.3])
    out = d.annotate(img, thickness=1, labels=False)
    assert tuple(out[39, 20]) == class_color(0)


def test_gray_and_rgba_inputs():
    gray = np.full((80, 90), 50, np.uint8)
    d = _dets([[10, 10, 70, 70]])
    out = d.annotate(gray, thickness=1, labels=False)
    assert out.shape == (80, 90, 3) and (out[69, 10:70] == class_color(0)).all() and (out[40, 40] == 50).all()
    assert np.array_equal(d.annotate(gray[:, :, None], thickness=1, labels=False), out)
    rgba = np.zeros((80, 90, 4), np.uint8)
    rgba[..., 3] = 7
    out = d.annotate(rgba, thickness=1)
    assert out.shape == (80, 90, 4)
    assert tuple(out[69, 30]) == (*class_color(0), 255) and tuple(out[40, 40]) == (0, 0, 0, 7)


@pytest.mark.parametrize("bad, err, match", [
    (np.zeros((10, 10, 3), np.float32), TypeError, "uint8"),
    (np.zeros((10, 10, 2), np.uint8), ValueError, r"shape \(H, W\)"),
    (np.zeros((0, 10, 3), np.uint8), ValueError, "empty"),
    ([[1, 2], [3, 4]], TypeError, "numpy array"),
])
def test_bad_images_are_refused_with_the_reason(bad, err, match):
    with pytest.raises(err, match=match):
        _dets([[1, 1, 5, 5]]).annotate(bad)


def test_bad_drawing_options_are_refused():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="thickness"):
        _dets([[1, 1, 5, 5]]).annotate(img, thickness=0)
    with pytest.raises(ValueError, match="palette"):
        _dets([[1, 1, 5, 5]]).annotate(img, palette=[(300, 0, 0)])


@pytest.mark.parametrize("scale", [float("inf"), float("nan"), 1e4, -1.0])
def test_text_scale_out_of_range_is_a_value_error_not_a_crash(scale):
    """OpenCV's putText killed the process (SIGSEGV) from a text scale of a few thousand, and
    took seconds from a few hundred: the scale is limited to 100."""
    with pytest.raises(ValueError, match=r"text_scale must be in \(0, 100\]"):
        _dets([[1, 1, 5, 5]]).annotate(np.zeros((10, 10, 3), np.uint8), text_scale=scale)
    assert _dets([[1, 1, 5, 5]]).annotate(np.zeros((10, 10, 3), np.uint8), text_scale=100).shape == (10, 10, 3)


def test_thickness_past_opencv_limit_is_a_value_error():
    img = np.zeros((10, 10, 3), np.uint8)
    for t in (40000, 2 ** 40):  # cv2.error (an assertion / an overload failure) before
        with pytest.raises(ValueError, match=r"thickness must be in \[1, 32767\]"):
            _dets([[1, 1, 5, 5]]).annotate(img, thickness=t)
    # the default text scale of a thick line stays in range
    assert _dets([[1, 1, 5, 5]]).annotate(img, thickness=600).shape == (10, 10, 3)


def test_line_width_grows_with_the_image():
    d = _dets([[0.1, 0.1, 0.9, 0.9]])
    widths = []
    for side in (100, 1000, 3000):
        img = np.zeros((side, side, 3), np.uint8)
        dd = Detections(xyxy=d.xyxy * side, confidence=d.confidence, class_id=d.class_id, class_names=d.class_names)
        out = dd.annotate(img, labels=False)
        col = _changed(out, img)[:, side // 2]
        widths.append(int(col[side // 2:].sum()))  # the bottom edge's width
    assert widths[0] >= 1 and widths[0] < widths[1] < widths[2]


def test_keypoints_drawn_as_dots():
    img = np.zeros((100, 100, 3), np.uint8)
    kp = np.array([[[30, 40], [70, 40], [50, 60], [np.nan, np.nan], [500, 500]]], np.float32)
    out = annotate(img, np.array([[10, 10, 90, 90]], np.float32), np.array([0.9], np.float32),
                   np.array([0], np.int32), ["face"], kp, thickness=2, labels=False)
    for x, y in ((30, 40), (70, 40), (50, 60)):
        assert tuple(out[y, x]) == class_color(0)
    assert not _changed(out, img)[20:80, 20:80].sum() > 3 * 60  # three small dots, not a fill
