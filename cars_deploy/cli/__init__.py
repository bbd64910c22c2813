"""Console scripts: one thin module per command, each a ``main(argv)`` over the library's API."""
