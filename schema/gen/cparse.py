"""Just enough C for reading the kernel's sysctl tables: comments, macros, braces, constants.

Nothing here compiles C. The functions cut a source file into the pieces the extractor needs
(initialiser bodies split at top-level commas, function bodies, macro definitions) and evaluate
the integer constant expressions that bound sysctls (`INT_MAX / HZ` is reported as depending on
HZ rather than computed for one HZ).
"""

import re

# Constants of the x86-64 kernel ABI that headers define through casts and arithmetic the
# evaluator does not follow. HZ is deliberately absent: it is a kernel configuration choice.
BUILTIN_CONSTANTS = {
    "INT_MAX": 2**31 - 1,
    "INT_MIN": -(2**31),
    "UINT_MAX": 2**32 - 1,
    "LONG_MAX": 2**63 - 1,
    "LONG_MIN": -(2**63),
    "ULONG_MAX": 2**64 - 1,
    "LLONG_MAX": 2**63 - 1,
    "ULLONG_MAX": 2**64 - 1,
    "SHRT_MAX": 2**15 - 1,
    "USHRT_MAX": 2**16 - 1,
    "U8_MAX": 255,
    "S8_MAX": 127,
    "U16_MAX": 2**16 - 1,
    "S16_MAX": 2**15 - 1,
    "U32_MAX": 2**32 - 1,
    "S32_MAX": 2**31 - 1,
    "S32_MIN": -(2**31),
    "U64_MAX": 2**64 - 1,
    "S64_MAX": 2**63 - 1,
    "PAGE_SIZE": 4096,
    "PAGE_SHIFT": 12,
    "BITS_PER_LONG": 64,
    "BITS_PER_BYTE": 8,
    "NSEC_PER_SEC": 10**9,
    "NSEC_PER_MSEC": 10**6,
    "NSEC_PER_USEC": 1000,
    "USEC_PER_SEC": 10**6,
    "USEC_PER_MSEC": 1000,
    "MSEC_PER_SEC": 1000,
    "USER_HZ": 100,
    "true": 1,
    "false": 0,
    "NULL": 0,
    "CONFIG_BASE_SMALL": 0,
}

# Names whose value depends on the kernel configuration or the machine: an expression using one
# is reported as such instead of evaluated.
CONFIG_DEPENDENT = {"HZ": "HZ", "NR_CPUS": "NR_CPUS", "num_possible_cpus": "CPUs",
                    "totalram_pages": "RAM", "nr_cpu_ids": "CPUs", "MAX_ORDER": "config",
                    "MAX_PAGE_ORDER": "config", "NR_PAGE_ORDERS": "config"}

SIZEOF = {
    "int": 4, "unsigned int": 4, "unsigned": 4, "u32": 4, "s32": 4, "__u32": 4, "uint": 4,
    "long": 8, "unsigned long": 8, "ulong": 8, "u64": 8, "s64": 8, "long long": 8,
    "unsigned long long": 8, "u8": 1, "__u8": 1, "char": 1, "bool": 1, "u16": 2, "short": 2,
    "unsigned short": 2, "atomic_t": 4, "atomic_long_t": 8, "kuid_t": 4, "kgid_t": 4,
    "size_t": 8, "time64_t": 8, "void *": 8, "void*": 8, "pid_t": 4, "__kernel_ulong_t": 8,
}


COMMENT_OR_LITERAL = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)


def strip_comments(text):
    """Removes /* */ and // comments, keeping strings, character literals and line numbers."""
    def repl(m):
        token = m.group(0)
        if token.startswith("/"):
            return "\n" * token.count("\n") or " "
        return token
    return COMMENT_OR_LITERAL.sub(repl, text)


def join_continuations(text):
    """Joins lines ending in a backslash (macro bodies)."""
    return re.sub(r"\\\n", " ", text)


def clean(text):
    """A source file ready for the regexes: no comments, no line continuations, and the
    branches of x86-64-decidable conditionals that do not apply removed."""
    return select_branches(join_continuations(strip_comments(text)))


# Conditions decided for x86-64; every other condition keeps all of its branches. Other
# architectures' options are false: their sysctls do not exist on the machines covered.
DECIDED = {"CONFIG_X86_64": True, "CONFIG_64BIT": True, "CONFIG_X86": True, "CONFIG_MMU": True,
           "CONFIG_SYSCTL": True, "CONFIG_PROC_SYSCTL": True, "CONFIG_NET": True,
           "CONFIG_X86_32": False, "CONFIG_32BIT": False, "CONFIG_UML": False,
           "CONFIG_SPARC": False, "CONFIG_SPARC64": False, "CONFIG_SPARC32": False,
           "CONFIG_PARISC": False, "CONFIG_S390": False, "CONFIG_IA64": False,
           "CONFIG_SUPERH": False, "CONFIG_MIPS": False, "CONFIG_PPC": False,
           "CONFIG_PPC64": False, "CONFIG_ARM": False, "CONFIG_ARM64": False,
           "CONFIG_RISCV": False, "CONFIG_ALPHA": False, "CONFIG_M68K": False,
           "CONFIG_ARC": False, "CONFIG_CSKY": False, "CONFIG_LOONGARCH": False,
           "CONFIG_SYSCTL_ARCH_UNALIGN_ALLOW": False, "CONFIG_SYSCTL_ARCH_UNALIGN_NO_WARN": False,
           "0": False, "1": True}

CONDITION_TOKEN = re.compile(r"\s*(defined|IS_ENABLED|IS_BUILTIN|IS_REACHABLE|\w+|&&|\|\||!|\(|\))")


def decide(line):
    """True/False for a conditional directive decided for x86-64, None when undecidable."""
    m = re.match(r"\s*#\s*(ifdef|ifndef|if|elif)\s+(.*)$", line)
    if not m:
        return None
    if m.group(1) in ("ifdef", "ifndef"):
        value = DECIDED.get(m.group(2).strip())
        if value is None:
            return None
        return value if m.group(1) == "ifdef" else not value
    tokens = CONDITION_TOKEN.findall(m.group(2))
    try:
        value, rest = condition_or(tokens)
    except (IndexError, ValueError):
        return None
    return value if not rest else None


def condition_or(tokens):
    """Three-valued `a || b` (None = unknown)."""
    value, tokens = condition_and(tokens)
    while tokens and tokens[0] == "||":
        other, tokens = condition_and(tokens[1:])
        value = True if True in (value, other) else None if None in (value, other) else False
    return value, tokens


def condition_and(tokens):
    """Three-valued `a && b`."""
    value, tokens = condition_not(tokens)
    while tokens and tokens[0] == "&&":
        other, tokens = condition_not(tokens[1:])
        value = False if False in (value, other) else None if None in (value, other) else True
    return value, tokens


def condition_not(tokens):
    """`!a`, `(a)`, `defined(X)`, `IS_ENABLED(X)`, `X`."""
    head = tokens[0]
    if head == "!":
        value, rest = condition_not(tokens[1:])
        return (None if value is None else not value), rest
    if head == "(":
        value, rest = condition_or(tokens[1:])
        if not rest or rest[0] != ")":
            raise ValueError("unbalanced")
        return value, rest[1:]
    if head in ("defined", "IS_ENABLED", "IS_BUILTIN", "IS_REACHABLE"):
        if tokens[1] == "(":
            return DECIDED.get(tokens[2]), tokens[4:]
        return DECIDED.get(tokens[1]), tokens[2:]
    if re.match(r"^\d+$", head):
        return head != "0", tokens[1:]
    return DECIDED.get(head), tokens[1:]


def select_branches(text):
    """Drops the lines of #if branches that are false on x86-64 (undecided ones are kept)."""
    out, stack = [], []  # stack of (decided?, taking?, any_taken?)
    for line in text.split("\n"):
        directive = re.match(r"\s*#\s*(ifdef|ifndef|if|elif|else|endif)\b", line)
        active = all(taking for _, taking, _ in stack)
        if directive:
            kind = directive.group(1)
            if kind in ("ifdef", "ifndef", "if"):
                value = decide(line)
                stack.append((value is not None, value is not False, bool(value)))
            elif kind == "elif" and stack:
                decided, _, taken = stack[-1]
                if decided:
                    value = decide(line)
                    if value is None:
                        stack[-1] = (False, not taken, taken)
                    else:
                        stack[-1] = (True, value and not taken, taken or value)
            elif kind == "else" and stack:
                decided, _, taken = stack[-1]
                if decided:
                    stack[-1] = (True, not taken, True)
            elif kind == "endif" and stack:
                stack.pop()
            out.append("")
            continue
        out.append(line if active else "")
    return "\n".join(out)


def matching(text, start, open_c="{", close_c="}"):
    """Index just past the bracket that closes the one at `start`, skipping strings."""
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def split_top(text, sep=","):
    """Splits at `sep` outside brackets and strings; drops empty pieces."""
    parts, depth, cur, i, n = [], 0, [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def drop_directives(text):
    """Removes preprocessor lines (#ifdef, #endif, ...) from an initialiser body."""
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("#"))


def macros(text):
    """{name: (params or None, body)} for every #define in a cleaned file."""
    out = {}
    for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)(\([^)]*\))?[ \t]*(.*)$", text, re.M):
        params = None
        if m.group(2) is not None:
            params = [p.strip() for p in m.group(2)[1:-1].split(",") if p.strip()]
        out.setdefault(m.group(1), (params, m.group(3).strip()))
    return out


def ambiguous_macros(text):
    """Object-like macros a file defines more than once with different bodies (the branches of
    an #if, such as MAX_SKB_FRAGS by page size): which one holds depends on the configuration."""
    bodies = {}
    for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)([ \t].*)?$", text, re.M):
        bodies.setdefault(m.group(1), set()).add((m.group(2) or "").strip())
    return {name for name, seen in bodies.items() if len(seen) > 1}


def expand(text, defs, depth=0):
    """Expands the function-like macros of `defs` in `text` (with # and ##), repeatedly."""
    if depth > 6:
        return text
    names = [n for n, (params, _) in defs.items() if params is not None]
    if not names:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\s*\(")
    out, pos, changed = [], 0, False
    for m in pattern.finditer(text):
        if m.start() < pos:
            continue
        open_at = m.end() - 1
        close = matching(text, open_at, "(", ")")
        args = split_top(text[open_at + 1:close - 1]) if close > open_at + 1 else []
        params, body = defs[m.group(1)]
        out.append(text[pos:m.start()])
        out.append(substitute(body, params, args))
        pos, changed = close, True
    out.append(text[pos:])
    result = "".join(out)
    return expand(result, defs, depth + 1) if changed else result


def substitute(body, params, args):
    """One macro body with its arguments: `#p` becomes a string, `a ## b` is pasted."""
    values = dict(zip(params, args + [""] * (len(params) - len(args))))
    if params and params[-1] == "...":
        values["__VA_ARGS__"] = ", ".join(args[len(params) - 1:])

    def stringify(m):
        return '"%s"' % values.get(m.group(1), m.group(1)).strip('"')

    body = re.sub(r"(?<!#)#\s*(\w+)", stringify, body)
    body = re.sub(r"\b(\w+)\b", lambda m: values.get(m.group(1), m.group(1)), body)
    return re.sub(r"\s*##\s*", "", body)


def functions(text):
    """{name: body} of the function definitions in a cleaned file."""
    out = {}
    for m in re.finditer(r"^(?:[A-Za-z_][\w \t\*]*?[\s\*])?(\w+)\s*\(([^;{)]*(?:\([^)]*\)[^;{)]*)*)\)\s*\{", text, re.M):
        name = m.group(1)
        if name in ("if", "for", "while", "switch", "return", "sizeof", "do", "else"):
            continue
        start = m.end() - 1
        out.setdefault(name, text[start:matching(text, start)])
    return out


def enclosing_function(text, pos):
    """The body of the function containing offset `pos`, or ''."""
    best = ""
    for m in re.finditer(r"^(?:[A-Za-z_][\w \t\*]*?[\s\*])?(\w+)\s*\([^;{]*\)\s*\{", text[:pos], re.M):
        start = m.end() - 1
        end = matching(text, start)
        if start < pos < end:
            best = text[start:end]
    return best


def c_string(expr):
    """The text of a C string literal (adjacent literals joined), or None."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', expr)
    if not parts or re.sub(r'"(?:[^"\\]|\\.)*"', "", expr).strip():
        return None
    return "".join(parts)


class Unresolved(Exception):
    """An expression that cannot be evaluated statically; `why` names what is missing."""

    def __init__(self, why):
        super().__init__(why)
        self.why = why


def strip_casts(expr):
    """Removes C casts and integer suffixes so the expression parser can read it; all-ones
    unsigned constants (`~0UL`, `~(size_t)0`) become their value first."""
    expr = re.sub(r"~\s*\(\s*(?:size_t|unsigned\s+long|ulong|u64)\s*\)\s*0\b|~\s*0[uU]?[lL]{1,2}\b",
                  "ULONG_MAX", expr)
    expr = re.sub(r"~\s*\(\s*(?:unsigned\s+int|unsigned|u32|uint)\s*\)\s*0\b|~\s*0[uU]\b", "UINT_MAX", expr)
    expr = re.sub(r"\(\s*(?:unsigned\s+int|unsigned|u32|uint)\s*\)\s*(?:~\s*0|-\s*1)\b", "UINT_MAX", expr)
    expr = re.sub(r"\(\s*(?:unsigned\s+long(?:\s+long)?|ulong|u64|size_t)\s*\)\s*(?:~\s*0|-\s*1)\b",
                  "ULONG_MAX", expr)
    expr = re.sub(r"\(\s*u8\s*\)\s*(?:~\s*0|-\s*1)\b", "U8_MAX", expr)
    types = r"(?:const\s+)?(?:unsigned\s+|signed\s+)?(?:long\s+long|long|int|short|char|u8|u16|u32|u64|s8|s16|s32|s64|__u32|__u64|size_t|ulong|uint|void)\s*\**"
    expr = re.sub(r"\(\s*" + types + r"\s*\)", " ", expr)
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)(?:[uU]?[lL]{0,2}|[lL]{1,2}[uU]?)\b", r"\1", expr)
    return re.sub(r"\b0([0-7]+)\b", r"0o\1", expr)


class Evaluator:
    """Evaluates C integer constant expressions with the macros and constants it is given."""

    def __init__(self, lookup):
        """`lookup(name)` returns the text an identifier stands for, or None."""
        self.lookup = lookup

    def value(self, expr, depth=0):
        """The integer value of `expr`; raises Unresolved."""
        expr = expr.strip()
        if depth > 12:
            raise Unresolved("too deep: " + expr)
        expr = strip_casts(self.sizeofs(expr))
        expr = self.calls(expr, depth)
        env = {}
        for name in set(re.findall(r"\b[A-Za-z_]\w*\b", expr)):
            env[name] = self.name(name, depth)
        return Parser(expr, env).parse()

    def name(self, name, depth):
        """The value of one identifier."""
        if name in CONFIG_DEPENDENT:
            raise Unresolved(CONFIG_DEPENDENT[name])
        if name in BUILTIN_CONSTANTS:
            return BUILTIN_CONSTANTS[name]
        text = self.lookup(name)
        if text is None or text == name:
            raise Unresolved(name)
        return self.value(text, depth + 1)

    def sizeofs(self, expr):
        """Replaces sizeof(type) of known scalar types by their size."""
        def size(m):
            t = re.sub(r"\s+", " ", m.group(1).strip())
            if t in SIZEOF:
                return str(SIZEOF[t])
            raise Unresolved("sizeof(%s)" % t)
        return re.sub(r"\bsizeof\s*\(([^()]*)\)", size, expr)

    def calls(self, expr, depth):
        """Evaluates the few helper macros bounds use: BIT, min, max, SZ_*, DIV_ROUND_UP."""
        expr = re.sub(r"\bIS_ENABLED\s*\(\s*(\w+)\s*\)",
                      lambda m: str(int(bool(BUILTIN_CONSTANTS.get(m.group(1), DECIDED.get(m.group(1), 0))))), expr)
        m = re.search(r"\b(BIT|BIT_ULL|min|max|min_t|max_t|DIV_ROUND_UP|ilog2|order_base_2|roundup_pow_of_two|SKB_TRUESIZE|SKB_DATA_ALIGN|GENMASK|GENMASK_U8|GENMASK_U32|__const_min|__const_max)\s*\(", expr)
        if not m:
            return expr
        open_at = m.end() - 1
        close = matching(expr, open_at, "(", ")")
        args = split_top(expr[open_at + 1:close - 1])
        fn = m.group(1)
        if fn in ("min_t", "max_t"):
            args = args[1:]
        if fn in ("SKB_TRUESIZE", "SKB_DATA_ALIGN"):
            raise Unresolved("struct sizes (%s)" % fn)
        vals = [self.value(a, depth + 1) for a in args]
        result = {
            "BIT": lambda: 1 << vals[0],
            "BIT_ULL": lambda: 1 << vals[0],
            "min": lambda: min(vals),
            "min_t": lambda: min(vals),
            "max": lambda: max(vals),
            "max_t": lambda: max(vals),
            "DIV_ROUND_UP": lambda: -(-vals[0] // vals[1]),
            "ilog2": lambda: vals[0].bit_length() - 1,
            "order_base_2": lambda: (vals[0] - 1).bit_length(),
            "roundup_pow_of_two": lambda: 1 << (vals[0] - 1).bit_length(),
            "GENMASK": lambda: ((1 << (vals[0] + 1)) - 1) & ~((1 << vals[1]) - 1),
            "GENMASK_U8": lambda: ((1 << (vals[0] + 1)) - 1) & ~((1 << vals[1]) - 1),
            "GENMASK_U32": lambda: ((1 << (vals[0] + 1)) - 1) & ~((1 << vals[1]) - 1),
            "__const_min": lambda: min(vals),
            "__const_max": lambda: max(vals),
        }[fn]()
        return self.calls(expr[:m.start()] + "(%d)" % result + expr[close:], depth)


TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|0[oO][0-7]+|\d+|[A-Za-z_]\w*|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%()<>&|^~!?:])")

# Binary operators by C precedence (higher binds tighter).
BINARY = {"*": 10, "/": 10, "%": 10, "+": 9, "-": 9, "<<": 8, ">>": 8, "<": 7, "<=": 7,
          ">": 7, ">=": 7, "==": 6, "!=": 6, "&": 5, "^": 4, "|": 3, "&&": 2, "||": 1}


class Parser:
    """A precedence-climbing evaluator of C integer expressions (with ?: and unary ops)."""

    def __init__(self, text, env):
        self.tokens, pos = [], 0
        text = text.strip()
        while pos < len(text):
            m = TOKEN.match(text, pos)
            if not m:
                raise Unresolved("token in " + text)
            self.tokens.append(m.group(1))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.env, self.i = env, 0

    def parse(self):
        """The expression's value; raises Unresolved on anything else."""
        value = self.ternary()
        if self.i != len(self.tokens):
            raise Unresolved("trailing " + " ".join(self.tokens[self.i:]))
        return value

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected=None):
        token = self.peek()
        if token is None or (expected and token != expected):
            raise Unresolved("expected %s" % expected)
        self.i += 1
        return token

    def ternary(self):
        cond = self.binary(1)
        if self.peek() == "?":
            self.take("?")
            a = self.ternary()
            self.take(":")
            b = self.ternary()
            return a if cond else b
        return cond

    def binary(self, level):
        left = self.unary()
        while self.peek() in BINARY and BINARY[self.peek()] >= level:
            op = self.take()
            right = self.binary(BINARY[op] + 1)
            left = apply(op, left, right)
        return left

    def unary(self):
        token = self.take()
        if token == "(":
            value = self.ternary()
            self.take(")")
            return value
        if token == "-":
            return -self.unary()
        if token == "+":
            return self.unary()
        if token == "~":
            return ~self.unary()
        if token == "!":
            return int(not self.unary())
        if token[0].isdigit():
            return int(token, 0)
        if token in self.env:
            return self.env[token]
        raise Unresolved(token)


def apply(op, a, b):
    """One C binary operation on integers (division truncates toward zero)."""
    if op in "/%" and b == 0:
        raise Unresolved("division by zero")
    if op == "/":
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if op == "%":
        return a - b * apply("/", a, b)
    return {"*": lambda: a * b, "+": lambda: a + b, "-": lambda: a - b, "<<": lambda: a << b,
            ">>": lambda: a >> b, "<": lambda: int(a < b), "<=": lambda: int(a <= b),
            ">": lambda: int(a > b), ">=": lambda: int(a >= b), "==": lambda: int(a == b),
            "!=": lambda: int(a != b), "&": lambda: a & b, "^": lambda: a ^ b,
            "|": lambda: a | b, "&&": lambda: int(bool(a and b)),
            "||": lambda: int(bool(a or b))}[op]()
