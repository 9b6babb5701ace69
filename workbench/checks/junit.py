"""The sanity checks' verdicts as a JUnit XML report, so CI shows each recipe check as a test (recipe part II).

One ``<testcase>`` per check (``classname`` = ``recipe.<step>``): ``fail`` becomes a ``<failure>``,
``error`` an ``<error>``, ``skip`` ``<skipped>``; the message is the verdict's sentence and the
body the measured vs expected numbers. ``xml.etree`` escapes everything the user's code produced.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from workbench.checks.base import fmt


def junit_xml(results, suite: str = "workbench check") -> ET.ElementTree:
    """The report as an ElementTree (``<testsuites><testsuite>...``)."""
    counts = {s: sum(r.status == s for r in results) for s in ("fail", "error", "skip")}
    total = sum(r.seconds or 0.0 for r in results)
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)), failures=str(counts["fail"]),
                       errors=str(counts["error"]), skipped=str(counts["skip"]), time=f"{total:.3f}")
    for r in results:
        case = ET.SubElement(ts, "testcase", classname=f"recipe.{r.recipe or 'check'}", name=r.name,
                             time=f"{r.seconds or 0.0:.3f}")
        evidence = f"measured: {r.summary() or '–'}\nexpected: {fmt(r.expected)}"
        if r.status in ("fail", "error"):
            el = ET.SubElement(case, "failure" if r.status == "fail" else "error", message=r.message,
                               type=r.status)
            el.text = evidence
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.message)
        else:
            ET.SubElement(case, "system-out").text = f"{r.status}: {r.message}\n{evidence}"
    return ET.ElementTree(root)


def write_junit(results, path, suite: str = "workbench check") -> Path:
    """Write the report to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = junit_xml(results, suite)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
