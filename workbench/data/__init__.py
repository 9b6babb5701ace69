"""Part I of the recipe, know the data: the audit engine (duplicates, leaks, corrupt data and labels, imbalance).

``audit(data)`` or ``audit_session(session)`` → ``AuditReport`` (``.issues``, ``.summary``,
``.exclude_list()``, ``.save()``, ``.to_html()``). Issue type names are API: see ``ISSUE_TYPES``.
"""

from .audit import AuditOptions, audit, audit_session
from .findings import ISSUE_TYPES, RECIPE
from .report import AuditReport

__all__ = ["AuditOptions", "AuditReport", "ISSUE_TYPES", "RECIPE", "audit", "audit_session"]
