"""The record types in wizsock/engine/api.py's annotations are the codec's (issue 11).

Every query of the API goes through ``_Group._get(<record type>, <command>, <form>)``;
the type there is what the method's annotation promises and what ``_get`` checks at
run time.  This holds each such call to the codec's table, so an annotation cannot
drift from the record the command's response really parses into."""
import ast
import inspect
import typing

import wizsock.engine.api as api
from wizsock import protocol as P
from wizsock.protocol import records as R
from wizsock.protocol import shapes as S


def _record_types(shape):
    """The classes a response shape parses into (tuple: a Repeat of bare lines)."""
    if isinstance(shape, S.Alt):
        return {t for s in shape.shapes for t in _record_types(s)}
    if isinstance(shape, S.Repeat) and shape.record is None:
        return {tuple}
    return {shape.record}


def _commands(node):
    """The command names a `_get` argument can be: "NAME", or _cd("NAME", default)."""
    if isinstance(node, ast.Constant):
        return [node.value]
    assert isinstance(node, ast.Call) and node.func.id == "_cd", ast.dump(node)
    return [node.args[0].value + "_CUR", node.args[0].value + "_DEF"]


def _get_calls():
    tree = ast.parse(inspect.getsource(api))
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, ast.AsyncFunctionDef)):
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                        and call.func.attr == "_get" and fn.name != "_get":
                    yield cls.name, fn.name, call


def test_every_get_names_the_record_its_command_parses_into():
    calls = list(_get_calls())
    assert len(calls) > 30          # the walk found the API's queries
    for cls, method, call in calls:
        kind = call.args[0]
        expect = tuple if isinstance(kind, ast.Name) and kind.id == "tuple" else getattr(R, kind.attr)
        form = call.args[2].value if len(call.args) > 2 else "query"
        for name in _commands(call.args[1]):
            shape = P.COMMANDS[name].forms[form].response
            assert _record_types(shape) == {expect}, (cls, method, name, form)


def test_the_annotations_promise_what_get_returns():
    for cls, method, call in _get_calls():
        kind = call.args[0]
        if isinstance(kind, ast.Name):       # a tuple of records, made a list
            continue
        hints = typing.get_type_hints(getattr(getattr(api, cls), method))
        assert hints["return"] == typing.Optional[getattr(R, kind.attr)], (cls, method)
