"""Getting pixels in: image decoding (``images``), input sources (``sources``: paths, folders,
list files, bytes, arrays, PIL images) and labelled dataset readers (``datasets``)."""

from .images import DEFAULT_MAX_PIXELS, ImageDecodeError, image_size, read_image
from .sources import IMAGE_EXTENSIONS, Item, iter_items, load_item

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageDecodeError", "Item", "image_size", "iter_items",
           "load_item", "read_image"]
