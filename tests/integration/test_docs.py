#!/usr/bin/env python3
"""Documentation against the code: every key of the configuration table in
src/config_keys.c (config_keys[] and config_class_keys[], read at test time) is documented in
doc/spillway.ini.5 under its section and shown in conf/spillway.ini (a
commented-out ";key = ..." counts); the defaults shown in conf/spillway.ini
are the table's; both man pages are clean under mandoc -Tlint when mandoc is
installed."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TOP_SRCDIR, check, run_main, skip, test

CONFIG_C = os.path.join(TOP_SRCDIR, "src", "config_keys.c")
MAN5 = os.path.join(TOP_SRCDIR, "doc", "spillway.ini.5")
MAN8 = os.path.join(TOP_SRCDIR, "doc", "spillway.8")
CONF = os.path.join(TOP_SRCDIR, "conf", "spillway.ini")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def table(name):
    """[(section, key, default or None)] of one struct key array."""
    text = read(CONFIG_C)
    m = re.search(r"const struct key\s+%s\[[A-Z_]*\]\s*=\s*\{(.*?)\n\};"
                  % name, text, re.S)
    check(m, "no table %s[] in %s" % (name, CONFIG_C))
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    rows = []
    for e in re.finditer(r'\{\s*"([^"]+)"\s*,\s*"([^"]+)"\s*,\s*\w+\s*,'
                         r'[^,]+,[^,]+,\s*(NULL|"(?:[^"\\]|\\.)*")', body):
        default = None if e.group(3) == "NULL" else e.group(3)[1:-1]
        rows.append((e.group(1), e.group(2), default))
    check(rows, "no key found in %s[]" % name)
    return rows


def all_keys():
    return table("config_keys") + table("config_class_keys")


def man_keys():
    """{section: set of keys} from the .Ss [section] / .It Ic key lines."""
    found, section = {}, None
    for line in read(MAN5).splitlines():
        m = re.match(r'^\.Ss\s+"?\[(\w+)', line)
        if m:
            section = m.group(1)
            found.setdefault(section, set())
            continue
        if line.startswith(".Ss") or line.startswith(".Sh"):
            section = None
            continue
        m = re.match(r"^\.It\s+Ic\s+(\w+)", line)
        if m and section is not None:
            found[section].add(m.group(1))
    return found


def conf_keys():
    """{section: {key: value or None if commented out}}."""
    found, section = {}, None
    for line in read(CONF).splitlines():
        # a section, or a commented-out one: "; [class NAME]: ..."
        m = (re.match(r"^\s*\[(\w+)[^\]]*\]", line) or
             re.match(r"^\s*[;#]\s*\[(\w+)[^\]]*\]\s*(:.*)?$", line))
        if m:
            section = m.group(1)
            found.setdefault(section, {})
            continue
        m = re.match(r"^\s*([;#])?\s*(\w+)\s*=\s*(.*?)\s*(?:\s;.*)?$", line)
        if m and section is not None:
            value = None if m.group(1) else m.group(3)
            keys = found[section]
            if keys.get(m.group(2)) is None:
                keys[m.group(2)] = value
    return found


@test("every key of the table is in spillway.ini(5) under its section")
def keys_in_man_page():
    doc = man_keys()
    missing = ["[%s] %s" % (s, k) for s, k, _ in all_keys()
               if k not in doc.get(s, set())]
    check(not missing, "not documented in doc/spillway.ini.5 (add an "
          ".It Ic KEY entry under .Ss [SECTION]): " + ", ".join(missing))


@test("spillway.ini(5) documents no key the table lacks")
def no_stale_man_keys():
    known = {(s, k) for s, k, _ in all_keys()}
    stale = ["[%s] %s" % (s, k) for s, ks in sorted(man_keys().items())
             for k in sorted(ks) if (s, k) not in known]
    check(not stale, "in doc/spillway.ini.5 but not in src/config_keys.c: " +
          ", ".join(stale))


@test("every key of the table is in conf/spillway.ini under its section")
def keys_in_conf():
    conf = conf_keys()
    missing = ["[%s] %s" % (s, k) for s, k, _ in all_keys()
               if k not in conf.get(s, {})]
    check(not missing, "not shown in conf/spillway.ini (add 'KEY = "
          "default', or ';KEY = example' without a default): " +
          ", ".join(missing))


@test("conf/spillway.ini shows each key with the table's default")
def conf_defaults():
    conf = conf_keys()
    wrong = []
    for s, k, default in table("config_keys"):
        shown = conf.get(s, {}).get(k)
        if default is not None and shown is not None and shown != default:
            wrong.append("[%s] %s = %s, default %s" % (s, k, shown, default))
        if default is not None and shown is None and k in conf.get(s, {}):
            wrong.append("[%s] %s has a default (%s) but is commented out"
                         % (s, k, default))
    check(not wrong, "conf/spillway.ini and src/config_keys.c disagree: " +
          "; ".join(wrong))


@test("mandoc -Tlint: both man pages clean")
def mandoc_lint():
    mandoc = shutil.which("mandoc")
    if mandoc is None:
        skip("mandoc not installed (apt-get install mandoc)")
    # style messages (a manual referenced but not installed here) aside
    cp = subprocess.run([mandoc, "-Tlint", "-W", "warning", MAN8, MAN5],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        timeout=30)
    out = cp.stdout.decode("utf-8", "replace")
    check(cp.returncode == 0 and not out.strip(),
          "mandoc -Tlint exit %d:\n%s" % (cp.returncode, out))


@test("no log line above debug names an internal function (__func__)")
def no_function_names_in_logs():
    # a call at info level or above that passes __func__: the operator
    # reads "server_event: ..." where "server ..." says it (issue 16)
    call = re.compile(r"\blog_(info|warnx?|notice|crit|errx?)\(|"
                      r"\blog_msg\(LOG_LVL_(?!DEBUG)")
    bad = []
    src = os.path.join(TOP_SRCDIR, "src")
    for name in sorted(os.listdir(src)):
        if not name.endswith(".c"):
            continue
        text = read(os.path.join(src, name))
        for m in call.finditer(text):
            depth, i = 1, text.index("(", m.start()) + 1
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            if "__func__" in text[m.start():i]:
                bad.append("%s:%d" % (name, text.count("\n", 0,
                                                          m.start()) + 1))
    check(not bad, "log calls above debug naming __func__: %s"
          % ", ".join(bad))


if __name__ == "__main__":
    run_main()
