#!/usr/bin/env python3
"""Draws the tray app's icons (PNG, no dependencies): the app icon and one tray icon per state.

Run from the repository root: python3 scripts/make-icons.py. The PNGs are committed; this keeps them
reproducible. A rounded square with a "container" glyph, coloured by state.
"""
import struct
import zlib
from pathlib import Path

OUT = Path("src-tauri/icons")
STATES = {
    "idle": (46, 160, 67),
    "running": (31, 111, 235),
    "paused": (210, 153, 34),
    "draining": (130, 80, 223),
    "error": (207, 34, 46),
    "disconnected": (110, 118, 129),
}


def png(size, pixels):
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def draw(size, colour):
    r = size * 0.22  # corner radius
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            cx, cy = x + 0.5, y + 0.5
            # Rounded square, with a soft edge.
            dx = max(r - cx, 0, cx - (size - r))
            dy = max(r - cy, 0, cy - (size - r))
            d = (dx * dx + dy * dy) ** 0.5
            alpha = max(0.0, min(1.0, r - d + 0.5)) if (dx or dy) else 1.0
            u, v = cx / size, cy / size
            # A white box (the container) with a lid line.
            inside_box = 0.25 <= u <= 0.75 and 0.32 <= v <= 0.74
            border = inside_box and (u < 0.32 or u > 0.68 or v < 0.39 or v > 0.67 or 0.47 <= v <= 0.53)
            if border:
                px = (255, 255, 255)
            else:
                px = colour
            row.extend([*px, int(alpha * 255)])
        rows.append(row)
    return rows


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, colour in STATES.items():
        (OUT / f"tray-{name}.png").write_bytes(png(64, draw(64, colour)))
    app = STATES["running"]
    for size, name in [(32, "32x32.png"), (128, "128x128.png"), (256, "128x128@2x.png"), (512, "icon.png")]:
        (OUT / name).write_bytes(png(size, draw(size, app)))


if __name__ == "__main__":
    main()
