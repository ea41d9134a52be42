"""The documentation site (docs/, `make docs`): it builds with warnings as errors, every public name has an
API entry, and the family pages' pictures are there.

The cheap build (notebooks not executed, the pictures reused from docs/_figures when the library has not
changed since they were drawn) runs in `make test`; the full build that executes the four notebooks and
the headless-Chromium check of the built pages are marked slow (`make test-slow`).
"""

from __future__ import annotations

import html
import importlib
import pathlib
import pkgutil
import re
import shutil
import subprocess
import sys

import pytest

import jaxmix

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FAMILY_PAGES = ["image-methods", "detection", "segmentation", "sequence", "sharding", "losses", "training"]
NOTEBOOKS = ["01_quickstart", "02_flax_train_step", "03_dense", "04_sharded"]

pytestmark = pytest.mark.skipif(not (DOCS / "conf.py").exists(), reason="no docs/ (an sdist)")


def public_modules() -> list[str]:
  """jaxmix and every public namespace under it (jaxmix.detection, ..., jaxmix.viz)."""
  subs = [m.name for m in pkgutil.iter_modules(jaxmix.__path__) if not m.name.startswith("_")]
  return ["jaxmix"] + [f"jaxmix.{name}" for name in sorted(subs)]


def public_names() -> dict[str, list[str]]:
  return {module: list(importlib.import_module(module).__all__) for module in public_modules()}


def build(out: pathlib.Path, *options: str, timeout: float) -> pathlib.Path:
  pytest.importorskip("sphinx")
  pytest.importorskip("myst_nb")
  html_dir = out / "html"
  cmd = [sys.executable, "-m", "sphinx", "-E", "-q", "-W", "--keep-going", "-b", "html", *options]
  cmd += ["-d", str(out / "doctrees"), str(DOCS), str(html_dir)]
  run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
  assert run.returncode == 0, f"sphinx-build failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
  return html_dir


def cheap_build(out: pathlib.Path) -> pathlib.Path:
  """The site as `make docs` builds it (notebooks rendered, not executed)."""
  return build(out, timeout=900)


def test_public_modules_found():
  # At least these (a new public namespace is found and documented without editing anything).
  assert set(public_modules()) >= {
    "jaxmix",
    "jaxmix.detection",
    "jaxmix.losses",
    "jaxmix.segmentation",
    "jaxmix.sequence",
    "jaxmix.sharding",
    "jaxmix.viz",
  }


def test_docs_build(tmp_path):
  """One build, all the cheap checks (one test, so that pytest-xdist does not build the site twice)."""
  site = cheap_build(tmp_path)
  check_api_entries(site)
  check_family_pictures(site)
  check_other_pages(site)


def check_api_entries(site: pathlib.Path) -> None:
  """Every name in the `__all__` of every public module has an anchor on its module's API page."""
  missing = []
  for module, names in public_names().items():
    page = site / "api" / f"{module}.html"
    assert page.exists(), f"no API page for {module}"
    ids = set(re.findall(r'id="([^"]+)"', page.read_text()))
    missing += [f"{module}.{name}" for name in names if f"{module}.{name}" not in ids]
  assert not missing, f"public names without an API entry: {missing}"


def check_family_pictures(site: pathlib.Path) -> None:
  for page in FAMILY_PAGES:
    text = (site / f"{page}.html").read_text()
    sources = re.findall(r'<img[^>]+src="([^"]+)"', text)
    pictures = [s for s in sources if "_images/" in s]
    assert pictures, f"{page}.html shows no picture"
    for src in pictures:
      path = site / html.unescape(src)
      assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{page}.html: {src}"


def check_other_pages(site: pathlib.Path) -> None:
  for name in NOTEBOOKS:
    assert (site / "notebooks" / f"{name}.html").exists()
  assert "Changelog" in (site / "changelog.html").read_text()
  assert (site / "study.html").exists()
  assert (site / "searchindex.js").exists()


@pytest.mark.slow
def test_full_build_executes_the_notebooks(tmp_path):
  """`make docs-full`: the same site with the four notebooks executed (minutes on a CPU)."""
  pytest.importorskip("skimage")
  site = build(tmp_path, "-D", "nb_execution_mode=force", timeout=3000)
  for name in NOTEBOOKS:
    text = (site / "notebooks" / f"{name}.html").read_text()
    assert "cell_output" in text, f"{name}: no outputs"


# --- the built pages in a browser (Debian's chromium, headless) -------------------------------------------

_CHECK_IMAGES = """
<script>
window.addEventListener("load", () => {
  const report = document.createElement("pre");
  report.id = "jaxmix-image-check";
  report.textContent = Array.from(document.images).map(
    (im) => im.getAttribute("src") + " " + (im.complete ? im.naturalWidth : -1)).join("\\n");
  document.body.appendChild(report);
});
</script>
"""


def chromium() -> str | None:
  for name in ("chromium", "chromium-browser", "google-chrome"):
    if path := shutil.which(name):
      return path
  return None


def dump_dom(url: str, budget_ms: int = 5000) -> str:
  cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
  cmd += [f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
  run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-3000:]
  return run.stdout


def rendered(page: pathlib.Path) -> tuple[str, str, dict[str, int]]:
  """(title, body text, {image src: naturalWidth}) of `page` after Chromium has loaded it."""
  probe = page.with_name(f"_probe_{page.name}")  # same directory: the same relative links
  probe.write_text(page.read_text().replace("</body>", _CHECK_IMAGES + "</body>"))
  dom = dump_dom(probe.as_uri())
  title = html.unescape(re.search(r"<title>(.*?)</title>", dom, re.S).group(1)).strip()
  body = re.sub(r"<[^>]+>", " ", re.search(r"<body.*?>(.*)</body>", dom, re.S).group(1))
  report = re.search(r'<pre id="jaxmix-image-check"[^>]*>(.*?)</pre>', dom, re.S)
  assert report, "the image probe did not run"
  widths = {}
  for line in html.unescape(report.group(1)).splitlines():
    src, width = line.rsplit(" ", 1)
    widths[src] = int(width)
  return title, " ".join(body.split()), widths


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no chromium (apt-get install chromium)")
def test_pages_render_in_chromium(tmp_path):
  site = cheap_build(tmp_path)
  for page, needle in [(site / "index.html", "jaxmix"), (site / "api" / "jaxmix.html", "mixup")]:
    title, body, widths = rendered(page)
    assert title and needle in body, f"{page.name}: title {title!r}, body {body[:200]!r}"
    pictures = {src: w for src, w in widths.items() if "_images/" in src}
    if page.name == "index.html":
      assert pictures, "the index shows no picture"
    assert all(w > 0 for w in pictures.values()), f"{page.name}: images that did not load: {pictures}"
  family = site / "detection.html"
  _, _, widths = rendered(family)
  assert [w for src, w in widths.items() if "_images/" in src and w > 0], widths

  dom = dump_dom((site / "search.html").as_uri() + "?q=mixup", budget_ms=15000)
  results = re.search(r'<ul[^>]*class="search"[^>]*>(.*?)</ul>', dom, re.S)
  assert results, "search.html?q=mixup lists no results"
  hits = re.findall(r'href="([^"]+)"', results.group(1))
  assert any("mixup" in h for h in hits), hits[:10]
