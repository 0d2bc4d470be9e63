"""Front end: text -> AST (:mod:`.parser`) -> checked model (:mod:`.check`)."""

from ppvi.language.check import CheckedModel, Factor, Variable, check
from ppvi.language.parser import parse, parse_file


def load(path: str) -> CheckedModel:
    """Parse and check a model file."""
    return check(parse_file(path))


def loads(text: str, path: str = "<model>") -> CheckedModel:
    """Parse and check model text."""
    return check(parse(text, path))


__all__ = ["CheckedModel", "Factor", "Variable", "check", "load", "loads", "parse", "parse_file"]
