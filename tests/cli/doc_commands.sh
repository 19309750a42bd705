#!/usr/bin/env bash
# Every command the documentation shows runs as written from the repository
# root. The commands are taken from
#   - the comment lines of experiments/**/*.toml (their headers),
#   - experiments/**/*.md, README.md and docs/**/*.md: shell code blocks
#     (```sh, ```bash, ```console, ``` without a language, and 4-space indented
#     blocks) and inline `backticked` spans,
# wherever a line starts with build/bin/drift-*, drift-*, tools/drift-report or
# bash <script> (after a "$ " prompt, VAR=value assignments, /usr/bin/time,
# nice, ...; a trailing "# comment" and "\" line continuations are handled).
#
# drift-run: the same flags are checked by drift-run itself, without training:
# --dry-run FILE for the file (keys, values, every cell), the --cells list by
# drift-run's own parser (drift-run --slurm --dry-run --cells L FILE, which
# submits nothing), flags against drift-run's grammar (--cells L, --jobs N,
# --restart, FILE; --slurm with its options; --dry-run / --status / --merge FILE;
# --list-plugins, --print-schema), --status, --slurm and --list-plugins run in a
# scratch directory. drift-pretrain and drift-probe: the FILE is dry-run and
# --cells is checked the same way. Every other tool (drift-eval, drift-report,
# drift-export, ...): it exists in build/bin, its flags appear in its --help, and
# every path it names in the repository exists (results/ outputs, absolute paths
# and placeholders such as FILE, N or <name> are not checked).
# A bad command fails the test with the file:line where it starts.
#
# DOC_ROOT=DIR checks the documentation under DIR instead of the source tree;
# DOC_COMMANDS_VERBOSE=1 lists every command checked.
# Without DOC_ROOT the test also checks itself: it plants broken commands
# (--cells 2/3, an unknown flag, a wrong path, ...) in a copy of a few files and
# asserts that each is reported at its file:line and that the good lines
# planted beside them are not.
set -uo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
root=${DOC_ROOT:-$DRIFT_SOURCE_DIR}
bin=$DRIFT_BINARY_DIR/bin
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$bin/drift-run" ] || fail "$bin/drift-run not built"
[ -d "$root/experiments" ] || fail "$root/experiments: no such directory"

py=
for c in python3 "$DRIFT_SOURCE_DIR/.venv/bin/python"; do
  if command -v "$c" > /dev/null 2>&1 && "$c" -c 'import shlex, re, subprocess' 2> /dev/null; then py=$c; break; fi
done
[ -n "$py" ] || { echo "SKIP: no python3 to extract the commands with"; exit 77; }

tmp=$(mktemp -d /tmp/drift-doc-commands-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

check() {  # check ROOT: prints the report, exits 0 (all good) or 1
  "$py" - "$1" "$bin" "$tmp/scratch-$RANDOM" << 'PY'
import os, re, shlex, subprocess, sys

root, bindir, scratch = sys.argv[1:4]
verbose = os.environ.get("DOC_COMMANDS_VERBOSE") == "1"
os.makedirs(scratch, exist_ok=True)
failures, checked, skipped = [], [], []
SHELL_LANGS = {"", "sh", "bash", "shell", "console", "zsh", "shell-session"}
PATH_EXT = (".toml", ".h5", ".pt", ".json", ".sh", ".py", ".md", ".png", ".csv", ".txt")
TOOL_RE = re.compile(r"^(?:(?P<dir>.*)/)?(?P<tool>drift-[a-z][a-z-]*)$")


def rel(path):
    return os.path.relpath(path, root)


# ---------------------------------------------------------------- extraction

def joined(lines, i, strip):
    """Line i and its "\\"-continuations, each passed through strip(); returns (text, next i)."""
    text = strip(lines[i])
    j = i + 1
    while text.rstrip().endswith("\\") and j < len(lines):
        nxt = strip(lines[j])
        if nxt is None:
            break
        text = text.rstrip()[:-1] + " " + nxt.strip()
        j += 1
    return text, j


def inline_spans(text):
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)


def from_toml(path):
    out = []
    lines = open(path, encoding="utf-8").read().split("\n")
    comment = lambda l: l.lstrip()[1:] if l.lstrip().startswith("#") else None
    i = 0
    while i < len(lines):
        c = comment(lines[i])
        if c is None:
            i += 1
            continue
        text, j = joined(lines, i, comment)
        out.append((i + 1, text, "block"))
        for span in inline_spans(c):
            out.append((i + 1, span, "inline"))
        i = j
    return out


def from_markdown(path):
    out = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i, fence, lang = 0, None, ""
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", line)
        if fence is None and m:
            fence, lang = m.group(1), m.group(2).lower()
            i += 1
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            elif lang in SHELL_LANGS:
                text, j = joined(lines, i, lambda l: l)
                out.append((i + 1, text, "block"))
                i = j
                continue
            i += 1
            continue
        if re.match(r"^(    |\t)", line):  # an indented code block (or a list continuation)
            text, j = joined(lines, i, lambda l: l)
            out.append((i + 1, text, "block"))
            for span in inline_spans(line):
                out.append((i + 1, span, "inline"))
            i = j
            continue
        for span in inline_spans(line):
            out.append((i + 1, span, "inline"))
        i += 1
    return out


# ---------------------------------------------------------------- parsing

WRAPPERS = {"time", "/usr/bin/time", "nice", "env", "nohup", "exec", "command", "do", "then", "else"}


def tokenize(text):
    text = re.sub(r"^\s*[$%]\s+", "", text)  # a prompt
    text = re.sub(r"\s\d*(>>?|<)&?\s*[^\s|;&]+", " ", text)  # redirections: 2>&1, > log, < in
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        return list(lex)
    except ValueError:
        return None


def segments(tokens):
    seg = []
    skip_next = False
    for t in tokens:
        if skip_next:
            skip_next = False
            continue
        if t in ("|", "||", "&&", ";", "&"):
            yield seg
            seg = []
        elif t in (">", ">>", "<", ">&", "&>"):
            skip_next = True
        else:
            seg.append(t)
    yield seg


def strip_prefix(seg):
    """Drops VAR=value assignments and wrappers (/usr/bin/time -v, nice -n 19, ...)."""
    k = 0
    while k < len(seg):
        t = seg[k]
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", t):
            k += 1
        elif t in WRAPPERS:
            k += 1
            while k < len(seg) and seg[k].startswith("-"):
                opt = seg[k]
                k += 1
                if opt in ("-f", "-o", "-n", "--format", "--output") and k < len(seg):
                    k += 1
        else:
            break
    return seg[k:]


def placeholder(tok):
    return (re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[a-z0-9]+)?", tok) is not None
            or any(c in tok for c in "<>$*{}") or "..." in tok or "\u2026" in tok)


def unbracket(args):
    out = []
    for a in args:
        a = a.strip("[]")
        if a:
            out.append(a)
    return out


# ---------------------------------------------------------------- checks

cache = {}


def run(argv, cwd=scratch, timeout=300):
    key = (tuple(argv), cwd)
    if key not in cache:
        try:
            p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=timeout)
            cache[key] = (p.returncode, p.stdout)
        except subprocess.TimeoutExpired:
            cache[key] = (124, "timed out after %d s" % timeout)
        except OSError as e:
            cache[key] = (126, "cannot run %s: %s" % (argv[0], e))
    return cache[key]


def last_line(out):
    lines = [l for l in out.strip().split("\n") if l.strip()]
    return lines[-1] if lines else "(no output)"


help_flags = {}


def known_flags(tool):
    """The --flags a tool's --help (or usage message) names; None if it names none."""
    if tool not in help_flags:
        rc, out = run([os.path.join(bindir, tool), "--help"], timeout=60)
        flags = set()
        if rc in (0, 2) and "usage" in out.lower():  # not a traceback's words
            flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out))
        help_flags[tool] = flags or None
    return help_flags[tool]


def repo_path(tok):
    """An absolute path for a token naming a file in the repository, else None."""
    if placeholder(tok) or tok.startswith("/") or tok.startswith("-"):
        return None
    first = tok.split("/")[0]
    if first == "results" or first == "." or first == "..":
        return None
    looks_like = "/" in tok or tok.endswith(PATH_EXT)
    if not looks_like:
        return None
    if tok.endswith((".toml", ".sh", ".py")) or os.path.exists(os.path.join(root, first)):
        return os.path.join(root, tok)
    return None


def check_file(path, errors):
    """path exists and drift-run --dry-run accepts it."""
    if not os.path.isfile(path):
        errors.append("%s: no such file" % rel(path))
        return False
    rc, out = run([os.path.join(bindir, "drift-run"), "--dry-run", path])
    if rc != 0:
        errors.append("drift-run --dry-run %s: exit %d: %s" % (rel(path), rc, last_line(out)))
        return False
    return True


def cell_list_syntax_ok(spec):
    parts = [p for p in spec.split(",") if p.strip()]
    if not parts:
        return False
    for p in parts:
        m = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", p)
        if not m or (m.group(2) is not None and int(m.group(1)) > int(m.group(2))):
            return False
    return True


def check_cells(spec, path, errors):
    """The --cells list, by drift-run's own parser against the file's grid."""
    if placeholder(spec):
        return
    if path is None:
        if not cell_list_syntax_ok(spec):
            errors.append("--cells %s: not a cell list (the syntax is --cells 0,2-5)" % spec)
        return
    rc, out = run([os.path.join(bindir, "drift-run"), "--slurm", "--dry-run", "--cells", spec, path])
    if rc != 0:
        errors.append(last_line(out))


def file_operand(tok, errors, inline):
    """(absolute path or None, ok): None for a placeholder or an absolute path outside the repo."""
    if placeholder(tok) or tok.startswith("/"):
        return None, True
    path = os.path.join(root, tok)
    return path, check_file(path, errors)


def check_drift_run(args, errors, inline):
    exe = os.path.join(bindir, "drift-run")
    if not args:
        return "mention" if inline else errors.append("drift-run without arguments prints its usage")
    a0 = args[0]
    if a0 in ("--list-plugins", "--print-schema"):
        if len(args) > 1:
            errors.append("%s takes no argument (got %s)" % (a0, " ".join(args[1:])))
            return
        rc, out = run([exe, a0])
        if rc != 0:
            errors.append("drift-run %s: exit %d: %s" % (a0, rc, last_line(out)))
        return
    if a0 in ("--help", "-h"):
        rc, out = run([exe, a0])
        if "usage:" not in out:
            errors.append("drift-run %s printed no usage" % a0)
        return
    if a0 in ("--dry-run", "--status", "--merge"):
        if len(args) != 2:
            if len(args) == 1 and inline:
                return "mention"
            errors.append("drift-run %s takes exactly one FILE (got %d arguments; "
                          "other flags go without --dry-run)" % (a0, len(args) - 1))
            return
        path, ok = file_operand(args[1], errors, inline)
        if path and ok and a0 == "--status":
            rc, out = run([exe, "--status", path])
            if rc != 0:
                errors.append("drift-run --status %s: exit %d: %s" % (args[1], rc, last_line(out)))
        return
    if a0 in ("--array-task", "--cell-worker"):
        allowed = {"--cell", "--threads"} | ({"--cell-out"} if a0 == "--cell-worker" else set())
        if len(args) < 2:
            return "mention" if inline else errors.append("%s needs FILE" % a0)
        rest = args[2:]
        for k in range(0, len(rest), 2):
            if rest[k] not in allowed:
                errors.append("drift-run %s: unknown flag %s" % (a0, rest[k]))
        file_operand(args[1], errors, inline)
        return
    if a0 == "--slurm":
        value_flags = {"--cells", "--partition", "--time", "--mem", "--cpus-per-task",
                       "--gpus-per-task", "--max-running", "--sbatch-option"}
        files, fwd, k = [], [], 1
        while k < len(args):
            a = args[k]
            name = a.split("=", 1)[0]
            if a in ("--dry-run", "--restart"):
                fwd.append(a)
            elif name in value_flags and "=" in a:
                fwd.append(a)
            elif a in value_flags:
                if k + 1 >= len(args):
                    errors.append("drift-run --slurm: %s needs a value" % a)
                    return
                fwd += [a, args[k + 1]]
                k += 1
            elif a.startswith("-"):
                errors.append("drift-run --slurm: unknown flag %s" % a)
                return
            else:
                files.append(a)
            k += 1
        if len(files) != 1:
            if not files and inline:
                return "mention"
            errors.append("drift-run --slurm takes one FILE (got %d)" % len(files))
            return
        path, ok = file_operand(files[0], errors, inline)
        if not path or not ok:
            return
        if any(placeholder(t) for t in fwd):
            return
        if "--dry-run" not in fwd:
            fwd = ["--dry-run"] + fwd
        rc, out = run([exe, "--slurm"] + fwd + [path])
        if rc != 0:
            errors.append("drift-run --slurm --dry-run: exit %d: %s" % (rc, last_line(out)))
        return
    # drift-run [--cells L] [--jobs N] [--restart] FILE
    files, cells, k = [], None, 0
    while k < len(args):
        a = args[k]
        if a in ("--cells", "--jobs"):
            if k + 1 >= len(args):
                errors.append("%s needs a value" % a)
                return
            v = args[k + 1]
            if a == "--cells":
                cells = v
            elif not placeholder(v) and not re.fullmatch(r"[1-9][0-9]*", v):
                errors.append("--jobs %s: expected a number >= 1" % v)
            k += 2
            continue
        if a == "--restart":
            pass
        elif a.startswith("-"):
            errors.append("unknown flag %s (drift-run [--cells 0,2-5] [--jobs N] [--restart] FILE; "
                          "--dry-run, --status, --merge, --slurm, --list-plugins, --print-schema go first)" % a)
            return
        else:
            files.append(a)
        k += 1
    if len(files) != 1:
        if not files and inline:
            return "mention"
        errors.append("drift-run takes one FILE (got %d: %s)" % (len(files), " ".join(files)))
        return
    path, ok = file_operand(files[0], errors, inline)
    if cells is not None and ok:
        check_cells(cells, path, errors)


def check_other_tool(tool, args, errors, inline):
    if not args and inline:
        return "mention"
    flags = known_flags(tool)
    toml, cells = None, None
    k = 0
    while k < len(args):
        a = args[k]
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            if flags is not None and name not in flags:
                errors.append("%s: unknown flag %s (not in %s --help)" % (tool, name, tool))
            if name == "--cells" and k + 1 < len(args):
                cells = args[k + 1]
            k += 1
            continue
        p = repo_path(a)
        if p is not None and not os.path.exists(p):
            errors.append("%s: no such file or directory" % a)
        elif p is not None and a.endswith(".toml") and tool in ("drift-pretrain", "drift-probe"):
            toml = p
        k += 1
    if toml is not None and check_file(toml, errors) and cells is not None:
        check_cells(cells, toml, errors)


def check_command(text, inline):
    """None if text is not a command we check, else (kind, errors)."""
    tokens = tokenize(text)
    if tokens is None:
        return None
    results = []
    for seg in segments(tokens):
        seg = strip_prefix(seg)
        if not seg:
            continue
        head, args = seg[0], unbracket(seg[1:])
        errors = []
        if head in ("bash", "sh"):
            if not args or placeholder(args[0]):
                continue
            if not os.path.isfile(os.path.join(root, args[0])):
                errors.append("%s: no such script" % args[0])
            for a in args[1:]:
                p = repo_path(a)
                if p is not None and not os.path.exists(p):
                    errors.append("%s: no such file or directory" % a)
            results.append(("script", errors))
            continue
        m = TOOL_RE.match(head)
        if not m:
            continue
        d, tool = m.group("dir"), m.group("tool")
        if d in (None, "build/bin", "./build/bin"):
            pass
        elif d == "tools":
            if not os.path.isfile(os.path.join(root, head)):
                errors.append("%s: no such file" % head)
        elif placeholder(d) or d.startswith("/"):
            pass  # an installed copy: checked as build/bin's
        elif d.endswith("bin"):
            errors.append("%s/: no such build directory; the build is build/ (build/bin/%s)" % (d, tool))
        else:
            errors.append("%s: not a drift tool path (build/bin/%s)" % (head, tool))
        if not os.path.isfile(os.path.join(bindir, tool)) and not (d == "tools" and tool == "drift-report"):
            errors.append("%s: no such tool in build/bin" % tool)
            results.append((tool, errors))
            continue
        if tool == "drift-run":
            r = check_drift_run(args, errors, inline)
        else:
            r = check_other_tool(tool, args, errors, inline)
        if r == "mention" and not errors:
            continue
        results.append((tool, errors))
    return results


def relevant_files():
    out = []
    for base, dirs, files in os.walk(os.path.join(root, "experiments")):
        for f in sorted(files):
            if f.endswith(".toml") or f.endswith(".md"):
                out.append(os.path.join(base, f))
    if os.path.isfile(os.path.join(root, "README.md")):
        out.append(os.path.join(root, "README.md"))
    for base, dirs, files in os.walk(os.path.join(root, "docs")):
        for f in sorted(files):
            if f.endswith(".md"):
                out.append(os.path.join(base, f))
    return sorted(out)


n_run = 0
for path in relevant_files():
    cands = from_toml(path) if path.endswith(".toml") else from_markdown(path)
    n_file = 0
    for line, text, kind in cands:
        res = check_command(text, kind == "inline")
        if not res:
            continue
        for tool, errors in res:
            n_file += 1
            n_run += tool == "drift-run"
            checked.append((path, line))
            if verbose:
                print("%s %s:%d: %s" % ("bad" if errors else "ok ", rel(path), line, " ".join(text.split())))
            for e in errors:
                failures.append("%s:%d: %s\n    %s" % (rel(path), line, " ".join(text.split()), e))
    if path.endswith(".toml") and n_file == 0:
        failures.append("%s:1: its header shows no command to run it" % rel(path))

for f in failures:
    print("FAIL " + f)
print("doc_commands: %d commands checked (%d drift-run) in %s, %d failures"
      % (len(checked), n_run, root, len(failures)))
sys.exit(1 if failures else 0)
PY
}

check "$root"
rc=$?
[ -n "${DOC_ROOT:-}" ] && exit $rc
[ $rc = 0 ] || fail "documented commands above do not run as written"

# The checker checks: plant broken commands in a copy and expect each at its
# file:line, and no report for the good lines planted beside them.
neg=$tmp/planted
mkdir -p "$neg/experiments/start" "$neg/experiments/recipes" "$neg/docs/guide"
cp "$DRIFT_SOURCE_DIR"/experiments/start/*.toml "$neg/experiments/start/"
cp "$DRIFT_SOURCE_DIR/experiments/recipes/encoder_probe.toml" "$neg/experiments/recipes/"
q=$neg/experiments/start/quickstart.toml
{ head -n 1 "$DRIFT_SOURCE_DIR/experiments/start/quickstart.toml"
  echo '#   build/bin/drift-pretrain --cells 2/3 experiments/recipes/encoder_probe.toml'
  echo '#   build/bin/drift-run --jobs 2 --bogus experiments/start/quickstart.toml'
  echo '#   build/bin/drift-run --jobs 2 \'
  echo '#       --cells 0-9 experiments/start/quickstart.toml   # 10 cells; the file has 1'
  echo '#   $ build/bin/drift-run --dry-run experiments/start/quickstart.toml  # good: a prompt and a comment'
  echo '#   build/bin/drift-run --dry-run --cells 0 experiments/start/quickstart.toml'
  tail -n +2 "$DRIFT_SOURCE_DIR/experiments/start/quickstart.toml"; } > "$q"
cat > "$neg/docs/guide/planted.md" << 'EOF'
Inline: `build/bin/drift-run --dry-run experiments/start/nope.toml` names a missing file.

```sh
$ build/bin/drift-run --cells 2/3 experiments/start/toy_mixture.toml   # bad cell list
build/bin/drift-eval results/planted.h5 --cell 0      # good: results/ is an output
build-h3/bin/drift-run --dry-run experiments/start/quickstart.toml
build/bin/drift-report experiments/nope/planted.toml
bash scripts/nope.sh
/usr/bin/time -v build/bin/drift-run --jobs 2 --cells 0,2-5 \
    experiments/start/toy_mixture.toml                # good: a continuation
build/bin/drift-run --list-plugins | head            # good
build/bin/drift-eval results/planted.h5 --no-such-flag 1
```
EOF
DOC_ROOT=$neg bash "$0" > "$tmp/planted.txt" 2>&1
prc=$?
[ $prc = 1 ] || { cat "$tmp/planted.txt"; fail "the planted broken commands gave exit $prc, expected 1"; }
expect() {  # expect FILE:LINE TEXT: a FAIL line for FILE:LINE whose report mentions TEXT
  grep -A1 -F "FAIL $1:" "$tmp/planted.txt" | grep -qF -- "$2" \
    || { cat "$tmp/planted.txt"; fail "no report of $1 mentioning '$2'"; }
}
expect experiments/start/quickstart.toml:2 "'2/3' is not a cell index or range"
expect experiments/start/quickstart.toml:3 "unknown flag --bogus"
expect experiments/start/quickstart.toml:4 "cell 9 does not exist"
expect experiments/start/quickstart.toml:7 "--dry-run takes exactly one FILE"
expect docs/guide/planted.md:1 "experiments/start/nope.toml: no such file"
expect docs/guide/planted.md:4 "'2/3' is not a cell index or range"
expect docs/guide/planted.md:6 "build-h3/bin/: no such build directory"
expect docs/guide/planted.md:7 "experiments/nope/planted.toml: no such file"
expect docs/guide/planted.md:8 "scripts/nope.sh: no such script"
expect docs/guide/planted.md:12 "unknown flag --no-such-flag"
for good in experiments/start/quickstart.toml:6 docs/guide/planted.md:5 \
            docs/guide/planted.md:9 docs/guide/planted.md:11; do
  if grep -qF "FAIL $good:" "$tmp/planted.txt"; then cat "$tmp/planted.txt"; fail "$good is a good command, reported as bad"; fi
done
[ "$(grep -c '^FAIL ' "$tmp/planted.txt")" = 10 ] || { cat "$tmp/planted.txt"; fail "expected exactly the 10 planted failures"; }
echo "cli.doc_commands: OK (the planted broken commands were each reported at their file:line)"
