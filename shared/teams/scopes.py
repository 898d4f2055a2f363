"""API key scopes. They are ordered: `admin` implies `write`, which implies `read`.

A key stores only its highest scope; `implied` expands it for display and `allows` answers the one
question a route asks ("may this key do what needs `write`?").
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ORDER = (Scope.READ, Scope.WRITE, Scope.ADMIN)


def allows(held: str, needed: Scope) -> bool:
    return ORDER.index(Scope(held)) >= ORDER.index(needed)


def implied(held: str) -> list[str]:
    """Every scope a key holding `held` has, lowest first."""
    return [str(scope) for scope in ORDER[: ORDER.index(Scope(held)) + 1]]


def highest(scopes: list[str] | list[Scope]) -> Scope:
    """The one scope to store for a requested set (["read", "write"] is "write")."""
    if not scopes:
        raise ValueError("at least one scope is needed")
    return max((Scope(scope) for scope in scopes), key=ORDER.index)
