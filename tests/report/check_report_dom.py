#!/usr/bin/env python3
"""Checks the DOM Chromium built from a `loft report` page (chromium --headless --dump-dom), and its screenshot.

What a reader sees must be there as elements: each chart a <figure id=...> with an <svg role="img"> titled, the loss
curves one path per variant with its legend label, bars and their variant labels, the stacked categories, the table
with one row per variant and the differing keys as columns; user strings (variant names) as text, never as elements;
no script. Standard library only.
"""
import argparse
import struct
import sys
import zlib
from html.parser import HTMLParser


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""

    def classes(self):
        return set(self.attrs.get("class", "").split())

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)

    def find(self, tag=None, cls=None, **attrs):
        return [n for n in self.walk() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes())
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]


VOID = {"meta", "br", "img", "input", "link", "hr"}


class Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text += data


failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def check_png(path):
    data = open(path, "rb").read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    check(width >= 600 and height >= 600, f"{path}: {width}x{height} is too small for a report")
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    pixels = zlib.decompress(idat)
    # A blank page compresses to a few byte values; charts, text and colours give many.
    check(len(set(pixels)) > 64, f"{path}: the screenshot looks blank ({len(set(pixels))} distinct byte values)")
    print(f"screenshot {width}x{height}, {len(set(pixels))} distinct byte values")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dom", required=True)
    ap.add_argument("--png")
    ap.add_argument("--chart", action="append", default=[], help="a figure id that must be there")
    ap.add_argument("--no-chart", action="append", default=[], help="a figure id that must not be there")
    ap.add_argument("--variant", action="append", default=[], help="a variant name, in table order")
    ap.add_argument("--key", action="append", default=[], help="a column of differing keys")
    ap.add_argument("--without-curve", action="append", default=[], help="a variant that has no loss curve")
    ap.add_argument("--bands", type=int, help="seed bands in the training loss chart")
    args = ap.parse_args()

    b = Builder()
    b.feed(open(args.dom, encoding="utf-8").read())
    root = b.root
    check(not root.find("script"), "the page holds a <script> element")
    for n in root.walk():
        for k, v in n.attrs.items():
            check(not k.startswith("on"), f"<{n.tag}> has an event handler attribute {k}")
            check(not (v or "").startswith(("http:", "https:", "javascript:")), f"<{n.tag} {k}> points outside: {v}")

    for chart in args.chart:
        figures = root.find("figure", id=chart)
        check(len(figures) == 1, f"figure #{chart}: {len(figures)} found")
        if not figures:
            continue
        fig = figures[0]
        caption = fig.find("figcaption")
        check(caption and caption[0].all_text().strip(), f"#{chart} has no caption")
        svgs = fig.find("svg")
        check(len(svgs) == 1 and svgs[0].attrs.get("role") == "img", f"#{chart}: no <svg role=img>")
        if svgs:
            titles = [c for c in svgs[0].children if c.tag == "title"]
            check(titles and titles[0].all_text().strip(), f"#{chart}: the svg has no <title>")
            labelled = svgs[0].attrs.get("aria-labelledby", "").split()
            for ref in labelled:
                check(root.find(id=ref), f"#{chart}: aria-labelledby names a missing #{ref}")
            ticks = fig.find("text", cls="tick-label")
            check(len(ticks) >= 3, f"#{chart}: {len(ticks)} tick labels")
            check(fig.find("text", cls="axis-label"), f"#{chart}: no axis label")
    for chart in args.no_chart:
        check(not root.find("figure", id=chart), f"figure #{chart} should not be there")

    variants = args.variant
    with_curves = [v for v in variants if v not in args.without_curve]
    if "chart-train-loss" in args.chart and root.find("figure", id="chart-train-loss"):
        fig = root.find("figure", id="chart-train-loss")[0]
        curves = fig.find("path", cls="curve")
        check(len(curves) == len(with_curves), f"training loss: {len(curves)} curves for {len(with_curves)} variants")
        check(sorted(c.attrs.get("data-variant") for c in curves) == sorted(with_curves),
              f"training loss curves name {[c.attrs.get('data-variant') for c in curves]}")
        for c in curves:
            check(c.attrs.get("d", "").startswith("M"), f"curve {c.attrs.get('data-variant')} has no path data")
        legend = [t.all_text() for t in fig.find("text", cls="legend-label")]
        for v in with_curves:
            check(any(l.startswith(v[:30]) for l in legend), f"training loss legend lacks {v!r}: {legend}")
        axis = [t.all_text() for t in fig.find("text", cls="axis-label")]
        check("step" in axis and "loss" in axis, f"training loss axis labels: {axis}")
        if args.bands is not None:
            bands = fig.find("path", cls="band")
            check(len(bands) == args.bands, f"training loss: {len(bands)} seed bands, expected {args.bands}")
    for chart in ("chart-throughput", "chart-accuracy"):
        if chart in args.chart and root.find("figure", id=chart):
            fig = root.find("figure", id=chart)[0]
            bars = fig.find("rect", cls="bar")
            check(bars, f"#{chart} has no bars")
            labels = [t.all_text().strip() for t in fig.find("text", cls="variant-label")]
            check(len(labels) == len(bars), f"#{chart}: {len(bars)} bars, {len(labels)} variant labels")
            for bar in bars:
                check(float(bar.attrs.get("width", "0")) > 0, f"#{chart}: an empty bar")
    for chart in ("chart-gpu-memory", "chart-host-memory"):
        if chart in args.chart and root.find("figure", id=chart):
            fig = root.find("figure", id=chart)[0]
            series = {r.attrs.get("data-series") for r in fig.find("rect", cls="bar")}
            check(series <= {"measured", "planned"} and series, f"#{chart}: bar series {series}")
            legend = [t.all_text() for t in fig.find("text", cls="legend-label")]
            check("measured peak" in legend and "planned peak" in legend, f"#{chart}: legend {legend}")
    if "chart-memory-breakdown" in args.chart and root.find("figure", id="chart-memory-breakdown"):
        fig = root.find("figure", id="chart-memory-breakdown")[0]
        segments = fig.find("rect", cls="segment")
        categories = {s.attrs.get("data-category") for s in segments}
        check("weights" in categories or "activations" in categories, f"breakdown categories: {categories}")
        legend = {t.all_text() for t in fig.find("text", cls="legend-label")}
        check(categories <= legend, f"breakdown legend {legend} lacks some of {categories}")

    tables = root.find("table", id="results-table")
    check(len(tables) == 1, "no #results-table")
    if tables:
        table = tables[0]
        header = [th.all_text().strip() for th in table.find("thead")[0].find("th")]
        check(header[:1] == ["variant"], f"table header {header}")
        for key in args.key:
            check(key in header, f"table lacks the differing key column {key}: {header}")
        rows = table.find("tbody")[0].find("tr")
        names = [r.find("th")[0].all_text().strip() for r in rows]
        check(names == variants, f"table rows {names}, expected {variants}")
    for v in variants:
        check(v in root.all_text(), f"variant name {v!r} is not text of the page")

    if args.png:
        check_png(args.png)
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print(f"DOM ok: {len(args.chart)} charts, {len(variants)} variants")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
