"""
pyimgcls native core (private; use the pyimgcls package)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['ap_auc_columns', 'batched_nms', 'binary_curve', 'box_iou', 'coco_evaluate', 'confusion_update', 'crop_kernel_sets', 'crop_resize', 'decode_png', 'decode_yolo', 'linear_kernel_available', 'load_pngs', 'nms', 'preprocess_batch', 'preprocess_kernel_sets', 'read_small_file', 'soft_nms', 'softmax_hessp', 'softmax_loss_grad', 'top_k_hits', 'usable_cores']
@typing.overload
def ap_auc_columns(scores: numpy.typing.NDArray[numpy.float32], truth: numpy.typing.NDArray[numpy.uint8], threads: typing.SupportsInt | typing.SupportsIndex) -> tuple:
    ...
@typing.overload
def ap_auc_columns(scores: numpy.typing.NDArray[numpy.float64], truth: numpy.typing.NDArray[numpy.uint8], threads: typing.SupportsInt | typing.SupportsIndex) -> tuple:
    ...
@typing.overload
def batched_nms(boxes: numpy.typing.NDArray[numpy.float32], scores: numpy.typing.NDArray[numpy.float32], class_ids: numpy.typing.NDArray[numpy.int64], iou_threshold: typing.SupportsFloat | typing.SupportsIndex, score_threshold: typing.SupportsFloat | typing.SupportsIndex | None, max_output: typing.SupportsInt | typing.SupportsIndex | None, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int64]:
    ...
@typing.overload
def batched_nms(boxes: numpy.typing.NDArray[numpy.float64], scores: numpy.typing.NDArray[numpy.float64], class_ids: numpy.typing.NDArray[numpy.int64], iou_threshold: typing.SupportsFloat | typing.SupportsIndex, score_threshold: typing.SupportsFloat | typing.SupportsIndex | None, max_output: typing.SupportsInt | typing.SupportsIndex | None, threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int64]:
    ...
@typing.overload
def binary_curve(scores: numpy.typing.NDArray[numpy.float32], truth: numpy.typing.NDArray[numpy.uint8]) -> tuple:
    ...
@typing.overload
def binary_curve(scores: numpy.typing.NDArray[numpy.float64], truth: numpy.typing.NDArray[numpy.uint8]) -> tuple:
    ...
@typing.overload
def box_iou(boxes1: numpy.typing.NDArray[numpy.float32], boxes2: numpy.typing.NDArray[numpy.float32], threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    ...
@typing.overload
def box_iou(boxes1: numpy.typing.NDArray[numpy.float64], boxes2: numpy.typing.NDArray[numpy.float64], threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    ...
def coco_evaluate(gt_begin: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], gt_box: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], gt_cat: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], gt_crowd: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], gt_area: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], gt_id: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], dt_begin: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], dt_box: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], dt_cat: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], dt_score: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], cat_ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], iou_thrs: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], rec_thrs: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], area_rngs: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], max_dets: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], zero_id_unmatched: bool, threads: typing.SupportsInt | typing.SupportsIndex) -> tuple:
    ...
def confusion_update(y_true: numpy.typing.NDArray[numpy.int64], y_pred: numpy.typing.NDArray[numpy.int64], matrix: numpy.typing.NDArray[numpy.int64]) -> None:
    ...
def crop_kernel_sets() -> list[str]:
    """
    Names of the crop_resize row kernel sets this build and this CPU offer ('baseline', then 'avx2').
    """
def crop_resize(image: numpy.ndarray, boxes: numpy.typing.NDArray[numpy.float64], out_h: typing.SupportsInt | typing.SupportsIndex, out_w: typing.SupportsInt | typing.SupportsIndex, interpolation: typing.SupportsInt | typing.SupportsIndex, layout: typing.SupportsInt | typing.SupportsIndex, fill: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], scale: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], bias: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], threads: typing.SupportsInt | typing.SupportsIndex, out_uint8: bool = False, kernels: str = 'auto', out: typing.Any = None) -> numpy.ndarray:
    """
    Box crops of a uint8 image (any strides) resampled to out_h x out_w, out = value * scale + bias, layout 0 NCHW / 1 NHWC / 2 NWHC; float32, or uint8 (rounded, saturated) with out_uint8 (see csrc/core/crop/crop_resize.h). `kernels`: the bilinear path's row kernels, 'auto' (the best here) or one of crop_kernel_sets() (bit-identical outputs). `out`: None (a new array) or a writeable C-contiguous array of the result's shape and dtype, sharing no memory with image or boxes, written and returned.
    """
def decode_png(data: bytes, out: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
    """
    Decodes a clean 8-bit, non-interlaced gray / gray+alpha / RGB / RGBA PNG into a uint8 array: out 0 (H, W, 3) RGB, 1 (H, W, 3) BGR (alpha dropped, gray replicated), 2 (H, W) gray (gray files only), 3 the stored channels (not gray+alpha). Returns None for every other file (palette, 16-bit, interlaced, transparency chunk, any CRC / zlib / structure error, a header too large to allocate): decode those with a full decoder, which gives its answer or its error. Releases the GIL.
    """
def decode_yolo(output: numpy.typing.NDArray[numpy.float32], layout: typing.SupportsInt | typing.SupportsIndex, conf_threshold: typing.SupportsFloat | typing.SupportsIndex, iou_threshold: typing.SupportsFloat | typing.SupportsIndex, max_det: typing.SupportsInt | typing.SupportsIndex, max_candidates: typing.SupportsInt | typing.SupportsIndex, class_agnostic: bool, multi_label: bool, threads: typing.SupportsInt | typing.SupportsIndex) -> list:
    ...
def linear_kernel_available(kernel: str) -> bool:
    """
    Whether the softmax kernels named 'auto', 'scalar' or 'avx2' can run on this CPU and build.
    """
def load_pngs(paths: list, max_size: typing.SupportsInt | typing.SupportsIndex, max_pixels: typing.SupportsInt | typing.SupportsIndex, out: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> list:
    """
    Reads and decodes a list of PNG files (os.fsencode()'d paths) on `threads` threads with the GIL released: each entry is the image as decode_png(data, out) gives it, or None where the file is not taken (unreadable, not a regular file of at most max_size bytes, not a PNG decode_png decodes, more than max_pixels pixels (0: no limit), an eXIf chunk before the image data). Decode the None entries with read_image.
    """
@typing.overload
def nms(boxes: numpy.typing.NDArray[numpy.float32], scores: numpy.typing.NDArray[numpy.float32], iou_threshold: typing.SupportsFloat | typing.SupportsIndex, score_threshold: typing.SupportsFloat | typing.SupportsIndex | None, max_output: typing.SupportsInt | typing.SupportsIndex | None) -> numpy.typing.NDArray[numpy.int64]:
    ...
@typing.overload
def nms(boxes: numpy.typing.NDArray[numpy.float64], scores: numpy.typing.NDArray[numpy.float64], iou_threshold: typing.SupportsFloat | typing.SupportsIndex, score_threshold: typing.SupportsFloat | typing.SupportsIndex | None, max_output: typing.SupportsInt | typing.SupportsIndex | None) -> numpy.typing.NDArray[numpy.int64]:
    ...
def preprocess_batch(images: list, plans: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], out: numpy.ndarray, layout: typing.SupportsInt | typing.SupportsIndex, interpolation: typing.SupportsInt | typing.SupportsIndex, out_channels: typing.SupportsInt | typing.SupportsIndex, channel_map: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], gray_weights: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], scale: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], bias: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], pad: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], threads: typing.SupportsInt | typing.SupportsIndex, kernels: str = 'auto') -> None:
    """
    Fused resize / crop / pad / normalise / layout of a batch into `out` (see csrc/core/preprocess/preprocess.h). `kernels`: the colour row kernel set, 'auto' (the best one here) or one of preprocess_kernel_sets().
    """
def preprocess_kernel_sets() -> list[str]:
    """
    Names of the preprocessing kernel sets this build and this CPU offer ('scalar', then 'sse2', 'sse41').
    """
def read_small_file(path: bytes, max_size: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
    """
    The bytes of a regular file of at most max_size bytes (path: os.fsencode()'d), read in one call with the GIL released (O_NONBLOCK: a FIFO never blocks). None for anything else (not a regular file, larger than max_size, no POSIX files here): read those another way. OSError (errno, path) if open / fstat / read fails.
    """
@typing.overload
def soft_nms(boxes: numpy.typing.NDArray[numpy.float32], scores: numpy.typing.NDArray[numpy.float32], method: typing.SupportsInt | typing.SupportsIndex, sigma: typing.SupportsFloat | typing.SupportsIndex, iou_threshold: typing.SupportsFloat | typing.SupportsIndex, score_threshold: typing.SupportsFloat | typing.SupportsIndex) -> tuple:
    ...
@typing.overload
def soft_nms(boxes: numpy.typing.NDArray[numpy.float64], scores: numpy.typing.NDArray[numpy.float64], method: typing.SupportsInt | typing.SupportsIndex, sigma: typing.SupportsFloat | typing.SupportsIndex, iou_threshold: typing.SupportsFloat | typing.SupportsIndex, score_threshold: typing.SupportsFloat | typing.SupportsIndex) -> tuple:
    ...
def softmax_hessp(x: numpy.typing.NDArray[numpy.float32], p: numpy.typing.NDArray[numpy.float32], v: numpy.typing.NDArray[numpy.float32], vb: numpy.typing.NDArray[numpy.float32], threads: typing.SupportsInt | typing.SupportsIndex = 0, kernel: str = 'auto') -> tuple:
    """
    The softmax loss's Hessian at probabilities p (n, K) applied to (v (K, d), vb (K,)): (hv_w (K, d), hv_b (K,)) float64, unscaled sums.
    """
def softmax_loss_grad(x: numpy.typing.NDArray[numpy.float32], w: numpy.typing.NDArray[numpy.float32], b: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.int64], threads: typing.SupportsInt | typing.SupportsIndex = 0, kernel: str = 'auto') -> tuple:
    """
    Multinomial logistic loss over float32 rows x (n, d) with weights w (K, d), bias b (K,) and labels y (n,) int64: (loss, grad_w (K, d) float64, grad_b (K,) float64, p (n, K) float32), unscaled sums (see csrc/core/linear/softmax.h).
    """
@typing.overload
def top_k_hits(y_true: numpy.typing.NDArray[numpy.int64], scores: numpy.typing.NDArray[numpy.float32], k: typing.SupportsInt | typing.SupportsIndex) -> int:
    ...
@typing.overload
def top_k_hits(y_true: numpy.typing.NDArray[numpy.int64], scores: numpy.typing.NDArray[numpy.float64], k: typing.SupportsInt | typing.SupportsIndex) -> int:
    ...
def usable_cores() -> int:
    """
    Cores this process may use: the CPU affinity mask, limited by the cgroup CPU quota (what threads=0 means in every kernel).
    """
