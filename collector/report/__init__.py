"""Rendering: report.json model, Jinja2 templates (md, html, terminal) and the JSON schema."""
