"""The HTML report (templates, plots): renders what fit computed; built in a later stage.

``build_page(ReportInputs) -> (page, tables)`` then ``render_report(page) -> html``; the sections are
registered in ``sections.SECTIONS``.
"""
from .html import render_report
from .inputs import ReportInputs, ReportSettings
from .page import build_page

__all__ = ["ReportInputs", "ReportSettings", "build_page", "render_report"]
