"""Job-level functions of each part of the study: what one workflow rule does, with paths in and out."""
