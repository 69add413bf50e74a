"""Target and failure states of a wait, checked once when the operator or sensor is built."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING

from airflow_bpm_provider.states import ProcessState

if TYPE_CHECKING:
    from airflow_bpm_provider.models import ProcessInstance


class Verdict(Enum):
    REACHED = "reached"  # in a target state
    FAILED = "failed"  # in a failure state
    STRANDED = "stranded"  # ended in a state that is neither: it will never reach a target
    WAITING = "waiting"


def parse_states(states: Iterable[str | ProcessState] | str, *, argument: str) -> tuple[str, ...]:
    """Validated state names (``"completed"`` → ``"COMPLETED"``), in the order given, without repeats."""
    if isinstance(states, str | ProcessState):
        states = [states]
    try:
        parsed = [ProcessState.parse(state).value for state in states]
    except ValueError as exc:
        raise ValueError(f"{argument}: {exc}") from None
    return tuple(dict.fromkeys(parsed))


def parse_state_sets(
    target_states: Iterable[str | ProcessState] | str,
    failure_states: Iterable[str | ProcessState] | str,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    target = parse_states(target_states, argument="target_states")
    failure = parse_states(failure_states, argument="failure_states")
    if not target:
        raise ValueError("target_states must name at least one process state")
    overlap = sorted(set(target) & set(failure))
    if overlap:
        raise ValueError(f"states {', '.join(overlap)} are in both target_states and failure_states")
    return target, failure


def judge(instance: ProcessInstance, target: Iterable[str], failure: Iterable[str]) -> Verdict:
    state = instance.state.value
    if state in target:
        return Verdict.REACHED
    if state in failure:
        return Verdict.FAILED
    if instance.ended:
        return Verdict.STRANDED
    return Verdict.WAITING


def describe(instance: ProcessInstance, url: str | None = None) -> str:
    """``process instance 42 is FAILED (vendor state 'aborted'; see https://...)``."""
    state = instance.state.value
    extra = []
    if instance.raw_state and instance.raw_state.upper() != state:
        extra.append(f"vendor state {instance.raw_state!r}")
    link = url or instance.url
    if link:
        extra.append(f"see {link}")
    suffix = f" ({'; '.join(extra)})" if extra else ""
    return f"process instance {instance.id} is {state}{suffix}"
