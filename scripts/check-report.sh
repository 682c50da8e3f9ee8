#!/usr/bin/env bash
# Renders a FactSweep report in a real headless browser and checks the
# screenshot is not trivial (right size, not blank, the chart colours drawn).
#
#   scripts/check-report.sh RUN_OR_REPORT_DIR [OUT.png]
#
# RUN_OR_REPORT_DIR is a folder holding report.html, or a run directory whose
# report/ holds it (made with `factsweep report RUN` first when missing and a
# factsweep binary is at hand: $FACTSWEEP, else .build/debug/factsweep).
# The screenshot goes to OUT.png (default: screenshot.png beside report.html).
# Needs chromium (Debian: apt-get install -y chromium; $CHROMIUM overrides)
# and python3; uses ImageMagick's convert to decode the PNG when present.
set -euo pipefail

usage() { echo "usage: $0 RUN_OR_REPORT_DIR [OUT.png]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
target=$1

if [[ -f $target/report.html ]]; then
    report_dir=$target
elif [[ -f $target/report/report.html ]]; then
    report_dir=$target/report
elif [[ -f $target/run.db ]]; then
    factsweep=${FACTSWEEP:-$(dirname "$0")/../.build/debug/factsweep}
    [[ -x $factsweep ]] || { echo "no report in $target and no factsweep binary at $factsweep (set FACTSWEEP)" >&2; exit 1; }
    "$factsweep" report "$target"
    report_dir=$target/report
else
    echo "$target holds neither report.html, report/report.html nor run.db" >&2
    exit 1
fi
report_dir=$(cd "$report_dir" && pwd)
out=${2:-$report_dir/screenshot.png}

browser=${CHROMIUM:-}
if [[ -z $browser ]]; then
    for candidate in chromium chromium-browser google-chrome; do
        if command -v "$candidate" >/dev/null; then browser=$candidate; break; fi
    done
fi
[[ -n $browser ]] || { echo "no chromium found: apt-get install -y chromium, or set CHROMIUM" >&2; exit 1; }

rm -f "$out"
# --no-sandbox: containers often run as root, where Chromium's sandbox refuses to start.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --screenshot="$out" --window-size=1280,2400 "file://$report_dir/report.html" >/dev/null 2>&1 || true
[[ -s $out ]] || { echo "chromium wrote no screenshot to $out" >&2; exit 1; }

python3 - "$out" <<'PY'
"""Checks a screenshot: PNG of 1280×2400, mostly but not only white, with
several of the report's chart colours (Okabe–Ito) drawn."""
import shutil, struct, subprocess, sys, zlib
from collections import Counter

path = sys.argv[1]

def decode_png(data):
    """(width, height, RGB bytes) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG ({depth}-bit, type {colour})"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    previous, rgb = bytearray(stride), bytearray()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1: line[i] = (line[i] + a) & 255
            elif kind == 2: line[i] = (line[i] + b) & 255
            elif kind == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rgb += line if channels == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3)
        previous = line
    return width, height, bytes(rgb)

def decode_ppm(ppm):
    """(width, height, RGB bytes) of a binary PPM (P6, maxval 255)."""
    fields, pos = [], 0
    while len(fields) < 4:
        while ppm[pos:pos + 1].isspace(): pos += 1
        if ppm[pos:pos + 1] == b"#":
            pos = ppm.index(b"\n", pos)
            continue
        end = pos
        while not ppm[end:end + 1].isspace(): end += 1
        fields.append(ppm[pos:end]); pos = end
    assert fields[0] == b"P6" and fields[3] == b"255", "not an 8-bit binary PPM"
    return int(fields[1]), int(fields[2]), ppm[pos + 1:]

data = open(path, "rb").read()
rgb = None
if shutil.which("convert"):
    # ImageMagick decodes in C; the pure-Python decoder below takes a while.
    converted = subprocess.run(["convert", path, "ppm:-"], capture_output=True)
    if converted.returncode == 0 and converted.stdout.startswith(b"P6"):
        width, height, rgb = decode_ppm(converted.stdout)
if rgb is None:
    width, height, rgb = decode_png(data)

pixels = Counter(rgb[i:i + 3] for i in range(0, len(rgb), 3))
total = width * height
white = sum(n for colour, n in pixels.items() if min(colour) >= 245)
palette = {"blue": (0x00, 0x72, 0xB2), "orange": (0xE6, 0x9F, 0x00), "green": (0x00, 0x9E, 0x73),
           "vermillion": (0xD5, 0x5E, 0x00), "purple": (0xCC, 0x79, 0xA7)}
drawn = [name for name, target in palette.items()
         if sum(n for colour, n in pixels.items() if max(abs(colour[k] - target[k]) for k in range(3)) <= 24) >= 200]

problems = []
if len(data) < 30_000: problems.append(f"file is only {len(data)} bytes")
if (width, height) != (1280, 2400): problems.append(f"size {width}×{height}, expected 1280×2400")
if len(pixels) < 50: problems.append(f"only {len(pixels)} distinct colours")
if not 0.02 <= 1 - white / total <= 0.9: problems.append(f"{100 * (1 - white / total):.1f}% of pixels are not white")
if len(drawn) < 3: problems.append(f"chart colours drawn: {', '.join(drawn) or 'none'}")
print(f"{path}: {width}×{height}, {len(data)} bytes, {len(pixels)} colours, "
      f"{100 * (1 - white / total):.1f}% not white, chart colours: {', '.join(drawn)}")
if problems:
    print("screenshot check failed: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("screenshot check passed")
PY
