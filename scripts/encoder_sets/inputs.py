"""The real inputs the families embed: templated sentences, crops of the scikit-image photographs,
rendered text lines, and LFW face windows; every draw seeded."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from encoder_sets.base import ROOT, SEED, _rng


# ------------------------------------------------------------------ inputs: text
def _make_sample_data():
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "scripts" / "make_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


#: a third slot of the templated sentences: "<subject> <predicate> <adverbial>."
ADVERBIALS = (
    "", "on Tuesday morning", "despite the heavy rain", "while everyone else was asleep",
    "for the third time this year", "without telling anyone", "after a long argument",
    "in front of a small crowd", "just before the holidays", "as the lights went out",
    "with surprising calm", "according to the evening news",
)


def sentences(n: int, seed: int = SEED) -> list[str]:
    """``n`` distinct sentences "<subject> <predicate>[ <adverbial>]." (24 x 24 x 12 = 6912 possible),
    a seeded choice; the subjects and predicates are those of ``scripts/make_sample_data.py``."""
    m = _make_sample_data()
    total = len(m.SUBJECTS) * len(m.PREDICATES) * len(ADVERBIALS)
    if n > total:
        raise ValueError(f"at most {total} distinct sentences, asked for {n}")
    out = []
    for k in _rng(seed).permutation(total)[:n]:
        i, rest = divmod(int(k), len(m.PREDICATES) * len(ADVERBIALS))
        j, a = divmod(rest, len(ADVERBIALS))
        tail = f" {ADVERBIALS[a]}" if ADVERBIALS[a] else ""
        out.append(f"{m.SUBJECTS[i]} {m.PREDICATES[j]}{tail}.")
    return out



# ------------------------------------------------------------------ inputs: images
def _skimage_images() -> list[np.ndarray]:
    """The photographs and scans that ship inside scikit-image (``skimage/data``), RGB uint8.

    Read from the package folder (no ``pooch`` download); grey images are stacked to RGB and
    alpha dropped.  Synthetic test patterns (chessboards, phantom) are left out."""
    import skimage
    from PIL import Image

    folder = Path(skimage.__file__).parent / "data"
    skip = {"chessboard_GRAY.png", "chessboard_RGB.png", "phantom.png", "logo.png", "color.png"}
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in (".png", ".jpg") or p.name in skip:
            continue
        im = np.asarray(Image.open(p).convert("RGB"))
        if min(im.shape[:2]) >= 64:
            out.append(im)
    return out


def image_crops(n: int, size: int, seed: int = SEED) -> np.ndarray:
    """``n`` distinct (n, size, size, 3) uint8 RGB views of the scikit-image photographs.

    Each view: a seeded choice of image, a square crop of side 25-100 % of its short side at a
    random place, a horizontal flip with probability 1/2, then colour jitter (brightness and
    contrast x U(0.7, 1.3), saturation x U(0.6, 1.4)), resized to ``size`` (bilinear)."""
    from PIL import Image

    ims = _skimage_images()
    rng = _rng(seed + 1)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for k in range(n):
        im = ims[int(rng.integers(len(ims)))]
        h, w = im.shape[:2]
        side = int(min(h, w) * rng.uniform(0.25, 1.0))
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = im[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        a = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR), np.float64)
        a = a * rng.uniform(0.7, 1.3)  # brightness
        grey = a.mean(axis=2, keepdims=True)
        a = grey + (a - grey) * rng.uniform(0.6, 1.4)  # saturation
        a = a.mean() + (a - a.mean()) * rng.uniform(0.7, 1.3)  # contrast
        out[k] = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return out


def text_lines(n: int, height: int = 48, width: int = 192, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(images, widths): ``n`` (n, height, width, 3) uint8 RGB text-line images: 1-4 consecutive words of the
    sentences of :func:`sentences`, drawn with Pillow's bundled font (size 18-40) in seeded
    colours on a seeded background, half of them rotated by 180 degrees (what the PP-OCR angle
    classifier tells apart), resized to ``height`` keeping the aspect ratio and right-padded with
    black to ``width`` (PP-OCR's ``resize_norm_img``; ``widths`` = the drawn widths)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = _rng(seed + 2)
    words = [s.rstrip(".").split() for s in sentences(min(n, 6912), seed)]
    out = np.zeros((n, height, width, 3), dtype=np.uint8)
    widths = np.zeros(n, dtype=np.int64)
    for k in range(n):
        ws = words[k % len(words)]
        span = int(rng.integers(1, 5))
        start = int(rng.integers(max(1, len(ws) - span + 1)))
        text = " ".join(ws[start : start + span])
        font = ImageFont.load_default(size=int(rng.integers(18, 41)))
        bg = rng.integers(0, 256, 3)
        fg = (bg + rng.integers(96, 160, 3) * rng.choice([-1, 1], 3)) % 256
        l, t, r, b = font.getbbox(text)
        pad = int(rng.integers(2, 10))
        img = Image.new("RGB", (r - l + 2 * pad, b - t + 2 * pad), tuple(int(c) for c in bg))
        ImageDraw.Draw(img).text((pad - l, pad - t), text, font=font, fill=tuple(int(c) for c in fg))
        if rng.random() < 0.5:
            img = img.rotate(180)
        w = min(width, int(np.ceil(height * img.width / img.height)))
        out[k, :, :w] = np.asarray(img.resize((w, height), Image.BILINEAR))
        widths[k] = w
    return out, widths



def face_windows(n: int, seed: int = SEED) -> np.ndarray:
    """``n`` (n, 48, 48, 3) uint8 views of scikit-image's ``lfw_subset`` (100 faces and 100
    non-faces from Labeled Faces in the Wild, 25 x 25 grey): the candidate windows MTCNN's ONet
    scores.  Each view: seeded window, square crop of 80-100 %, flip with probability 1/2,
    brightness and contrast x U(0.7, 1.3), resized to 48 (bilinear), grey to RGB."""
    import skimage
    from PIL import Image

    wins = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")
    rng = _rng(seed + 3)
    out = np.empty((n, 48, 48, 3), dtype=np.uint8)
    for k in range(n):
        w = wins[int(rng.integers(len(wins)))] * 255.0
        side = int(round(25 * rng.uniform(0.8, 1.0)))
        y, x = int(rng.integers(25 - side + 1)), int(rng.integers(25 - side + 1))
        crop = w[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        a = np.asarray(Image.fromarray(np.ascontiguousarray(crop).astype(np.float32), mode="F").resize((48, 48), Image.BILINEAR),
                       np.float64) * rng.uniform(0.7, 1.3)
        a = a.mean() + (a - a.mean()) * rng.uniform(0.7, 1.3)
        out[k] = np.clip(np.rint(a), 0, 255).astype(np.uint8)[..., None]
    return out



