"""Worked-case files for the rules engine (protocol.md §4): parse, run, report.

An adapter (it reads YAML and files); the engine itself is ``recovery.domain.triage``.

YAML is read with booleans limited to ``true``/``false``, so answers such as ``meds_control: no`` or
``dizzy: no`` stay the option names a clinician meant (YAML 1.1 would turn them into false).
Duplicate keys are an error rather than "last one wins".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from recovery.domain.questionnaire.answers import coerce_answers
from recovery.domain.questionnaire.items import ITEMS
from recovery.domain.questionnaire.model import AnswerError
from recovery.domain.triage import (
    RULES,
    Acknowledgement,
    Assessment,
    Baseline,
    Level,
    PastCheckin,
    Ruleset,
    TriageInputError,
    assess,
)

__all__ = ["Case", "CaseFileError", "CaseResult", "CheckReport", "check_file", "load_cases", "parse_cases", "run_case"]


class CaseFileError(ValueError):
    """A case file that cannot be run; the message names the file, the case and the field."""


@dataclass(frozen=True)
class Case:
    id: str
    hours: float
    answers: Mapping[str, Any]
    expected_level: Level
    expected_rules: tuple[str, ...]
    baseline: Baseline = Baseline()
    history: tuple[PastCheckin, ...] = ()
    acknowledgements: tuple[Acknowledgement, ...] = ()
    note: str = ""
    line: int | None = None


@dataclass(frozen=True)
class CaseResult:
    case: Case
    assessment: Assessment

    @property
    def missing_rules(self) -> tuple[str, ...]:
        fired = set(self.assessment.rule_ids)
        return tuple(r for r in self.case.expected_rules if r not in fired)

    @property
    def passed(self) -> bool:
        # §4: levels match exactly; expected rules are a subset of the fired ones.
        return self.assessment.level == self.case.expected_level and not self.missing_rules

    def line(self) -> str:
        expected = f"{self.case.expected_level.name} [{', '.join(self.case.expected_rules)}]"
        got = f"{self.assessment.level.name} [{', '.join(self.assessment.rule_ids)}]"
        text = f"{'PASS' if self.passed else 'FAIL'} {self.case.id}  expected {expected}  got {got}"
        if not self.passed:
            why = []
            if self.assessment.level != self.case.expected_level:
                why.append("level differs")
            if self.missing_rules:
                why.append(f"not fired: {', '.join(self.missing_rules)}")
            text += f"  ({'; '.join(why)})"
        return text


@dataclass(frozen=True)
class CheckReport:
    source: str
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"

    def lines(self) -> list[str]:
        return [r.line() for r in self.results]


# ---------------------------------------------------------------------------------------------
# YAML reading
# ---------------------------------------------------------------------------------------------

_BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load_yaml(text: str, source: str) -> tuple[Any, list[int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}: line {mark.line + 1}" if mark is not None else source
        raise CaseFileError(f"{where}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise CaseFileError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines = [n.start_mark.line + 1 for n in node.value] if isinstance(node, yaml.SequenceNode) else []
    return data, lines


# ---------------------------------------------------------------------------------------------
# Case parsing
# ---------------------------------------------------------------------------------------------

_CASE_KEYS = {"id", "note", "hours", "baseline", "history", "acknowledgements", "answers", "expect"}


class _Bad(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem


MAX_HOURS = 24 * 366  # a case is about the first weeks of recovery; a year is generous


def _hours(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise _Bad(field, f"expected a number of hours, got {_short(value)}")
    if value < 0:
        raise _Bad(field, f"hours since the procedure cannot be negative, got {_short(value)}")
    if value > MAX_HOURS:  # compared as given: a 400-digit int never becomes a float
        raise _Bad(field, f"hours since the procedure must be at most {MAX_HOURS} (a year), got {_short(value)}")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


def _mapping(value: Any, field: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(field, f"expected a mapping, got {value!r}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise _Bad(f"{field}.{key}" if field else str(key),
                           f"unknown field (allowed: {', '.join(sorted(allowed))})")
    return value


def _answers(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}  # `answers: {}` written as `answers:`: everything left out
    mapping = _mapping(value, field)
    try:
        return coerce_answers(mapping)
    except AnswerError as exc:
        raise _Bad(f"{field}.{exc.item}", exc.problem) from None


def _rule_id(value: Any, field: str) -> str:
    if value not in RULES:
        raise _Bad(field, f"unknown rule {value!r}")
    return value


def _case(raw: Any) -> Case:
    data = _mapping(raw, "", _CASE_KEYS)
    for key in ("id", "hours", "answers", "expect"):
        if key not in data:
            raise _Bad(key, "required field is missing")
    case_id = data["id"]
    if not isinstance(case_id, (str, int)) or isinstance(case_id, bool) or str(case_id).strip() == "":
        raise _Bad("id", f"expected a case id, got {case_id!r}")
    note = data.get("note") or ""
    if not isinstance(note, str):
        raise _Bad("note", "expected text")
    hours = _hours(data["hours"], "hours")

    baseline = Baseline()
    if data.get("baseline") is not None:
        b = _mapping(data["baseline"], "baseline", {"back_pain", "neuro"})
        back = b.get("back_pain")
        if back is not None and (isinstance(back, bool) or not isinstance(back, int) or not 0 <= back <= 10):
            raise _Bad("baseline.back_pain", f"expected a whole number from 0 to 10, got {back!r}")
        neuro = b.get("neuro") or []
        if not isinstance(neuro, list):
            raise _Bad("baseline.neuro", f"expected a list of options, got {neuro!r}")
        options = ITEMS["neuro"].option_values()
        for option in neuro:
            if option not in options:
                raise _Bad("baseline.neuro", f"unknown option {option!r}")
        baseline = Baseline(back_pain=back, neuro=frozenset(neuro))

    history: list[PastCheckin] = []
    raw_history = data.get("history") or []
    if not isinstance(raw_history, list):
        raise _Bad("history", "expected a list of earlier check-ins")
    for i, entry in enumerate(raw_history):
        field = f"history[{i}]"
        entry = _mapping(entry, field, {"hours", "answers"})
        if "hours" not in entry:
            raise _Bad(f"{field}.hours", "required field is missing")
        ph = _hours(entry["hours"], f"{field}.hours")
        if ph > hours:
            raise _Bad(f"{field}.hours", f"{ph:g} is after the check-in being scored ({hours:g})")
        if history and ph < history[-1].hours:
            raise _Bad(f"{field}.hours", "history must be oldest first")
        history.append(PastCheckin(ph, _answers(entry.get("answers"), f"{field}.answers")))

    acks: list[Acknowledgement] = []
    raw_acks = data.get("acknowledgements") or []
    if not isinstance(raw_acks, list):
        raise _Bad("acknowledgements", "expected a list")
    for i, entry in enumerate(raw_acks):
        field = f"acknowledgements[{i}]"
        entry = _mapping(entry, field, {"rule", "hours", "disposition"})
        for key in ("rule", "hours", "disposition"):
            if key not in entry:
                raise _Bad(f"{field}.{key}", "required field is missing")
        disposition = entry["disposition"]
        if not isinstance(disposition, str) or not disposition.strip():
            raise _Bad(f"{field}.disposition", f"expected text, got {disposition!r}")
        acks.append(
            Acknowledgement(_rule_id(entry["rule"], f"{field}.rule"), _hours(entry["hours"], f"{field}.hours"),
                            disposition)
        )

    answers = _answers(data["answers"], "answers")

    expect = _mapping(data["expect"], "expect", {"level", "rules"})
    if "level" not in expect:
        raise _Bad("expect.level", "required field is missing")
    level_name = expect["level"]
    if not isinstance(level_name, str) or level_name not in Level.__members__:
        raise _Bad("expect.level", f"expected one of {', '.join(Level.__members__)}, got {level_name!r}")
    rules = expect.get("rules") or []
    if not isinstance(rules, list):
        raise _Bad("expect.rules", f"expected a list of rule ids, got {rules!r}")
    expected_rules = tuple(_rule_id(r, f"expect.rules[{i}]") for i, r in enumerate(rules))

    return Case(
        id=str(case_id),
        hours=hours,
        answers=answers,
        expected_level=Level[level_name],
        expected_rules=expected_rules,
        baseline=baseline,
        history=tuple(history),
        acknowledgements=tuple(acks),
        note=note,
    )


def parse_cases(text: str, source: str = "<text>") -> list[Case]:
    """Parse a §4 case file. Raises ``CaseFileError`` ("case V03: answers.wound: ...")."""
    data, lines = _load_yaml(text, source)
    if not isinstance(data, list) or not data:
        raise CaseFileError(f"{source}: expected a non-empty list of cases")
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data):
        line = lines[index] if index < len(lines) else None
        origin = f"{source}:{line}" if line else source
        label = _label(raw, index)
        try:
            case = _case(raw)
        except _Bad as bad:
            where = f"{label}: {bad.field}" if bad.field else label
            raise CaseFileError(f"{origin}: {where}: {bad.problem}") from None
        if case.id in seen:
            raise CaseFileError(f"{origin}: {label}: id: duplicate case id (also case #{seen[case.id] + 1})")
        seen[case.id] = index
        cases.append(replace(case, line=line))
    return cases


def _label(raw: Any, index: int) -> str:
    case_id = raw.get("id") if isinstance(raw, Mapping) else None
    if isinstance(case_id, (str, int)) and not isinstance(case_id, bool) and str(case_id).strip():
        return f"case {case_id}"
    return f"case #{index + 1}"


def load_cases(path: str | Path) -> list[Case]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseFileError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"{path}: cannot read: {exc}") from None
    return parse_cases(text, str(path))


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def run_case(case: Case, ruleset: Ruleset) -> CaseResult:
    try:
        assessment = assess(
            case.answers,
            hours=case.hours,
            baseline=case.baseline,
            history=case.history,
            acknowledgements=case.acknowledgements,
            ruleset=ruleset,
        )
    except TriageInputError as exc:
        raise CaseFileError(f"case {case.id}: {exc}") from None
    return CaseResult(case, assessment)


def check_file(path: str | Path, ruleset: Ruleset) -> CheckReport:
    """Run every case in a §4 file; raises ``CaseFileError`` when the file is malformed."""
    cases = load_cases(path)
    return CheckReport(str(path), tuple(run_case(c, ruleset) for c in cases))
