"""Tasks of the study: data generators."""
