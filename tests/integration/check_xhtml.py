#!/usr/bin/env python3
"""Check the room log pages under a folder (modules/muc/muc-log.c).

Every .html file must parse as XML with the XHTML namespace on its root,
have a <title>, and carry no active content: no script or other embedding
element, no event handler (on*) or style attribute, no <style> outside
<head>, and links only to http, https, xmpp or mailto, or to the log's own
pages.  xmllint checks each file as well when it is installed.

Usage: check_xhtml.py [--css-link] DIR...
(exit 0: all good; 1: a page failed; 2: usage).  --css-link: the pages
may link a stylesheet (the log's css_url setting).
"""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

XHTML = "{http://www.w3.org/1999/xhtml}"
FORBIDDEN = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
             "input", "button", "textarea", "select", "base", "img", "svg", "math",
             "audio", "video", "source", "template", "noscript"}
EXTERNAL = ("http://", "https://", "xmpp:", "mailto:")
INTERNAL = re.compile(r"^(\.\./\.\./)?(index\.html|\d{4}/\d{2}/\d{2}\.html)$")


def local(tag):
    return tag[len(XHTML):] if tag.startswith(XHTML) else None


def check_page(path, css_allowed):
    problems = []
    try:
        tree = ET.parse(path)
    except ET.ParseError as e:
        return ["not well-formed: %s" % e]
    root = tree.getroot()
    if root.tag != XHTML + "html":
        problems.append("root element is %s, not xhtml html" % root.tag)
    title = root.find("%shead/%stitle" % (XHTML, XHTML))
    if title is None or not (title.text or "").strip():
        problems.append("no <title>")
    head = root.find(XHTML + "head")
    head_children = set(head) if head is not None else set()
    for el in root.iter():
        name = local(el.tag)
        if name is None:
            problems.append("element outside the xhtml namespace: %s" % el.tag)
            continue
        if name in FORBIDDEN:
            problems.append("forbidden element <%s>" % name)
        if name == "style" and el not in head_children:
            problems.append("<style> outside <head>")
        if name == "meta" and el.get("http-equiv", "").lower() not in ("", "content-type"):
            problems.append("<meta http-equiv=%r>" % el.get("http-equiv"))
        for attr, value in el.attrib.items():
            a = attr.lower()
            if a.startswith("on") or a in ("style", "src", "srcdoc", "formaction", "action"):
                problems.append("attribute %s=%r on <%s>" % (attr, value, name))
            if a == "href":
                if name == "link":
                    if el.get("rel") != "stylesheet" or not css_allowed:
                        problems.append("<link href=%r>" % value)
                elif name != "a":
                    problems.append("href on <%s>" % name)
                elif value.lower().startswith(EXTERNAL):
                    rel = (el.get("rel") or "").split()
                    if "nofollow" not in rel or "noopener" not in rel:
                        problems.append("link %r without rel nofollow noopener" % value)
                elif not INTERNAL.match(value):
                    problems.append("href with a scheme that is not allowed: %r" % value[:80])
        for text in (el.text, el.tail):
            if text and re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text):
                problems.append("control character in text of <%s>" % name)
    return problems


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    css_allowed = "--css-link" in sys.argv
    if not args or not all(os.path.isdir(a) for a in args):
        print("usage: check_xhtml.py [--css-link] DIR...", file=sys.stderr)
        return 2
    xmllint = shutil.which("xmllint")
    pages = 0
    failed = 0
    for d in args:
        for top, _dirs, files in os.walk(d):
            for f in sorted(files):
                if not f.endswith(".html"):
                    continue
                path = os.path.join(top, f)
                pages += 1
                problems = check_page(path, css_allowed)
                if xmllint:
                    r = subprocess.run([xmllint, "--noout", "--nonet", path],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                    if r.returncode != 0:
                        problems.append("xmllint: " + r.stdout.decode("utf-8", "replace")[:500])
                if problems:
                    failed += 1
                    print("FAIL %s" % path)
                    for p in problems[:20]:
                        print("  " + p)
    if pages == 0:
        print("FAIL: no .html page under %s" % " ".join(args))
        return 1
    print("%d page(s) checked, %d failed" % (pages, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
