"""The eval report opened in a real browser (Debian's ``chromium``, headless; ``.ci/run`` installs
it): it renders, every image loads (``naturalWidth > 0``), nothing is logged to the console, and a
screenshot is written for the record.

The check: a copy of report.html gets a small script that, on ``load``, writes how many images
there are and how many are broken into the DOM; ``chromium --dump-dom`` prints the DOM after the
page (and its virtual time budget) settles, and ``--enable-logging=stderr`` prints every console
message as an ``INFO:CONSOLE`` line (the report itself has no script, so any such line is an error:
a refused resource, a broken image, a parse error)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import pyimgcls

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; "
                                                        ".ci/run installs it)")

CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); })
                   .map(function (im) { return im.alt; });
  var r = document.createElement('pre');
  r.id = 'pyimgcls-check';
  r.textContent = JSON.stringify({images: imgs.length, broken: broken,
                                  height: document.body.scrollHeight, title: document.title});
  document.body.appendChild(r);
});
</script>"""


def _chromium(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _check(html_path: str, tmp_path) -> tuple[dict, list[str]]:
    checked = tmp_path / "checked.html"
    text = open(html_path, encoding="utf-8").read()
    assert text.count("</body>") == 1
    checked.write_text(text.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    r = _chromium(["--dump-dom", checked.as_uri()], tmp_path)
    m = re.search(r'<pre id="pyimgcls-check">(.*?)</pre>', r.stdout, re.S)
    assert m, f"the check did not run; chromium said: {r.stderr[-2000:]}"
    console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
    return json.loads(m.group(1).replace("&quot;", '"')), console


@pytest.fixture(scope="module")
def report(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("browser")
    data = d / "data"
    for cls, names in {"tabby": ["chelsea", "coffee"], "espresso": ["coffee", "rocket"],
                       "n03773504": ["rocket", "astronaut"]}.items():  # n03773504: missile, by its WordNet id
        (data / cls).mkdir(parents=True)
        for n in names:
            Image.fromarray(photos[n]).save(data / cls / f"{n}.jpg", quality=90)
    out = d / "out"
    rep = pyimgcls.evaluate(str(data), out=str(out), bootstrap=100, threads=2)
    return rep, out


def test_report_renders_with_every_image_and_no_console_message(report, tmp_path):
    rep, out = report
    result, console = _check(str(out / "report.html"), tmp_path)
    assert result["broken"] == [], result
    plots = 4 if pyimgcls.jobs._plots.have_matplotlib() else 0
    assert result["images"] >= plots + 3  # the plots and the worst-confusion thumbnails
    assert result["height"] > 1000 and result["title"].startswith("pyimgcls eval")
    assert console == [], console
    shot = out / "report_screenshot.png"
    r = _chromium([f"--screenshot={shot}", "--window-size=1280,2400", (out / "report.html").as_uri()], tmp_path)
    assert shot.exists(), r.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        assert len(np.unique(np.asarray(im.convert("L")))) > 10  # not a blank page


def test_detection_report_renders(tmp_path):
    pytest.importorskip("pyimgcls.tasks.faces")
    from _helpers.face_coco import face_dataset

    gt = face_dataset(str(tmp_path / "coco"))
    out = tmp_path / "out"
    pyimgcls.evaluate(gt, task="detect", out=str(out), bootstrap=10, threads=2)
    result, console = _check(str(out / "report.html"), tmp_path)
    assert result["broken"] == [] and console == [], (result, console)
    assert result["images"] >= 5  # the drawn images (and the PR plot)


def test_the_check_sees_a_broken_image_and_a_console_message(report, tmp_path):
    """The browser check can fail: a broken image and a script error are caught."""
    _, out = report
    bad = tmp_path / "bad.html"
    text = (out / "report.html").read_text(encoding="utf-8")
    text = text.replace("</body>", '<img src="data:image/png;base64,AAAA" alt="broken">'
                                   "<script>console.error('boom')</script></body>")
    bad.write_text(text, encoding="utf-8")
    result, console = _check(str(bad), tmp_path)
    assert result["broken"] == ["broken"]
    assert any("boom" in ln for ln in console)
