"""Values and hypothesis strategies derived from the command table itself, so
the generic tests cover every parameter of every command."""
from hypothesis import strategies as st

from wizsock import protocol as p
from wizsock.protocol.grammar import Bool, Host, Int, Ip, Mac, Rest


def all_sigs(form=None):
    """(command name, form, signature) for every signature of every command."""
    for name, spec in p.COMMANDS.items():
        for fname, f in spec.forms.items():
            if form is not None and fname != form:
                continue
            for i, sig in enumerate(f.sigs):
                yield name, fname, i, sig


def sample(param, sig=None):
    """A valid value of a parameter (deterministic)."""
    if sig is not None and param.name in sig.when:
        return next(v for v in sig.when[param.name] if v is not None)
    if isinstance(param, Bool):
        return True
    if isinstance(param, Int):
        if param.choices:
            return param.choices[0]
        lo = param.lo if param.lo is not None else 0
        return max(lo, min(1, param.hi if param.hi is not None else 1))
    if param.choices:
        return param.choices[0]
    if isinstance(param, Ip):
        return "10.0.0.1"
    if isinstance(param, Mac):
        return "00:08:dc:11:12:13"
    if isinstance(param, Host):
        return "example.com"
    if param.pattern is not None:
        for candidate in ("KR", "wizfi", "http://10.0.0.2:8080/fw.img"):
            try:
                return param.check(candidate)
            except ValueError:
                pass
        raise AssertionError(f"no sample for {param}")
    return "x" * max(param.min_len, 8 if param.name == "pwd" else 1)


def sample_values(sig, upto=None):
    """Valid values for the required params of `sig` (and its optional ones up to index `upto`)."""
    out = {}
    for i, q in enumerate(sig.params):
        if not q.optional or (upto is not None and i <= upto):
            # distinct addresses: CIPDNS wants dns0 != dns1
            out[q.name] = f"10.0.0.{i + 1}" if isinstance(q, Ip) else sample(q, sig)
    return out


def strategy(param, sig=None, *, rest_safe=False):
    """Hypothesis strategy of valid values of a parameter."""
    if sig is not None and param.name in sig.when:
        return st.sampled_from([v for v in sig.when[param.name] if v is not None])
    if isinstance(param, Bool):
        return st.booleans()
    if isinstance(param, Int):
        if param.choices:
            return st.sampled_from(param.choices)
        return st.integers(param.lo if param.lo is not None else -(2 ** 31),
                           param.hi if param.hi is not None else 2 ** 31 - 1)
    if param.choices:
        return st.sampled_from(param.choices)
    if isinstance(param, Ip):
        base = st.lists(st.integers(0, 255), min_size=4, max_size=4).map(lambda o: ".".join(map(str, o)))
    elif isinstance(param, Mac):
        base = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(lambda o: ":".join(f"{x:02x}" for x in o))
    elif isinstance(param, Host):
        base = st.text("abcxyzABC019.-_", min_size=1, max_size=param.max_len)
    elif param.pattern is not None:
        base = st.from_regex(param.pattern, fullmatch=True)
    elif isinstance(param, Rest):
        base = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)
        if rest_safe:
            base = base.filter(lambda s: not s.startswith(" ") and s != "<NULL>")
    else:
        # everything a user might type, quotes, commas and backslashes included
        alphabet = st.one_of(st.sampled_from('"\\,;=?+ AT\t'), st.characters(blacklist_categories=("Cs",)))
        base = st.text(alphabet, max_size=(param.max_len or 80) + 4)

    def valid(v):
        try:
            param.check(v)
            return True
        except ValueError:
            return False

    return base.filter(valid)


@st.composite
def sig_values(draw, sig):
    """Values for a signature: required params, then a prefix of the optional ones."""
    n_opt = sum(1 for q in sig.params if q.optional)
    k = draw(st.integers(0, n_opt))
    out, seen_opt = {}, 0
    for q in sig.params:
        if q.optional:
            seen_opt += 1
            if seen_opt > k:
                out[q.name] = None
                continue
        out[q.name] = draw(strategy(q, sig))
    return out


def record_strategy(shape, opts):
    """Hypothesis strategy of records a response shape can print; `opts` (a dict) receives the
    caller options the shape needs (CWLAP's mask)."""
    from dataclasses import fields as dc_fields

    from wizsock.protocol import shapes as S

    if isinstance(shape, S.ApList):
        line = shape.line

        @st.composite
        def aps(draw):
            mask = draw(st.integers(0, 0x7FF))
            opts["mask"] = mask
            sig = line.params_for({"mask": mask})
            items = draw(st.lists(st.fixed_dictionaries({q.name: strategy(q, rest_safe=True) for q in sig.params}),
                                  max_size=4))
            return tuple(line.record(**v) for v in items)
        return aps()
    if isinstance(shape, S.Fields):
        @st.composite
        def one(draw):
            values = draw(sig_values(shape.sig))
            values = {k: (draw(strategy(q, rest_safe=True)) if q.kind == "rest" else values[k])
                      for k, q in zip(values, shape.sig.params)}
            values.update(shape.fixed)
            return shape.build(values)
        return one()
    if isinstance(shape, S.Repeat):
        items = st.lists(record_strategy(shape.line, opts), max_size=4).map(tuple)
        return items if shape.record is None else items.map(lambda t: shape.record(**{shape.attr: t}))
    if isinstance(shape, S.Keyed):
        optional = {f.name for f in dc_fields(shape.record) if f.default is None}

        def value(q):
            s = strategy(q, rest_safe=True)
            return st.one_of(st.none(), s) if q.name in optional else s
        return st.fixed_dictionaries({q.name: value(q) for _, q in shape.keys}).filter(
            lambda d: any(v is not None for v in d.values())).map(lambda d: shape.record(**d))
    if isinstance(shape, S.Group):
        return st.fixed_dictionaries({attr: record_strategy(part, opts) for attr, part in shape.parts.items()}).map(
            lambda d: shape.record(**d))
    if isinstance(shape, S.Alt):
        return st.one_of([record_strategy(s, opts) for s in shape.shapes])
    if isinstance(shape, S.Lines):
        line = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)
        return st.lists(line, min_size=1, max_size=5).map(lambda ls: shape.record("\n".join(ls)))
    if isinstance(shape, S.Flag):
        return st.booleans().map(lambda b: shape.record(**{shape.attr: b}))
    if isinstance(shape, S.Ping):
        return st.one_of(st.none(), st.integers(0, 10 ** 9 - 1)).map(shape.record)
    if isinstance(shape, S.Fixed):
        return st.none()
    raise AssertionError(f"no strategy for {shape!r}")
