"""Rebuild the images of the shipped evaluation set (src/alttext/evaluation/data/images).

Not a test: run it by hand when an image changes, then review the pictures and the references
in cases.json together. It needs Pillow (the project's), the DejaVu and IPA Gothic fonts
(Debian: fonts-dejavu-core, fonts-ipafont-gothic) and a copy of scikit-image's sample images::

    python -m venv /tmp/skenv && /tmp/skenv/bin/pip install scikit-image
    .venv/bin/python tests/evaluation/make_images.py \\
        /tmp/skenv/lib/python3.11/site-packages/skimage/data

Photos come from scikit-image (public domain or CC0 only: see LICENSES.md); everything else is
drawn here and dedicated to the public domain (CC0 1.0). Nothing is random: a rerun on the same
fonts gives the same pixels.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parents[2] / "src/alttext/evaluation/data/images"
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DEJAVU_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
IPA_GOTHIC = "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"
MAX_SIDE = 768

Font = ImageFont.FreeTypeFont
RGB = tuple[int, int, int]


def font(size: int, *, bold: bool = False, cjk: bool = False) -> Font:
    path = IPA_GOTHIC if cjk else (DEJAVU_BOLD if bold else DEJAVU)
    return ImageFont.truetype(path, size)


def save(img: Image.Image, name: str) -> None:
    img = img.copy()
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    path = OUT / name
    if name.endswith(".jpg"):
        img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(
            path, quality=82, optimize=True, progressive=True
        )
    else:
        img.save(path, optimize=True)
    print(f"{name}: {img.size[0]}x{img.size[1]}, {path.stat().st_size // 1024} KiB")


# --- photos from scikit-image -------------------------------------------------------------------

PHOTOS = {
    # file in skimage/data -> (our name, long side)
    "astronaut.png": ("astronaut.jpg", 512),
    "camera.png": ("camera.jpg", 512),
    "chelsea.png": ("chelsea.jpg", 451),
    "coffee.png": ("coffee.jpg", 600),
    "rocket.jpg": ("rocket.jpg", 640),
    "hubble_deep_field.jpg": ("hubble-deep-field.jpg", 640),
    "retina.jpg": ("retina.jpg", 512),
    "clock_motion.png": ("clock-motion.jpg", 400),
    "cell.png": ("cell.jpg", 440),
    "horse.png": ("horse.png", 200),
    "brick.png": ("brick.jpg", 384),
    "grass.png": ("grass.jpg", 384),
    "gravel.png": ("gravel.jpg", 384),
}


def photos(skimage_data: Path) -> None:
    for source, (name, side) in PHOTOS.items():
        with Image.open(skimage_data / source) as img:
            img.load()
            if img.mode == "RGBA" and name.endswith(".png"):
                # The silhouette: keep it black on transparent, as an icon would be.
                pass
            elif img.mode not in ("RGB", "L"):
                img = img.convert("RGB")
            img.thumbnail((side, side), Image.Resampling.LANCZOS)
            save(img, name)


# --- charts ---------------------------------------------------------------------------------------

BLUE: RGB = (44, 110, 190)
GRID: RGB = (225, 228, 232)
INK: RGB = (34, 38, 46)
MUTED: RGB = (100, 108, 120)


def _chart_frame(
    title: str, size: tuple[int, int] = (720, 450), *, cjk: bool = False
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text(
        (size[0] // 2, 28), title, fill=INK, font=font(24, bold=not cjk, cjk=cjk), anchor="mm"
    )
    return img, draw


def bar_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    value_label: Callable[[float], str],
    top: float,
    ticks: Sequence[float],
    tick_label: Callable[[float], str],
    *,
    cjk: bool = False,
    colour: RGB = BLUE,
) -> None:
    img, draw = _chart_frame(title, cjk=cjk)
    left, right, top_y, bottom = 90, 690, 70, 390
    small = font(15, cjk=cjk)
    for tick in ticks:
        y = bottom - (bottom - top_y) * tick / top
        draw.line((left, y, right, y), fill=GRID, width=1)
        draw.text((left - 10, y), tick_label(tick), fill=MUTED, font=font(14), anchor="rm")
    slot = (right - left) / len(values)
    width = slot * 0.62
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = left + i * slot + (slot - width) / 2
        y0 = bottom - (bottom - top_y) * value / top
        draw.rectangle((x0, y0, x0 + width, bottom), fill=colour)
        draw.text((x0 + width / 2, y0 - 6), value_label(value), fill=INK, font=small, anchor="mb")
        draw.text((x0 + width / 2, bottom + 10), label, fill=INK, font=small, anchor="mt")
    draw.line((left, bottom, right, bottom), fill=INK, width=2)
    save(img, name)


def line_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    bottom_value: float,
    top_value: float,
    ticks: Sequence[float],
    tick_label: Callable[[float], str],
    *,
    annotate: Sequence[int] = (),
    value_label: Callable[[float], str] = str,
    colour: RGB = (200, 80, 40),
) -> None:
    img, draw = _chart_frame(title)
    left, right, top_y, bottom = 90, 690, 70, 390
    scale = (bottom - top_y) / (top_value - bottom_value)
    for tick in ticks:
        y = bottom - (tick - bottom_value) * scale
        draw.line((left, y, right, y), fill=GRID, width=1)
        draw.text((left - 10, y), tick_label(tick), fill=MUTED, font=font(14), anchor="rm")
    step = (right - left) / (len(values) - 1)
    points = [(left + i * step, bottom - (v - bottom_value) * scale) for i, v in enumerate(values)]
    draw.line(points, fill=colour, width=4, joint="curve")
    for i, (x, y) in enumerate(points):
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=colour)
        draw.text((x, bottom + 10), labels[i], fill=INK, font=font(14), anchor="mt")
        if i in annotate:
            draw.text((x, y - 10), value_label(values[i]), fill=INK, font=font(15), anchor="mb")
    draw.line((left, bottom, right, bottom), fill=INK, width=2)
    save(img, name)


def pie_chart(name: str, title: str, parts: Sequence[tuple[str, float, RGB]]) -> None:
    img, draw = _chart_frame(title)
    box = (60, 80, 400, 420)
    start = -90.0
    for _, share, colour in parts:
        end = start + 360 * share / 100
        draw.pieslice(box, start, end, fill=colour, outline="white", width=3)
        start = end
    for i, (label, share, colour) in enumerate(parts):
        y = 170 + i * 50
        draw.rectangle((430, y - 12, 454, y + 12), fill=colour)
        draw.text((466, y), f"{label} — {share:g} %", fill=INK, font=font(20), anchor="lm")
    save(img, name)


def flowchart(name: str) -> None:
    img = Image.new("RGB", (720, 520), "white")
    draw = ImageDraw.Draw(img)
    f = font(18)

    def box(cx: int, cy: int, text: str, fill: RGB, *, diamond: bool = False) -> None:
        if diamond:
            draw.polygon(
                [(cx, cy - 55), (cx + 110, cy), (cx, cy + 55), (cx - 110, cy)],
                fill=fill,
                outline=INK,
                width=2,
            )
        else:
            draw.rounded_rectangle(
                (cx - 110, cy - 32, cx + 110, cy + 32), 12, fill=fill, outline=INK, width=2
            )
        draw.multiline_text((cx, cy), text, fill=INK, font=f, anchor="mm", align="center")

    def arrow(x0: float, y0: float, x1: float, y1: float, label: str = "") -> None:
        draw.line((x0, y0, x1, y1), fill=INK, width=3)
        angle = math.atan2(y1 - y0, x1 - x0)
        for side in (-1, 1):
            a = angle + math.pi + side * 0.45
            draw.line((x1, y1, x1 + 14 * math.cos(a), y1 + 14 * math.sin(a)), fill=INK, width=3)
        if label:
            draw.text(((x0 + x1) / 2 + 8, (y0 + y1) / 2), label, fill=MUTED, font=f, anchor="lm")

    box(360, 50, "Order placed", (222, 235, 250))
    arrow(360, 82, 360, 140)
    box(360, 200, "Payment\nOK?", (255, 243, 205), diamond=True)
    arrow(250, 200, 150, 300, "no")
    arrow(470, 200, 570, 300, "yes")
    box(150, 340, "Cancel order", (248, 215, 218))
    box(570, 340, "Pack and ship", (212, 237, 218))
    arrow(570, 372, 570, 430)
    box(570, 470, "Send tracking\nemail", (212, 237, 218))
    save(img, name)


def charts() -> None:
    bar_chart(
        "chart-revenue-en.png",
        "2025 revenue by quarter (USD)",
        ["Q1", "Q2", "Q3", "Q4"],
        [1.2, 1.5, 1.7, 2.0],
        lambda v: f"${v:.1f}M",
        2.4,
        [0, 0.5, 1.0, 1.5, 2.0],
        lambda v: f"${v:.1f}M",
    )
    months_de = ["Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"]
    line_chart(
        "chart-visitors-de.png",
        "Besucher pro Monat, 2024",
        months_de,
        [3200, 3500, 4800, 6100, 7400, 8200, 9300, 9800, 7600, 6200, 5400, 5100],
        0,
        10_000,
        [0, 2500, 5000, 7500, 10_000],
        lambda v: f"{v:,.0f}".replace(",", "."),
        annotate=(0, 7, 11),
        value_label=lambda v: f"{v:,.0f}".replace(",", "."),
    )
    pie_chart(
        "chart-devices-fr.png",
        "Trafic du site par appareil (2025)",
        [
            ("Mobile", 62, (44, 110, 190)),
            ("Ordinateur", 31, (240, 150, 40)),
            ("Tablette", 7, (90, 170, 100)),
        ],
    )
    bar_chart(
        "chart-sales-es.png",
        "Ventas por región, 2024 (miles de €)",
        ["Norte", "Sur", "Este", "Oeste"],
        [420, 310, 250, 180],
        lambda v: f"{v:.0f}",
        500,
        [0, 100, 200, 300, 400, 500],
        lambda v: f"{v:.0f}",
        colour=(60, 140, 120),
    )
    bar_chart(
        "chart-rain-ja.png",
        "東京の月別降水量（mm）",
        [f"{m}月" for m in range(1, 13)],
        [52, 56, 118, 125, 138, 168, 154, 168, 210, 198, 93, 51],
        lambda v: f"{v:.0f}",
        240,
        [0, 50, 100, 150, 200],
        lambda v: f"{v:.0f}",
        cjk=True,
    )
    line_chart(
        "chart-temp-pt.png",
        "Temperatura média mensal em Lisboa (°C)",
        ["jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"],
        [11, 12, 14, 16, 18, 21, 23, 24, 22, 19, 15, 12],
        5,
        30,
        [5, 10, 15, 20, 25, 30],
        lambda v: f"{v:.0f} °C",
        annotate=(0, 7),
        value_label=lambda v: f"{v:.0f} °C",
    )
    flowchart("diagram-orders-en.png")


# --- screenshots ----------------------------------------------------------------------------------

PAGE: RGB = (244, 246, 249)
BORDER: RGB = (200, 205, 212)
ACCENT: RGB = (37, 99, 235)


def window(
    size: tuple[int, int], title: str, *, cjk: bool = False
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", size, PAGE)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, size[0], 36), fill=(226, 230, 236))
    for i, colour in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        draw.ellipse((14 + i * 22, 12, 26 + i * 22, 24), fill=colour)
    draw.text((size[0] // 2, 18), title, fill=MUTED, font=font(14, cjk=cjk), anchor="mm")
    return img, draw


def field(
    draw: ImageDraw.ImageDraw, x: int, y: int, w: int, label: str, value: str, *, cjk: bool = False
) -> None:
    draw.text((x, y), label, fill=INK, font=font(15, cjk=cjk))
    draw.rounded_rectangle((x, y + 24, x + w, y + 60), 6, fill="white", outline=BORDER, width=2)
    if value:
        draw.text((x + 12, y + 42), value, fill=MUTED, font=font(15, cjk=cjk), anchor="lm")


def button(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    text: str,
    *,
    primary: bool = True,
    cjk: bool = False,
) -> None:
    draw.rounded_rectangle(box, 8, fill=ACCENT if primary else "white", outline=ACCENT, width=2)
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    colour = "white" if primary else ACCENT
    draw.text((cx, cy), text, fill=colour, font=font(16, bold=not cjk, cjk=cjk), anchor="mm")


def toggle(draw: ImageDraw.ImageDraw, x: int, y: int, on: bool) -> None:
    draw.rounded_rectangle((x, y, x + 52, y + 28), 14, fill=ACCENT if on else (190, 195, 202))
    knob = x + 26 if on else x + 2
    draw.ellipse((knob + 2, y + 2, knob + 24, y + 26), fill="white")


def screen_signin() -> None:
    img, draw = window((640, 520), "acme.example — Sign in")
    draw.rounded_rectangle((150, 70, 490, 480), 12, fill="white", outline=BORDER, width=2)
    draw.text((320, 115), "Sign in to Acme", fill=INK, font=font(24, bold=True), anchor="mm")
    field(draw, 180, 160, 280, "Email", "you@example.com")
    field(draw, 180, 250, 280, "Password", "••••••••")
    button(draw, (180, 350, 460, 396), "Sign in")
    draw.text((320, 430), "Forgot password?", fill=ACCENT, font=font(15), anchor="mm")
    save(img, "screen-signin-en.png")


def screen_settings() -> None:
    img, draw = window((640, 440), "Einstellungen")
    draw.text((40, 70), "Einstellungen", fill=INK, font=font(26, bold=True))
    rows = [("Dunkles Design", True), ("E-Mail-Benachrichtigungen", False)]
    for i, (label, on) in enumerate(rows):
        y = 140 + i * 80
        draw.rounded_rectangle((40, y, 600, y + 60), 10, fill="white", outline=BORDER)
        draw.text((64, y + 30), label, fill=INK, font=font(18), anchor="lm")
        toggle(draw, 520, y + 16, on)
    draw.rounded_rectangle((40, 300, 600, 360), 10, fill="white", outline=BORDER)
    draw.text((64, 330), "Sprache", fill=INK, font=font(18), anchor="lm")
    draw.text((560, 330), "Deutsch ▾", fill=MUTED, font=font(18), anchor="rm")
    save(img, "screen-settings-de.png")


def screen_error() -> None:
    img, draw = window((640, 420), "Documents")
    for i in range(5):
        draw.rounded_rectangle((30, 60 + i * 66, 610, 110 + i * 66), 6, fill=(232, 235, 240))
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 110))
    img = Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((110, 110, 530, 330), 12, fill="white")
    draw.ellipse((140, 140, 176, 176), fill=(220, 53, 69))
    draw.text((158, 158), "!", fill="white", font=font(24, bold=True), anchor="mm")
    draw.text(
        (192, 158), "Échec de l'enregistrement", fill=INK, font=font(20, bold=True), anchor="lm"
    )
    draw.text((140, 200), "Le fichier est trop volumineux", fill=INK, font=font(16))
    draw.text((140, 224), "(10 Mo maximum).", fill=INK, font=font(16))
    button(draw, (250, 270, 370, 310), "Annuler", primary=False)
    button(draw, (385, 270, 505, 310), "Réessayer")
    save(img, "screen-error-fr.png")


def screen_cart() -> None:
    img, draw = window((640, 480), "tienda.example — Carrito")
    draw.text((40, 64), "Tu carrito", fill=INK, font=font(26, bold=True))
    items = [
        ("Camiseta de algodón", "1 × 19,90 €", (120, 170, 220)),
        ("Taza de cerámica", "2 × 14,50 €", (230, 170, 90)),
    ]
    for i, (name, price, colour) in enumerate(items):
        y = 120 + i * 96
        draw.rounded_rectangle((40, y, 600, y + 80), 10, fill="white", outline=BORDER)
        draw.rounded_rectangle((56, y + 12, 112, y + 68), 8, fill=colour)
        draw.text((132, y + 28), name, fill=INK, font=font(18), anchor="lm")
        draw.text((132, y + 54), price, fill=MUTED, font=font(15), anchor="lm")
    draw.line((40, 330, 600, 330), fill=BORDER, width=2)
    draw.text((40, 360), "Total: 48,90 €", fill=INK, font=font(22, bold=True), anchor="lm")
    button(draw, (440, 338, 600, 384), "Pagar")
    save(img, "screen-cart-es.png")


def screen_dashboard() -> None:
    img, draw = window((720, 420), "Painel de vendas")
    draw.text((32, 60), "Painel", fill=INK, font=font(26, bold=True))
    cards = [
        ("Vendas hoje", "1.284", (37, 99, 235)),
        ("Novos clientes", "37", (22, 163, 74)),
        ("Pedidos pendentes", "12", (234, 88, 12)),
    ]
    for i, (label, value, colour) in enumerate(cards):
        x = 32 + i * 224
        draw.rounded_rectangle((x, 120, x + 200, 250), 12, fill="white", outline=BORDER)
        draw.rectangle((x, 120, x + 8, 250), fill=colour)
        draw.text((x + 24, 148), label, fill=MUTED, font=font(16))
        draw.text((x + 24, 190), value, fill=INK, font=font(36, bold=True))
    draw.rounded_rectangle((32, 280, 688, 390), 12, fill="white", outline=BORDER)
    for i, h in enumerate([30, 45, 38, 60, 52, 75, 68]):
        x = 70 + i * 86
        draw.rectangle((x, 375 - h, x + 40, 375), fill=(191, 210, 245))
    save(img, "screen-dashboard-pt.png")


def screen_login_ja() -> None:
    img, draw = window((480, 640), "ログイン", cjk=True)
    draw.text((240, 110), "ログイン", fill=INK, font=font(28, cjk=True), anchor="mm")
    field(draw, 60, 170, 360, "メールアドレス", "", cjk=True)
    field(draw, 60, 260, 360, "パスワード", "", cjk=True)
    button(draw, (60, 370, 420, 420), "ログイン", cjk=True)
    draw.text(
        (240, 460), "パスワードをお忘れの方", fill=ACCENT, font=font(15, cjk=True), anchor="mm"
    )
    save(img, "screen-login-ja.png")


def document_page() -> None:
    img = Image.new("RGB", (560, 760), (236, 236, 236))
    draw = ImageDraw.Draw(img)
    draw.rectangle((30, 20, 530, 740), fill="white", outline=(210, 210, 210))
    draw.text((60, 60), "Quarterly Safety Report", fill=INK, font=font(24, bold=True))
    draw.text((60, 96), "Q3 2025 — Northfield Logistics", fill=MUTED, font=font(16))
    draw.line((60, 126, 500, 126), fill=INK, width=2)
    draw.text((60, 144), "Summary", fill=INK, font=font(18, bold=True))
    summary = [
        "No lost-time incidents were recorded this",
        "quarter. Near misses rose at the warehouse",
        "after the new racking was installed; extra",
        "forklift training starts in October.",
    ]
    for i, line in enumerate(summary):
        draw.text((60, 176 + i * 24), line, fill=INK, font=font(15))
    draw.text((60, 290), "Near misses by site", fill=INK, font=font(18, bold=True))
    rows = [
        ("Site", "Q2", "Q3"),
        ("Warehouse", "4", "9"),
        ("Depot", "3", "2"),
        ("Office", "1", "0"),
    ]
    for r, row in enumerate(rows):
        y = 326 + r * 34
        if r == 0:
            draw.rectangle((60, y, 500, y + 34), fill=(230, 236, 245))
        draw.rectangle((60, y, 500, y + 34), outline=(200, 200, 200))
        for c, cell in enumerate(row):
            x = 72 + c * 150
            draw.text((x, y + 17), cell, fill=INK, font=font(15, bold=r == 0), anchor="lm")
    for i in range(6):
        y = 500 + i * 24
        draw.rectangle((60, y, 500 - (i % 3) * 60, y + 10), fill=(218, 218, 218))
    draw.text((280, 716), "Page 1 of 4", fill=MUTED, font=font(12), anchor="mm")
    save(img, "doc-safety-report-en.png")


def screenshots() -> None:
    screen_signin()
    screen_settings()
    screen_error()
    screen_cart()
    screen_dashboard()
    screen_login_ja()
    document_page()


# --- logos, text, icons, ornaments ----------------------------------------------------------------


def logos() -> None:
    img = Image.new("RGB", (360, 120), "white")
    draw = ImageDraw.Draw(img)
    draw.polygon([(30, 95), (70, 25), (110, 95)], fill=(220, 60, 40))
    draw.polygon([(55, 95), (70, 68), (85, 95)], fill="white")
    draw.text((130, 60), "ACME", fill=INK, font=font(54, bold=True), anchor="lm")
    save(img, "logo-acme.png")

    img = Image.new("RGB", (440, 160), (250, 244, 232))
    draw = ImageDraw.Draw(img)
    draw.ellipse((24, 30, 124, 130), fill=(120, 80, 40))
    for i in range(5):  # a stylised ear of wheat
        y = 48 + i * 14
        draw.ellipse((60, y, 74, y + 20), fill=(245, 215, 140))
        draw.ellipse((76, y, 90, y + 20), fill=(245, 215, 140))
    draw.line((74, 60, 74, 122), fill=(245, 215, 140), width=4)
    draw.text((142, 62), "Nordlicht", fill=(120, 80, 40), font=font(40, bold=True), anchor="lm")
    draw.text((144, 108), "Bäckerei", fill=(160, 120, 70), font=font(30), anchor="lm")
    save(img, "logo-nordlicht.png")

    img = Image.new("RGB", (400, 160), "white")
    draw = ImageDraw.Draw(img)
    for i in range(5):  # a five-petal blossom
        a = math.radians(-90 + i * 72)
        cx, cy = 80 + 26 * math.cos(a), 80 + 26 * math.sin(a)
        draw.ellipse((cx - 22, cy - 22, cx + 22, cy + 22), fill=(240, 150, 180))
    draw.ellipse((70, 70, 90, 90), fill=(200, 60, 110))
    draw.text((150, 80), "さくら書店", fill=(60, 40, 50), font=font(44, cjk=True), anchor="lm")
    save(img, "logo-sakura-shoten.png")

    img = Image.new("RGB", (420, 120), "white")
    draw = ImageDraw.Draw(img)
    draw.polygon([(30, 62), (70, 26), (110, 62)], fill=(40, 130, 70))
    draw.rectangle((42, 62, 98, 100), fill=(40, 130, 70))
    draw.rectangle((62, 76, 78, 100), fill="white")
    draw.text((128, 62), "Casa Verde", fill=(40, 100, 60), font=font(40, bold=True), anchor="lm")
    save(img, "logo-casa-verde.png")


def sign(
    name: str,
    lines: Sequence[str],
    size: tuple[int, int],
    bg: RGB,
    fg: RGB,
    px: int,
    *,
    cjk: bool = False,
    border: RGB | None = None,
) -> None:
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    if border is not None:
        draw.rounded_rectangle((10, 10, size[0] - 10, size[1] - 10), 16, outline=border, width=6)
    height = px * 1.3
    y0 = size[1] / 2 - height * (len(lines) - 1) / 2
    for i, line in enumerate(lines):
        draw.text(
            (size[0] / 2, y0 + i * height),
            line,
            fill=fg,
            font=font(px, bold=not cjk, cjk=cjk),
            anchor="mm",
        )
    save(img, name)


def text_images() -> None:
    sign(
        "text-hours-en.png",
        ["OPEN DAILY", "9 AM – 6 PM"],
        (520, 240),
        (20, 60, 110),
        (255, 255, 255),
        44,
        border=(255, 255, 255),
    )
    sign(
        "text-sale-fr.png",
        ["SOLDES D'ÉTÉ", "-30 % SUR TOUT !"],
        (640, 260),
        (230, 50, 60),
        (255, 255, 255),
        50,
    )
    sign(
        "text-closed-es.png",
        ["Cerrado por vacaciones", "hasta el 2 de septiembre."],
        (640, 220),
        (255, 250, 235),
        (40, 40, 40),
        34,
        border=(40, 40, 40),
    )
    sign(
        "text-shoes-de.png",
        ["Bitte Schuhe", "ausziehen"],
        (480, 220),
        (245, 245, 240),
        (30, 30, 30),
        44,
    )
    sign(
        "text-entry-pt.png",
        ["Proibida a entrada", "a pessoas não autorizadas."],
        (640, 220),
        (255, 210, 0),
        (20, 20, 20),
        34,
        border=(20, 20, 20),
    )
    sign(
        "text-closed-ja.png",
        ["本日休業"],
        (420, 200),
        (255, 255, 255),
        (180, 20, 30),
        72,
        cjk=True,
        border=(180, 20, 30),
    )


def icons() -> None:
    def canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
        img = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
        return img, ImageDraw.Draw(img)

    ink = (30, 41, 59, 255)
    img, draw = canvas()
    draw.ellipse((14, 14, 62, 62), outline=ink, width=8)
    draw.line((56, 56, 84, 84), fill=ink, width=10)
    save(img, "icon-search.png")

    img, draw = canvas()
    draw.line((48, 10, 48, 60), fill=ink, width=9)
    draw.polygon([(26, 42), (70, 42), (48, 68)], fill=ink)
    draw.line((14, 62, 14, 84, 82, 84, 82, 62), fill=ink, width=8, joint="curve")
    save(img, "icon-download.png")

    img, draw = canvas()
    draw.line((6, 16, 22, 16, 32, 62, 78, 62, 86, 28, 26, 28), fill=ink, width=7, joint="curve")
    draw.ellipse((30, 68, 44, 82), fill=ink)
    draw.ellipse((64, 68, 78, 82), fill=ink)
    save(img, "icon-cart.png")

    img, draw = canvas()
    draw.polygon([(48, 10), (88, 46), (8, 46)], fill=ink)
    draw.rectangle((20, 44, 76, 86), fill=ink)
    draw.rectangle((40, 60, 56, 86), fill=(0, 0, 0, 0))
    save(img, "icon-home.png")

    img, draw = canvas()
    draw.rectangle((10, 22, 86, 76), outline=ink, width=7)
    draw.line((12, 24, 48, 54, 84, 24), fill=ink, width=7, joint="curve")
    save(img, "icon-mail.png")

    img, draw = canvas()
    for y in (24, 46, 68):
        draw.rounded_rectangle((14, y - 5, 82, y + 5), 4, fill=ink)
    save(img, "icon-menu.png")


def ornaments() -> None:
    img = Image.new("RGB", (600, 60), "white")
    draw = ImageDraw.Draw(img)
    gold = (176, 141, 87)
    draw.line((30, 30, 250, 30), fill=gold, width=2)
    draw.line((350, 30, 570, 30), fill=gold, width=2)
    draw.polygon([(300, 14), (316, 30), (300, 46), (284, 30)], fill=gold)
    for x in (262, 338):
        draw.ellipse((x - 5, 25, x + 5, 35), fill=gold)
    save(img, "divider-flourish.png")

    img = Image.new("RGB", (720, 180))
    draw = ImageDraw.Draw(img)
    for x in range(720):
        t = x / 719
        colour = (int(30 + 60 * t), int(64 + 90 * t), int(175 - 40 * t))
        draw.line((x, 0, x, 180), fill=colour)
    for i in range(40):
        x, y = (i * 97) % 720, (i * 53) % 180
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(255, 255, 255))
    save(img, "header-gradient.png")


def main(argv: Sequence[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: make_images.py SKIMAGE_DATA_DIR")
    OUT.mkdir(parents=True, exist_ok=True)
    photos(Path(argv[0]))
    charts()
    screenshots()
    logos()
    text_images()
    icons()
    ornaments()


if __name__ == "__main__":
    main(sys.argv[1:])
