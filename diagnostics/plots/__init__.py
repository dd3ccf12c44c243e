"""Pure figure builders (plotly ``go.Figure``) and the HTML report."""
