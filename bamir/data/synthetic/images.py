"""Render a post's image from its topic's motif and its account's visual style.

An image is a small JPEG: a two-colour gradient background (the motif's first two palette
colours), a texture, a few shapes in the third colour, then the account's style (a
brightness, warmth, saturation, contrast and grain shift: the "filter" an account always
uses), and sensor
noise. Everything is drawn from a per-image seed, so images are reproducible one by one
and can be rendered in parallel.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from bamir.data.synthetic.vocabulary import TOPICS, Motif


@dataclass(frozen=True)
class ImageSpec:
    """Everything needed to draw one image."""

    topic: int                       # index into TOPICS: whose motif to draw
    style: tuple[float, ...]         # brightness, warmth, saturation, contrast, grain (about N(0, 1))
    seed: tuple[int, ...]            # entropy for this image's own random draws
    logo: tuple[int, int, int] | None = None  # brand images: a small logo patch in the brand colour


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    return y, x


@lru_cache(maxsize=8)
def _noise_bank(size: int) -> np.ndarray:
    """A fixed field of unit Gaussian noise, twice the image size; images take random windows."""
    return np.random.default_rng(20190101).standard_normal((2 * size, 2 * size, 3), dtype=np.float32)


def _noise(size: int, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    oy, ox = rng.integers(0, size, 2)
    return _noise_bank(size)[oy:oy + size, ox:ox + size, :channels]


def _jitter(colour, rng: np.random.Generator, amount: float = 18.0) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.normal(0, amount, 3), 0, 255)


def _background(motif: Motif, size: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(size)
    if motif.gradient == "vertical":
        t = y
    elif motif.gradient == "horizontal":
        t = x
    elif motif.gradient == "diagonal":
        t = (x + y) / 2
    else:
        cx, cy = rng.uniform(0.3, 0.7, 2)
        t = np.clip(np.sqrt((x - cx) ** 2 + (y - cy) ** 2) * 1.6, 0, 1)
    c0, c1 = _jitter(motif.palette[0], rng), _jitter(motif.palette[1], rng)
    image = c0.astype(np.float32) + (c1 - c0).astype(np.float32) * t[..., None]
    if motif.texture == "grain":
        image += 14 * _noise(size, rng, 1)
    elif motif.texture == "stripes":
        freq = rng.uniform(6, 14)
        angle = rng.uniform(0, math.pi)
        wave = np.sin((x * math.cos(angle) + y * math.sin(angle)) * freq * 2 * math.pi)
        image += 16 * wave[..., None]
    elif motif.texture == "checker":
        cells = int(rng.integers(4, 9))
        board = ((np.floor(x * cells) + np.floor(y * cells)) % 2) * 2 - 1
        image += 14 * board[..., None]
    elif motif.texture == "bokeh":
        for _ in range(int(rng.integers(4, 9))):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.16)
            blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
            image += (50 * blob)[..., None]
    return image


def _shapes(draw: ImageDraw.ImageDraw, motif: Motif, size: int, rng: np.random.Generator) -> None:
    colour = tuple(int(v) for v in _jitter(motif.palette[2], rng, 12))
    alt = tuple(int(v) for v in _jitter(motif.palette[1], rng, 25))
    lo, hi = motif.count
    n = int(rng.integers(lo, hi + 1))
    s = size
    kind = motif.shape
    if kind in ("hlines", "vlines", "dlines"):
        width = max(1, int(s * rng.uniform(0.03, 0.08)))
        for i in range(n):
            o = (i + 0.5 + rng.uniform(-0.3, 0.3)) / n * s
            if kind == "hlines":
                draw.line([(0, o), (s, o)], fill=colour, width=width)
            elif kind == "vlines":
                draw.line([(o, 0), (o, s)], fill=colour, width=width)
            else:
                draw.line([(o - s / 2, 0), (o + s / 2, s)], fill=colour, width=width)
        return
    if kind == "waves":
        for i in range(n):
            base = (i + 0.5) / n * s
            amp, freq, phase = rng.uniform(0.04, 0.1) * s, rng.uniform(1, 3), rng.uniform(0, 6.3)
            pts = [(x, base + amp * math.sin(x / s * freq * 2 * math.pi + phase)) for x in range(0, s + 1, 2)]
            draw.line(pts, fill=colour, width=max(1, s // 24))
        return
    if kind == "grid":
        cells = int(rng.integers(3, 6))
        step = s / cells
        for i in range(1, cells):
            draw.line([(i * step, 0), (i * step, s)], fill=colour, width=max(1, s // 40))
            draw.line([(0, i * step), (s, i * step)], fill=colour, width=max(1, s // 40))
        for _ in range(n):
            cx, cy = rng.integers(0, cells, 2)
            draw.rectangle([cx * step + 2, cy * step + 2, (cx + 1) * step - 2, (cy + 1) * step - 2], fill=alt)
        return
    for i in range(n):
        r = s * rng.uniform(0.08, 0.28) * (1.4 if n <= 2 else 1.0)
        cx, cy = rng.uniform(0.15, 0.85, 2) * s
        fill = colour if i % 3 else alt if n > 2 else colour
        box = [cx - r, cy - r, cx + r, cy + r]
        if kind == "circle":
            draw.ellipse(box, fill=fill)
        elif kind == "ring":
            draw.ellipse(box, outline=fill, width=max(2, int(r / 3)))
        elif kind == "rect":
            draw.rectangle([cx - r, cy - r * rng.uniform(0.5, 1), cx + r, cy + r * rng.uniform(0.5, 1)], fill=fill)
        elif kind == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
        elif kind == "diamond":
            draw.polygon([(cx, cy - r), (cx - r * 0.7, cy), (cx, cy + r), (cx + r * 0.7, cy)], fill=fill)
        elif kind == "dots":
            rr = r * 0.35
            draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=fill)
        else:  # blob
            draw.ellipse([cx - r, cy - r * rng.uniform(0.5, 0.9), cx + r, cy + r * rng.uniform(0.5, 0.9)], fill=fill)


def _apply_style(image: np.ndarray, style: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    brightness, warmth, saturation, contrast, grain = (tuple(style) + (0.0,) * 5)[:5]
    shift = np.array([22.0 * brightness + 16.0 * warmth, 22.0 * brightness, 22.0 * brightness - 16.0 * warmth],
                     np.float32)
    image = image + shift
    grey = image.mean(axis=2, keepdims=True)
    sat = np.float32(np.clip(1.0 + 0.3 * saturation, 0.2, 2.0))
    con = np.float32(np.clip(1.0 + 0.2 * contrast, 0.4, 1.8))
    image = (grey - 128.0) * con + 128.0 + (image - grey) * sat
    image += np.float32(3.0 + 3.0 * max(grain + 0.5, 0.0)) * _noise(image.shape[0], rng)
    return image


def render(spec: ImageSpec, size: int = 64, quality: int = 85) -> bytes:
    """The JPEG bytes of one image (deterministic for ``spec``, ``size`` and ``quality``)."""
    rng = np.random.default_rng(list(spec.seed))
    motif = TOPICS[spec.topic].motif
    image = _background(motif, size, rng)
    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(pil)
    _shapes(draw, motif, size, rng)
    if spec.logo is not None:
        side = max(4, size // 6)
        corner = int(rng.integers(0, 4))
        x0 = 2 if corner % 2 == 0 else size - side - 2
        y0 = 2 if corner < 2 else size - side - 2
        draw.rectangle([x0, y0, x0 + side, y0 + side], fill=tuple(spec.logo))
    array = _apply_style(np.asarray(pil, dtype=np.float32), spec.style, rng)
    out = io.BytesIO()
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def render_many(specs: list[ImageSpec], size: int, quality: int) -> list[bytes]:
    """Render a batch (the unit of work of a worker process)."""
    return [render(spec, size, quality) for spec in specs]
