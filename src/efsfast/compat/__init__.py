"""Drop-in replacements for other libraries' raw-EFS APIs."""
