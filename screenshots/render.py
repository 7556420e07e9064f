#!/usr/bin/env python3
"""Draws a tmux capture (capture-pane -e: text with SGR colour codes) as a PNG.

usage: render.py CAPTURE.ans OUT.png [COLUMNS ROWS]
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
SIZE = 15
BG = (24, 24, 28)
FG = (212, 212, 212)
# The 16 ANSI colours, close to a common dark terminal palette.
PALETTE = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]


def color256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    level = 8 + (n - 232) * 10
    return (level, level, level)


def apply_sgr(params, style):
    codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style.update(fg=None, bg=None, bold=False, reverse=False)
        elif c == 1:
            style["bold"] = True
        elif c == 22:
            style["bold"] = False
        elif c == 7:
            style["reverse"] = True
        elif c == 27:
            style["reverse"] = False
        elif 30 <= c <= 37:
            style["fg"] = PALETTE[c - 30]
        elif 90 <= c <= 97:
            style["fg"] = PALETTE[c - 90 + 8]
        elif 40 <= c <= 47:
            style["bg"] = PALETTE[c - 40]
        elif 100 <= c <= 107:
            style["bg"] = PALETTE[c - 100 + 8]
        elif c == 39:
            style["fg"] = None
        elif c == 49:
            style["bg"] = None
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                style[key] = color256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                style[key] = tuple(codes[i + 2:i + 5])
                i += 4
        i += 1


def parse(text):
    """Rows of (char, style) cells."""
    rows = []
    style = dict(fg=None, bg=None, bold=False, reverse=False)
    for line in text.split("\n"):
        row = []
        for token in re.split(r"(\x1b\[[0-9;]*[A-Za-z])", line):
            if token.startswith("\x1b["):
                if token.endswith("m"):
                    apply_sgr(token[2:-1], style)
                continue
            for ch in token:
                row.append((ch, dict(style)))
        rows.append(row)
    return rows


def main():
    capture, out = sys.argv[1], sys.argv[2]
    rows = parse(open(capture, encoding="utf-8").read().rstrip("\n"))
    columns = int(sys.argv[3]) if len(sys.argv) > 3 else max(len(r) for r in rows)
    height = int(sys.argv[4]) if len(sys.argv) > 4 else len(rows)
    regular = ImageFont.truetype(FONT_DIR + "DejaVuSansMono.ttf", SIZE)
    bold = ImageFont.truetype(FONT_DIR + "DejaVuSansMono-Bold.ttf", SIZE)
    cell_w = round(regular.getlength("M"))
    cell_h = round(SIZE * 1.25)
    pad = 10
    image = Image.new("RGB", (columns * cell_w + 2 * pad, height * cell_h + 2 * pad), BG)
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows[:height]):
        for x, (ch, style) in enumerate(row[:columns]):
            fg, bg = style["fg"] or FG, style["bg"] or BG
            if style["reverse"]:
                fg, bg = bg, fg
            left, top = pad + x * cell_w, pad + y * cell_h
            if bg != BG:
                draw.rectangle([left, top, left + cell_w - 1, top + cell_h - 1], fill=bg)
            if ch != " ":
                font = bold if style["bold"] else regular
                draw.text((left, top + 1), ch, font=font, fill=fg)
    image.save(out)


if __name__ == "__main__":
    main()
