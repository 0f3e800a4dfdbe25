"""The subset of YAML the generator reads and writes (Python's standard library has none).

Reads: block mappings and sequences by indentation, flow `[...]` and `{...}`, double- and
single-quoted and plain scalars (int, bool, null, string), `#` comments. That covers
descriptions.yaml, overrides.yaml and the entries of keys.yaml. Anchors, tags, multi-line
plain scalars and block scalars (`|`, `>`) are refused with the line number.

Writes: `dump_entries` renders a list of flat-ish entries the way keys.yaml is written, one
`field: value` per line with flow collections for small values.
"""

import json
import re


class YamlError(Exception):
    """A construct outside the subset, with its line number."""


def load(text):
    """Parses a document of the subset into dicts, lists and scalars."""
    lines = []
    for number, raw in enumerate(text.split("\n"), 1):
        stripped = strip_comment(raw).rstrip()
        if stripped.strip() and stripped.strip() != "---":
            lines.append((number, len(stripped) - len(stripped.lstrip(" ")), stripped.strip()))
    if not lines:
        return None
    value, pos = block(lines, 0, lines[0][1])
    if pos != len(lines):
        raise YamlError("line %d: unexpected indentation" % lines[pos][0])
    return value


def strip_comment(line):
    """The line without a trailing `# comment` (outside quotes)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote and not (quote == '"' and line[i - 1] == "\\"):
                quote = None
        elif c in "\"'" and (i == 0 or line[i - 1] in " [{,:-"):
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def block(lines, pos, indent):
    """A block mapping or sequence starting at lines[pos] with this indentation."""
    if lines[pos][2].startswith("- ") or lines[pos][2] == "-":
        return sequence(lines, pos, indent)
    return mapping(lines, pos, indent)


def sequence(lines, pos, indent):
    """A block sequence."""
    out = []
    while pos < len(lines) and lines[pos][1] == indent and (lines[pos][2].startswith("- ") or lines[pos][2] == "-"):
        number, _, text = lines[pos]
        rest = text[1:].strip()
        if not rest:
            value, pos = block(lines, pos + 1, lines[pos + 1][1])
            out.append(value)
            continue
        if is_mapping_line(rest):
            inner_indent = indent + 2
            lines[pos] = (number, inner_indent, rest)
            value, pos = mapping(lines, pos, inner_indent)
            out.append(value)
            continue
        out.append(scalar_or_flow(rest, number))
        pos += 1
    return out, pos


def is_mapping_line(text):
    """Whether a line is `key: value` or `key:` (not a quoted scalar or flow collection)."""
    if text[0] in "[{\"'":
        return text[0] in "\"'" and re.match(r"^(\"[^\"]*\"|'[^']*')\s*:(\s|$)", text) is not None
    return re.match(r"^[^\s:][^:]*?:(\s|$)", text) is not None


def mapping(lines, pos, indent):
    """A block mapping."""
    out = {}
    while pos < len(lines) and lines[pos][1] == indent:
        number, _, text = lines[pos]
        if not is_mapping_line(text):
            raise YamlError("line %d: expected `key: value`" % number)
        key, _, rest = split_key(text)
        rest = rest.strip()
        if key in out:
            raise YamlError("line %d: duplicate key %s" % (number, key))
        if rest:
            if rest[0] in "|>&!*":
                raise YamlError("line %d: block scalars, anchors and tags are not supported" % number)
            out[key] = scalar_or_flow(rest, number)
            pos += 1
        elif pos + 1 < len(lines) and (lines[pos + 1][1] > indent or
                                       (lines[pos + 1][1] == indent and lines[pos + 1][2].startswith("-"))):
            out[key], pos = block(lines, pos + 1, lines[pos + 1][1])
        else:
            out[key] = None
            pos += 1
    return out, pos


def split_key(text):
    """(key, ':', rest) of a mapping line."""
    if text[0] in "\"'":
        m = re.match(r"^(\"[^\"]*\"|'[^']*')\s*:(.*)$", text)
        return scalar(m.group(1), 0), ":", m.group(2)
    key, sep, rest = text.partition(": ") if ": " in text else text.partition(":")
    return key.strip(), sep, rest


def scalar_or_flow(text, number):
    """A scalar or a flow collection on one line."""
    if text[0] in "[{":
        value, end = flow(text, 0, number)
        if text[end:].strip():
            raise YamlError("line %d: text after a flow collection" % number)
        return value
    return scalar(text, number)


def flow(text, i, number):
    """Parses a flow collection starting at text[i]; returns (value, index after it)."""
    opening = text[i]
    closing = "]" if opening == "[" else "}"
    out = [] if opening == "[" else {}
    i += 1
    while True:
        while i < len(text) and text[i] in " ,":
            i += 1
        if i >= len(text):
            raise YamlError("line %d: unterminated flow collection" % number)
        if text[i] == closing:
            return out, i + 1
        if opening == "{":
            key, i = flow_item(text, i, number, key=True)
            while text[i] == " ":
                i += 1
            if text[i] != ":":
                raise YamlError("line %d: expected ':' in a flow mapping" % number)
            i += 1
            while text[i] == " ":
                i += 1
            value, i = flow_item(text, i, number)
            out[key] = value
        else:
            value, i = flow_item(text, i, number)
            out.append(value)


def flow_item(text, i, number, key=False):
    """One item of a flow collection."""
    if text[i] in "[{":
        return flow(text, i, number)
    if text[i] in "\"'":
        q = text[i]
        j = i + 1
        while j < len(text) and not (text[j] == q and (q == "'" or text[j - 1] != "\\")):
            j += 1
        return scalar(text[i:j + 1], number), j + 1
    stop = ":,}]" if key else ",}]"
    j = i
    while j < len(text) and text[j] not in stop and not (key is False and text[j:j + 2] == ": "):
        j += 1
    return scalar(text[i:j].strip(), number), j


def scalar(text, number):
    """A quoted or plain scalar."""
    if text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError:
            raise YamlError("line %d: bad double-quoted string" % number)
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text in ("null", "~", ""):
        return None
    if text in ("true", "false"):
        return text == "true"
    if re.match(r"^-?(0|[1-9]\d*)$", text):
        return int(text)
    if re.match(r"^0x[0-9a-fA-F]+$", text):
        return int(text, 16)
    return text


def quote(text):
    """A YAML double-quoted string (JSON escaping is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def render(value):
    """One value in flow style."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if re.match(r"^[A-Za-z_][\w.\-/*]*$", value) and value not in ("null", "true", "false", "yes", "no", "on", "off", "y", "n") \
                and not re.match(r"^\d", value):
            return value
        return quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (k, render(v)) for k, v in value.items()) + "}"
    raise TypeError(type(value))


def dump_entries(entries, header=""):
    """A YAML list of entries: `- key: ...` then one `field: value` per line."""
    out = [header] if header else []
    for entry in entries:
        first = True
        for field, value in entry.items():
            if value is None or value == [] or value == {}:
                continue
            if field in ("caveat", "default_note", "note"):
                text = quote(value)
            elif field in ("older_defaults", "older_bounds", "older_scopes", "changes"):
                out.append("  %s:" % field)
                for item in value:
                    out.append("    - " + render(item))
                continue
            else:
                text = render(value)
            out.append(("- " if first else "  ") + "%s: %s" % (field, text))
            first = False
        out.append("")
    return "\n".join(out)
