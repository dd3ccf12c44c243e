"""Streamlit views of NormScope: app.py wires them; nothing below imports this package."""
