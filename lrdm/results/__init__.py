"""Results: residual spectrum analysis, tables, plots and the papers' reported numbers."""
