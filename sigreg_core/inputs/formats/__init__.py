"""One module per file format the loader reads; entry points in :mod:`sigreg_core.inputs.loading`."""
