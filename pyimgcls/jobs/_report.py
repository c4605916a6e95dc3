"""A self-contained HTML page builder for the jobs' reports (``eval``, ``cluster``, ...).

The page is one file: the style sheet is inline and every image is embedded as a base64 ``data:``
URI, so it opens in any browser offline and can be sent as it is. No script runs in it.

Usage::

    page = HtmlPage("pyimgcls eval: fashion-mnist")
    page.heading("Summary")
    page.key_values({"images": 10000, "accuracy": 0.9012})
    page.table(["class", "precision"], [["Bag", 0.97]], caption="Per class")
    page.image(png_bytes, alt="confusion matrix")
    page.gallery([Thumb(png, ["true: Shirt", "pred: T-shirt/top 0.71"])], title="Shirt -> T-shirt/top")
    page.write("report.html")

Thread safety: an ``HtmlPage`` is a plain builder; use one per thread. The functions are pure.
"""

from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["HtmlPage", "Thumb", "png_data_uri", "encode_png", "thumbnail", "thumbnail_png", "format_value"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:1200px;
     padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #444;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #bbb}
h3{font-size:1.1em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
figure{margin:1em 0}
figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}
.thumb{border:1px solid #ccc;padding:.3em;width:140px;font-size:.75em;background:#fafafa}
.thumb img{display:block;margin:0 auto .3em auto;max-width:128px;max-height:128px;image-rendering:pixelated}
.thumb p{margin:0;overflow-wrap:anywhere}
.note{background:#fff8e0;border-left:4px solid #e0b000;padding:.4em .8em;margin:.6em 0}
.kv td:first-child{font-weight:600}
details{margin:.5em 0}
"""


def format_value(v: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` decimals (``nan`` as an en dash), the rest as text."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "\u2013"
        return f"{float(v):.{digits}f}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an image: ``(H, W)`` or ``(H, W, 3)`` RGB uint8 (or ``(H, W, 4)`` RGBA)."""
    import cv2

    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[:, :, ::-1]  # OpenCV writes BGR
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, [2, 1, 0, 3]]
    elif a.ndim != 2:
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
    if not ok:  # pragma: no cover - OpenCV fails only on impossible shapes, checked above
        raise ValueError(f"could not encode a {a.shape} image as PNG")
    return buf.tobytes()


def thumbnail(image: np.ndarray, max_side: int = 128) -> np.ndarray:
    """The image shrunk (area interpolation) so that its longer side is at most ``max_side``;
    a small image is returned as it is (the page scales it up without smoothing)."""
    import cv2

    a = np.asarray(image)
    h, w = a.shape[:2]
    s = max_side / max(h, w, 1)
    if s >= 1:
        return a
    return cv2.resize(a, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def thumbnail_png(source: Any, max_side: int = 128) -> bytes:
    """PNG bytes of a thumbnail of ``source`` (a path, bytes or an image array), read with
    ``pyimgcls.read_image`` (EXIF orientation applied)."""
    from ..io.images import read_image

    img = source if isinstance(source, np.ndarray) else read_image(source)
    return encode_png(thumbnail(img, max_side))


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    if not isinstance(png, (bytes, bytearray)) or not bytes(png[:8]) == b"\x89PNG\r\n\x1a\n":
        raise ValueError("png must be the bytes of a PNG file")
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")


@dataclass
class Thumb:
    """One gallery entry: PNG bytes (``None``: the image could not be read) and caption lines."""

    png: bytes | None
    lines: list[str] = field(default_factory=list)
    title: str = ""


class HtmlPage:
    """Builds one self-contained HTML page, block by block, in order.

    Args:
        title: the page's title and first heading.
    """

    def __init__(self, title: str) -> None:
        self.title = str(title)
        self._parts: list[str] = [f"<h1>{html.escape(self.title)}</h1>"]
        self.image_count = 0

    # -------------------------------------------------------------- blocks
    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        level = min(max(int(level), 2), 4)
        a = f' id="{html.escape(anchor)}"' if anchor else ""
        self._parts.append(f"<h{level}{a}>{html.escape(str(text))}</h{level}>")

    def paragraph(self, text: str) -> None:
        self._parts.append(f"<p>{html.escape(str(text))}</p>")

    def note(self, text: str) -> None:
        """A highlighted remark (a missing extra, a metric that could not be computed)."""
        self._parts.append(f'<div class="note">{html.escape(str(text))}</div>')

    def key_values(self, items: dict | Iterable[tuple[str, Any]], *, digits: int = 4) -> None:
        """A two-column table of names and values."""
        pairs = items.items() if isinstance(items, dict) else items
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td class=\"num\">{html.escape(format_value(v, digits))}"
                       "</td></tr>" for k, v in pairs)
        self._parts.append(f'<table class="kv">{rows}</table>')

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None,
              digits: int = 4, collapsed: bool = False, summary: str | None = None) -> None:
        """A table; numbers are right-aligned and formatted with ``digits`` decimals.

        Args:
            collapsed: inside a ``<details>`` element, closed (for long lists), with ``summary``.
        """
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = []
        for r in rows:
            cells = []
            for v in r:
                num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                cells.append(f'<td class="num">{html.escape(format_value(v, digits))}</td>' if num
                             else f"<td>{html.escape(format_value(v, digits))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        t = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        if collapsed:
            t = f"<details><summary>{html.escape(summary or caption or 'table')}</summary>{t}</details>"
        self._parts.append(t)

    def image(self, png: bytes, *, alt: str, caption: str | None = None, width: int | None = None) -> None:
        """An embedded PNG (``data:`` URI), with an optional caption and display width in pixels."""
        w = f' width="{int(width)}"' if width else ""
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure><img src="{png_data_uri(png)}" alt="{html.escape(alt)}"{w}>{cap}</figure>')
        self.image_count += 1

    def gallery(self, thumbs: Sequence[Thumb], *, title: str | None = None, size: int | None = None) -> None:
        """A wrapping row of thumbnails with their caption lines (an unreadable image shows its lines).

        Args:
            size: the largest side an image is shown at, in CSS pixels (default 128; small images are
                scaled up without smoothing, larger ones as they are).
        """
        if title:
            self.heading(title, 3)
        cells = []
        box = f' style="width:{int(size) + 12}px"' if size else ""
        fit = f' style="max-width:{int(size)}px;max-height:{int(size)}px;image-rendering:auto"' if size else ""
        for t in thumbs:
            img = ""
            if t.png is not None:
                img = f'<img src="{png_data_uri(t.png)}" alt="{html.escape(t.title or "image")}"{fit}>'
                self.image_count += 1
            tip = f' title="{html.escape(t.title)}"' if t.title else ""
            lines = "".join(f"<p>{html.escape(s)}</p>" for s in t.lines)
            cells.append(f'<div class="thumb"{tip}{box}>{img}{lines}</div>')
        self._parts.append(f'<div class="gallery">{"".join(cells)}</div>')

    def raw(self, fragment: str) -> None:
        """Appends trusted HTML as it is (the caller escapes what it puts in)."""
        self._parts.append(fragment)

    # -------------------------------------------------------------- output
    def render(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>\n"
                + "\n".join(self._parts) + "\n</body></html>\n")

    def write(self, path: str | os.PathLike) -> str:
        """Writes the page (UTF-8) atomically: a temporary file renamed over ``path``."""
        path = os.fspath(path)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.render())
        os.replace(tmp, path)
        return path
