#!/usr/bin/python3
"""The reference for refinery's chat template engine: renders with Debian's
python3-jinja2 exactly as transformers' apply_chat_template does, and
computes answer spans from the prefix renderings with the rule the engine
documents (engine/tokenizer/chat_template.h). Run with /usr/bin/python3
(Debian's jinja2, not a pip one).

transformers' setup, reproduced (utils/chat_template_utils.py,
_compile_jinja_template and render_jinja_template; tokenization_utils_base
apply_chat_template and get_chat_template):
  - ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
    extensions=[AssistantTracker, jinja2.ext.loopcontrols]); the tracker's
    {% generation %} tag renders its body;
  - filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=indent,
    separators=separators, sort_keys=sort_keys) (positional order as given);
  - globals raise_exception (TemplateError) and strftime_now
    (datetime.now().strftime; here the clock is the case's "now");
  - render(messages=…, tools=…, documents=…, add_generation_prompt=…,
    **special_tokens_map, **kwargs): tools and documents are None when not
    given; special_tokens_map holds the set tokens of bos, eos, unk, sep,
    pad, cls, mask and additional_special_tokens, as strings;
  - a list-form chat_template picks the named one, else "tool_use" when
    tools are given and it exists, else "default".

Input (stdin): a JSON list of cases, each
  {"kind": "raw", "template": str, "context": {...}, "now": epoch}
  {"kind": "chat", "config": tokenizer_config, "messages": [...],
   "tools": list|null, "documents": list|null, "add_generation_prompt": bool,
   "kwargs": {...}, "template_name": str|null, "now": epoch}
Output (stdout): a JSON list, for each case {"text": str} or {"error": str},
chat cases also {"spans": [[start, end], ...] (UTF-8 byte offsets),
"stable": bool}."""
import datetime
import json
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
           "mask_token", "additional_special_tokens"]


class Generation(jinja2.ext.Extension):
    """transformers' AssistantTracker tag, rendering its body unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def environment(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.datetime.fromtimestamp(now).strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token(v):
    if isinstance(v, dict):
        v = v.get("content")
    return v


def special_tokens(config):
    out = {}
    for k in SPECIAL:
        v = config.get(k)
        if k == "additional_special_tokens":
            if v:
                out[k] = [token(t) for t in v]
            continue
        v = token(v)
        if v:
            out[k] = v
    return out


def pick(config, name, tools):
    t = config.get("chat_template")
    if isinstance(t, list):
        named = {e["name"]: e["template"] for e in t}
        if name is not None:
            return named.get(name, name)
        if tools is not None and "tool_use" in named:
            return named["tool_use"]
        if "default" in named:
            return named["default"]
        raise ValueError("no default chat template")
    if name is not None:
        return name
    if t is None:
        raise ValueError("no chat template")
    return t


def lcp(a, b):
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def spans(render, messages, gen):
    """Answer spans of the full rendering from the prefix renderings:
    P = messages before the answer with the generation prompt, F = through
    the answer without it (less the template's trailer Z, what it renders for
    no messages, when F ends with it). Stable when P is a prefix of F and F
    of the text; otherwise the answer is kept only where F agrees with the
    text, and dropped when P is not a prefix of the text."""
    text = render(messages, gen).encode()
    try:
        z = render([], False).encode()
    except Exception:
        z = b""
    out, stable = [], True
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        try:
            p = render(messages[:i], True).encode()
            f = render(messages[:i + 1], False).encode()
        except Exception:
            stable = False
            continue
        if z and f.endswith(z) and len(f) - len(z) >= len(p):
            f = f[:len(f) - len(z)]
        start = len(p)
        if not text.startswith(p):
            stable = False
            continue
        if f.startswith(p) and text.startswith(f):
            end = len(f)
        else:
            stable = False
            end = start + lcp(f[start:], text[start:]) if f.startswith(p) else start
        if end > start:
            out.append([start, end])
    return text.decode(), out, stable


COMPILED = {}


def compiled(text, now):
    """One environment and template per (text, clock), as transformers caches them."""
    key = (text, now)
    if key not in COMPILED:
        COMPILED[key] = environment(now).from_string(text)
    return COMPILED[key]


def run(case):
    now = case.get("now", 0)
    if case["kind"] == "raw":
        return {"text": compiled(case["template"], now).render(**case.get("context", {}))}
    config = case["config"]
    tools, docs = case.get("tools"), case.get("documents")
    tpl = compiled(pick(config, case.get("template_name"), tools), now)
    kw = {**special_tokens(config), **case.get("kwargs", {})}

    def render(msgs, gen):
        return tpl.render(messages=msgs, tools=tools, documents=docs, add_generation_prompt=gen,
                          **kw)

    text, sp, stable = spans(render, case["messages"], case.get("add_generation_prompt", False))
    return {"text": text, "spans": sp, "stable": stable}


def main():
    cases = json.load(sys.stdin)
    out = []
    for c in cases:
        try:
            out.append(run(c))
        except Exception as e:  # the engine must fail on the same cases
            out.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
