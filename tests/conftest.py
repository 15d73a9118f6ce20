"""Shared test plumbing."""

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a test whose body failed, so that fixtures can show what they captured."""
    report = yield
    if report.when == "call" and report.failed:
        item.failed_call = True
    return report
