"""Reports for managers: terminal summary and the self-contained HTML report."""
